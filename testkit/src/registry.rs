//! An image registry of the test's own: Debian's `docker-registry` (the CNCF distribution
//! registry) on a loopback port, its storage in a temporary directory, stopped and removed
//! when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestkitError;

/// Where Debian installs the registry.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

pub struct LoopbackRegistry {
    child: Child,
    dir: tempfile::TempDir,
    address: String,
}

impl LoopbackRegistry {
    /// Starts one and waits (at most 30 s, scaled) until it answers `GET /v2/`.
    pub fn start() -> Result<LoopbackRegistry, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("wbk-registry-")
            .tempdir()
            .map_err(|error| TestkitError::Io {
                what: "create",
                path: std::env::temp_dir(),
                error,
            })?;
        // A port the kernel just gave out and took back: free unless another process takes it
        // in between, which the start-up check below would show.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|error| TestkitError::Io {
                what: "find a free port on",
                path: PathBuf::from("127.0.0.1"),
                error,
            })?
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        let text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            storage.display()
        );
        std::fs::write(&config, text).map_err(|error| TestkitError::Io {
            what: "write",
            path: config.clone(),
            error,
        })?;
        let log = std::fs::File::create(dir.path().join("registry.log")).map_err(|error| {
            TestkitError::Io {
                what: "create",
                path: dir.path().join("registry.log"),
                error,
            }
        })?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|error| TestkitError::Io {
                what: "open",
                path: dir.path().join("registry.log"),
                error,
            })?)
            .stderr(log)
            .spawn()
            .map_err(|error| TestkitError::Spawn {
                program: PathBuf::from(REGISTRY_BINARY),
                error,
            })?;
        let mut registry = LoopbackRegistry {
            child,
            dir,
            address,
        };
        let limit = crate::scaled(Duration::from_secs(30));
        let started = Instant::now();
        loop {
            if registry.get_status("/v2/") == Some(200) {
                return Ok(registry);
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                return Err(TestkitError::Api(format!(
                    "docker-registry exited ({status}): {}",
                    registry.log()
                )));
            }
            if started.elapsed() > limit {
                return Err(TestkitError::Api(format!(
                    "docker-registry did not answer on {} within {} s: {}",
                    registry.address,
                    limit.as_secs(),
                    registry.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The status of a plain `GET path`, with an OCI manifest `Accept`; `None` when the
    /// registry does not answer within 5 s.
    pub fn get_status(&self, path: &str) -> Option<u16> {
        self.get(path).map(|(status, _)| status)
    }

    /// A `GET path` (OCI manifests and indexes accepted): status and the whole response.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut tcp = TcpStream::connect(&self.address).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        tcp.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n",
            self.address
        );
        tcp.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        tcp.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        Some((status, response))
    }
}

impl Drop for LoopbackRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
