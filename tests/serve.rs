//! `wasmbay serve` as a user and wasi-testsuite's executor drive it: the address on the first
//! stderr line, HTTP/1.1 and HTTP/2 cleartext, a drain on the first signal (exit 0) and an
//! immediate end on the second (143), and a clear refusal of what is no handler.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{build_corpus, repo_root, wasmbay};

fn handler() -> std::path::PathBuf {
    build_corpus();
    repo_root().join("conformance/corpus/http_handler.wasm")
}

/// A served handler: the child and the address from its first stderr line.
struct Server {
    child: Child,
    address: SocketAddr,
    _cache: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let cache = tempfile::tempdir().unwrap();
        let mut child = wasmbay(cache.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg(handler())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let stderr = child.stderr.take().unwrap();
        let mut reader = BufReader::new(stderr);
        // Bounded: the child is killed by the drop below if the line never comes.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so that the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let first = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let address = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.trim().trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("first stderr line names no http:// address: {first:?}")
            });
        Server {
            child,
            address,
            _cache: cache,
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill takes plain integers; the pid is our own live child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// The exit code, waiting at most `within`.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "wasmbay serve did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serves_on_the_address_of_its_first_line_with_keep_alive_and_h2c() {
    let server = Server::start(&["--env", "GREETING=hi"]);
    assert_eq!(get(server.address, "/env/GREETING"), (200, "hi\n".into()));

    // Two requests on one HTTP/1.1 connection.
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(body, b"hello from wasm\n");
    }

    // HTTP/2 with prior knowledge: the server answers the preface with its SETTINGS frame.
    let mut h2 = TcpStream::connect(server.address).unwrap();
    h2.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap(); // empty SETTINGS
    let mut frame = [0u8; 9];
    h2.read_exact(&mut frame).unwrap();
    assert_eq!(
        frame[3], 4,
        "the first frame from the server is SETTINGS: {frame:?}"
    );
}

#[test]
fn the_first_signal_drains_to_exit_0_and_a_second_stops_at_once_with_143() {
    let mut server = Server::start(&[]);
    let address = server.address;
    let slow = std::thread::spawn(move || get(address, "/sleep/800"));
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    assert_eq!(slow.join().unwrap(), (200, "slept\n".into()));
    assert_eq!(server.exit_code(Duration::from_secs(20)), Some(0));

    let mut server = Server::start(&[]);
    let address = server.address;
    let slow = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let _ = stream.write_all(b"GET /sleep/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        rest
    });
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(100));
    server.signal(libc::SIGTERM);
    assert_eq!(server.exit_code(Duration::from_secs(5)), Some(143));
    assert!(
        slow.join().unwrap().is_empty(),
        "the request in flight is cut, not answered"
    );
}

#[test]
fn what_is_no_handler_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cmd.wat"), common::SPIN_WAT).unwrap();
    let output = wasmbay(dir.path())
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "cmd.wat"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(244), "{stderr}");
    assert!(
        stderr.contains("cmd.wat") && stderr.contains("not a wasi:http handler"),
        "{stderr}"
    );
    let output = wasmbay(dir.path())
        .args(["run"])
        .arg(handler())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(244), "{stderr}");
    assert!(stderr.contains("wasmbay serve"), "{stderr}");
}
