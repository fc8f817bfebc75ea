//! A containerd of the test's own: private root, state, sockets and temporary files under one
//! short directory in `/tmp`, stopped and cleaned up (tasks, shims, mounts, files) on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::process::{
    describe, mounts_under, processes_mentioning, processes_rooted_under, run_with_timeout,
};
use crate::TestkitError;

/// Unix socket paths (`sun_path`) hold 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Where containerd 1.6's v2 shims put their sockets, whatever containerd's own state dir is.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";
const CRI_PLUGIN: &str = "io.containerd.grpc.v1.cri";
/// Timeout for each `ctr` call made by the teardown.
const TEARDOWN_CTR_TIMEOUT: Duration = Duration::from_secs(10);

/// Plugins a test containerd never needs (or that would write outside its directory).
const ALWAYS_DISABLED: &[&str] = &[
    // Creates /opt/containerd on start.
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

/// A value in the generated TOML.
#[derive(Debug, Clone, PartialEq)]
pub enum TomlValue {
    Str(String),
    Bool(bool),
    Int(i64),
    StrList(Vec<String>),
}

impl TomlValue {
    fn render(&self) -> String {
        match self {
            Self::Str(s) => toml_string(s),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::StrList(items) => {
                let items: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}

impl From<&str> for TomlValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_string())
    }
}

impl From<bool> for TomlValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// A `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CriRuntime {
    /// The handler name (`runtimeClassName` in Kubernetes), e.g. `wasmbay-wasmtime`.
    pub name: String,
    /// e.g. `io.containerd.wasmbay-wasmtime.v1` or `io.containerd.runc.v2`.
    pub runtime_type: String,
    /// Keys of the entry itself, e.g. `pod_annotations`.
    pub settings: BTreeMap<String, TomlValue>,
    /// Keys of its `.options` table, e.g. `BinaryName`, `Root`, `SystemdCgroup`.
    pub options: BTreeMap<String, TomlValue>,
}

impl CriRuntime {
    pub fn new(name: &str, runtime_type: &str) -> Self {
        Self {
            name: name.to_string(),
            runtime_type: runtime_type.to_string(),
            settings: BTreeMap::new(),
            options: BTreeMap::new(),
        }
    }

    pub fn option(mut self, key: &str, value: impl Into<TomlValue>) -> Self {
        self.options.insert(key.to_string(), value.into());
        self
    }

    pub fn setting(mut self, key: &str, value: impl Into<TomlValue>) -> Self {
        self.settings.insert(key.to_string(), value.into());
        self
    }
}

/// How to start a [`PrivateContainerd`]. `Default` gives: `/usr/bin/containerd` and
/// `/usr/bin/ctr`, namespace `wasmbay-test`, CRI off, a 30 s start timeout.
#[derive(Debug, Clone)]
pub struct ContainerdConfig {
    pub containerd: PathBuf,
    pub ctr: PathBuf,
    /// Namespace [`PrivateContainerd::ctr`] uses.
    pub namespace: String,
    /// Whether the CRI plugin runs (off unless a test needs Kubernetes' API).
    pub cri: bool,
    /// CRI runtime entries. With CRI on, a `runc` entry keeping runc's state in the private
    /// directory is added unless one named `runc` is given.
    pub cri_runtimes: Vec<CriRuntime>,
    /// CRI's `default_runtime_name` (default `runc`).
    pub cri_default_runtime: Option<String>,
    /// CRI's `sandbox_image`: the pod's pause image, which tests build and import themselves
    /// (there is no registry to pull the default one from).
    pub cri_sandbox_image: Option<String>,
    /// CRI's `registry.config_path` (see [`ContainerdConfig::with_cri_registry_hosts`]).
    pub cri_registry_hosts: Option<PathBuf>,
    /// Extra plugin tables: key `io.containerd.runtime.v1.linux` → its body (raw TOML lines).
    /// A table given here replaces the one the testkit would write for the same plugin.
    pub plugin_tables: BTreeMap<String, String>,
    /// Further plugins to disable.
    pub disabled_plugins: Vec<String>,
    /// containerd's `--log-level`.
    pub log_level: String,
    pub start_timeout: Duration,
    /// Extra environment for containerd, inherited by its shims and the runtimes they run
    /// (e.g. `WASMBAY_CACHE_DIR` to keep a test's precompiled cache private).
    pub env: Vec<(String, String)>,
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        Self {
            containerd: PathBuf::from("/usr/bin/containerd"),
            ctr: PathBuf::from("/usr/bin/ctr"),
            namespace: "wasmbay-test".to_string(),
            cri: false,
            cri_runtimes: Vec::new(),
            cri_default_runtime: None,
            cri_sandbox_image: None,
            cri_registry_hosts: None,
            plugin_tables: BTreeMap::new(),
            disabled_plugins: Vec::new(),
            log_level: "info".to_string(),
            start_timeout: crate::scaled(Duration::from_secs(30)),
            env: Vec::new(),
        }
    }
}

impl ContainerdConfig {
    pub fn with_start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    pub fn with_cri(mut self, on: bool) -> Self {
        self.cri = on;
        self
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_string();
        self
    }

    pub fn with_cri_sandbox_image(mut self, image: &str) -> Self {
        self.cri_sandbox_image = Some(image.to_string());
        self
    }

    pub fn with_cri_runtime(mut self, runtime: CriRuntime) -> Self {
        self.cri_runtimes.push(runtime);
        self
    }

    /// Has the CRI read registry hosts from `dir` (`<dir>/<host>/hosts.toml`, containerd's
    /// `registry.config_path`): how a test points image pulls at its own registry.
    pub fn with_cri_registry_hosts(mut self, dir: &Path) -> Self {
        self.cri_registry_hosts = Some(dir.to_path_buf());
        self
    }

    /// Adds (or replaces) `[plugins."<plugin>"]` with `body` (raw TOML key = value lines).
    pub fn with_plugin_table(mut self, plugin: &str, body: &str) -> Self {
        self.plugin_tables
            .insert(plugin.to_string(), body.to_string());
        self
    }

    /// The config TOML (version 2) for a containerd living in `dir`.
    pub fn render(&self, dir: &Path) -> String {
        let p = |name: &str| toml_string(&dir.join(name).to_string_lossy());
        let mut disabled: BTreeSet<String> =
            ALWAYS_DISABLED.iter().map(|s| s.to_string()).collect();
        disabled.extend(self.disabled_plugins.iter().cloned());
        if !self.cri {
            disabled.insert(CRI_PLUGIN.to_string());
        }
        let disabled: Vec<String> = disabled.iter().map(|s| toml_string(s)).collect();

        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "version = 2");
        let _ = writeln!(out, "root = {}", p("root"));
        let _ = writeln!(out, "state = {}", p("state"));
        let _ = writeln!(out, "disabled_plugins = [{}]", disabled.join(", "));
        let _ = writeln!(out, "\n[grpc]\n  address = {}", p("c.sock"));
        let _ = writeln!(out, "\n[ttrpc]\n  address = {}", p("c.sock.ttrpc"));
        let _ = writeln!(out, "\n[debug]\n  address = \"\"");
        let _ = writeln!(out, "\n[metrics]\n  address = \"\"");

        let mut tables = BTreeMap::new();
        tables.insert(
            "io.containerd.runtime.v1.linux".to_string(),
            format!("  runtime_root = {}\n  shim_debug = false\n", p("runc-v1")),
        );
        if self.cri {
            tables.insert(CRI_PLUGIN.to_string(), self.render_cri(dir));
        }
        for (plugin, body) in &self.plugin_tables {
            tables.insert(plugin.clone(), body.clone());
        }
        for (plugin, body) in &tables {
            let _ = writeln!(out, "\n[plugins.{}]", toml_string(plugin));
            out.push_str(body);
            if !body.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// Body of the CRI table, with its sub-tables written as dotted-key tables after it.
    fn render_cri(&self, dir: &Path) -> String {
        let p = |name: &str| toml_string(&dir.join(name).to_string_lossy());
        let base = format!("plugins.{}", toml_string(CRI_PLUGIN));
        let mut runtimes = self.cri_runtimes.clone();
        if !runtimes.iter().any(|r| r.name == "runc") {
            runtimes.push(
                CriRuntime::new("runc", "io.containerd.runc.v2")
                    .option("Root", dir.join("runc").to_string_lossy().as_ref()),
            );
        }
        let default_runtime = self.cri_default_runtime.as_deref().unwrap_or("runc");
        let mut out = String::new();
        let _ = writeln!(out, "  stream_server_address = \"127.0.0.1\"");
        let _ = writeln!(out, "  stream_server_port = \"0\"");
        // CRI gives pod sandboxes an OOM score of -998; lowering a score needs CAP_SYS_RESOURCE,
        // which some machines (containers, CI sandboxes) withhold even from root, and then every
        // runtime fails to start the sandbox. CRI's own knob for that case keeps scores at or
        // above containerd's.
        if !has_capability(CAP_SYS_RESOURCE) {
            let _ = writeln!(out, "  restrict_oom_score_adj = true");
        }
        if let Some(image) = &self.cri_sandbox_image {
            let _ = writeln!(out, "  sandbox_image = {}", toml_string(image));
        }
        if let Some(hosts) = &self.cri_registry_hosts {
            let _ = writeln!(out, "\n[{base}.registry]");
            let _ = writeln!(
                out,
                "  config_path = {}",
                toml_string(&hosts.to_string_lossy())
            );
        }
        let _ = writeln!(out, "\n[{base}.cni]");
        let _ = writeln!(out, "  bin_dir = {}", p("cni/bin"));
        let _ = writeln!(out, "  conf_dir = {}", p("cni/net.d"));
        let _ = writeln!(out, "\n[{base}.containerd]");
        let _ = writeln!(
            out,
            "  default_runtime_name = {}",
            toml_string(default_runtime)
        );
        for runtime in &runtimes {
            let table = format!("{base}.containerd.runtimes.{}", toml_string(&runtime.name));
            let _ = writeln!(out, "\n[{table}]");
            let _ = writeln!(
                out,
                "  runtime_type = {}",
                toml_string(&runtime.runtime_type)
            );
            for (key, value) in &runtime.settings {
                let _ = writeln!(out, "  {} = {}", toml_key(key), value.render());
            }
            if !runtime.options.is_empty() {
                let _ = writeln!(out, "\n[{table}.options]");
                for (key, value) in &runtime.options {
                    let _ = writeln!(out, "  {} = {}", toml_key(key), value.render());
                }
            }
        }
        out
    }
}

const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process holds capability `cap` in its effective set.
fn has_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << cap) != 0)
}

/// A containerd started for one test. Everything it makes lives under [`Self::dir`]
/// (`/tmp/wbk-XXXXXX`), except the shim sockets containerd 1.6 always puts in
/// `/run/containerd/s` (see the crate documentation).
///
/// Dropping it kills the tasks it runs (best effort), stops containerd (SIGTERM, then SIGKILL
/// after 10 s), kills container processes and shims left behind, unmounts whatever is still mounted under its
/// directory (deepest first, detached) and removes the directory — but leaves the directory
/// in place, with a message, if something could not be unmounted, rather than deleting files
/// through a mount.
pub struct PrivateContainerd {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    namespace: String,
    ctr_bin: PathBuf,
    /// What it was started with, to start it again after [`PrivateContainerd::crash_and_restart`].
    config: ContainerdConfig,
}

impl PrivateContainerd {
    /// Starts one with [`ContainerdConfig::default`].
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_with(ContainerdConfig::default())
    }

    /// Starts one and waits until `ctr version` answers on its socket.
    pub fn start_with(config: ContainerdConfig) -> Result<Self, TestkitError> {
        let tmp = tempfile::Builder::new()
            .prefix("wbk-")
            .tempdir_in("/tmp")
            .map_err(|error| TestkitError::Io {
                what: "create a temporary directory in",
                path: PathBuf::from("/tmp"),
                error,
            })?;
        // From here on cleanup is this value's Drop, not TempDir's (which would recurse into
        // mounts).
        let dir = tmp.keep();
        // Traversable, not listable, as containerd makes its own root and state (0711), so
        // that a container in a user namespace of its own (the CRI's `hostUsers: false`),
        // whose root is an unprivileged host id, walks the paths below it as on a node.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .map_err(|error| TestkitError::Io {
                what: "open up (0711)",
                path: dir.clone(),
                error,
            })?;
        let mut this = Self {
            child: None,
            socket: dir.join("c.sock"),
            dir,
            namespace: config.namespace.clone(),
            ctr_bin: config.ctr.clone(),
            config: config.clone(),
        };
        let ttrpc = this.dir.join("c.sock.ttrpc");
        let longest = ttrpc.as_os_str().len();
        if longest > MAX_SOCKET_PATH {
            return Err(TestkitError::SocketPathTooLong {
                path: ttrpc,
                len: longest,
            });
        }
        for sub in ["root", "state", "tmp", "fifo", "runc"] {
            let path = this.dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|error| TestkitError::Io {
                what: "create",
                path,
                error,
            })?;
        }
        let config_path = this.config_path();
        std::fs::write(&config_path, config.render(&this.dir)).map_err(|error| {
            TestkitError::Io {
                what: "write",
                path: config_path.clone(),
                error,
            }
        })?;
        this.spawn_daemon()?;
        this.wait_ready(config.start_timeout)?;
        Ok(this)
    }

    /// Starts the daemon on this directory's config, its output appended to the log.
    fn spawn_daemon(&mut self) -> Result<(), TestkitError> {
        let config = &self.config;
        let config_path = self.config_path();
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|error| TestkitError::Io {
                what: "open",
                path: log_path.clone(),
                error,
            })?;
        let log_err = log.try_clone().map_err(|error| TestkitError::Io {
            what: "open",
            path: log_path.clone(),
            error,
        })?;
        let child = Command::new(&config.containerd)
            .arg("--config")
            .arg(&config_path)
            .arg("--log-level")
            .arg(&config.log_level)
            .env("TMPDIR", self.dir.join("tmp"))
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|error| TestkitError::Spawn {
                program: config.containerd.clone(),
                error,
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILLs containerd, as a crash or an OOM kill would, leaves it down for `down_for`,
    /// then starts it again on the same root, state and config and waits until it answers.
    /// Shims and their containers are not touched: what they do meanwhile is the test.
    pub fn crash_and_restart(&mut self, down_for: Duration) -> Result<(), TestkitError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(down_for);
        self.spawn_daemon()?;
        self.wait_ready(self.config.start_timeout)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), TestkitError> {
        let deadline = Instant::now() + timeout;
        let mut last_error = String::from("socket not created yet");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(TestkitError::Exited {
                        status: status.to_string(),
                        log_path: self.log_path(),
                        log: self.log_tail(),
                    });
                }
            }
            if self.socket.exists() {
                let mut version = self.ctr_global();
                version.arg("version");
                // A loaded or emulated machine may take seconds to start ctr: each probe may
                // use what is left of the start timeout.
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(5));
                match run_with_timeout(&mut version, left) {
                    Ok(output) if output.status.success() => return Ok(()),
                    Ok(output) => {
                        last_error = String::from_utf8_lossy(&output.stderr).trim().to_string()
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::StartTimeout {
                    socket: self.socket.clone(),
                    timeout,
                    last_error,
                    log_path: self.log_path(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The private directory (`/tmp/wbk-XXXXXX`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// containerd's gRPC socket: give it to `ctr --address` or a client.
    pub fn address(&self) -> &Path {
        &self.socket
    }

    /// containerd's `root` (content, snapshots, metadata).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// containerd's `state` (bundles, runtime state).
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Directory for `ctr run --fifo-dir`.
    pub fn fifo_dir(&self) -> PathBuf {
        self.dir.join("fifo")
    }

    /// Directory for runc's state (`ctr run --runc-root`, CRI runc `Root`).
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// containerd's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// containerd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `ctr --address <socket> --namespace <namespace>`, with `TMPDIR` in the private
    /// directory; add the subcommand and its arguments.
    pub fn ctr(&self) -> Command {
        let mut command = self.ctr_global();
        command.arg("--namespace").arg(&self.namespace);
        command
    }

    /// `ctr … run --fifo-dir <dir>/fifo --runc-root <dir>/runc`: add options, image and id.
    pub fn ctr_run(&self) -> Command {
        let mut command = self.ctr();
        command
            .arg("run")
            .arg("--fifo-dir")
            .arg(self.fifo_dir())
            .arg("--runc-root")
            .arg(self.runc_root());
        command
    }

    fn ctr_global(&self) -> Command {
        let mut command = Command::new(&self.ctr_bin);
        command
            .arg("--address")
            .arg(&self.socket)
            .env("TMPDIR", self.dir.join("tmp"));
        command
    }

    /// Runs `command` (at most `timeout`) and fails with its output unless it exits 0.
    pub fn run_ok(&self, command: &mut Command, timeout: Duration) -> Result<Output, TestkitError> {
        let output = run_with_timeout(command, timeout)?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(TestkitError::CommandFailed {
                command: describe(command),
                status: output.status.to_string(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: format!(
                    "{}\n(containerd log: {})",
                    String::from_utf8_lossy(&output.stderr).trim_end(),
                    self.log_path().display()
                ),
            })
        }
    }

    /// `ctr image import [flags…] <archive>`. For non-host platforms pass `--all-platforms`;
    /// for artifact images add `--no-unpack` (see the crate documentation).
    pub fn import(&self, archive: &Path, flags: &[&str]) -> Result<Output, TestkitError> {
        let mut command = self.ctr();
        command.args(["images", "import"]).args(flags).arg(archive);
        self.run_ok(&mut command, Duration::from_secs(120))
    }

    /// The `ctr images ls` line of image `name` (its type, digest, size and platforms),
    /// `None` when there is no such image.
    pub fn image_line(&self, name: &str) -> Result<Option<String>, TestkitError> {
        let mut command = self.ctr();
        command.args(["images", "ls"]);
        let output = self.run_ok(&mut command, Duration::from_secs(30))?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(str::to_string))
    }

    /// Image names in the namespace (`ctr images ls -q`).
    pub fn image_names(&self) -> Result<Vec<String>, TestkitError> {
        let mut command = self.ctr();
        command.args(["images", "ls", "-q"]);
        let output = self.run_ok(&mut command, Duration::from_secs(30))?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// The last 8 KiB of containerd's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let start = log.len().saturating_sub(8192);
        String::from_utf8_lossy(&log[start..]).into_owned()
    }

    /// Tears everything down now (what `Drop` does).
    pub fn stop(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        let containers = if self.child.is_some() {
            self.remove_containers()
        } else {
            Vec::new()
        };
        self.stop_daemon();
        self.kill_leftover_processes();
        let mut containers: BTreeSet<(String, String)> = containers.into_iter().collect();
        containers.extend(self.bundles());
        for (namespace, id) in &containers {
            let path = shim_socket_path(&self.socket, namespace, id);
            if path.exists() {
                let _ = std::fs::remove_file(&path);
            }
        }
        if self.dir.as_os_str().is_empty() || !self.dir.exists() {
            return;
        }
        let remaining = unmount_all_under(&self.dir);
        if remaining.is_empty() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                eprintln!("testkit: cannot remove {}: {e}", self.dir.display());
            }
        } else {
            eprintln!(
                "testkit: left {} in place: still mounted under it: {:?}",
                self.dir.display(),
                remaining
            );
        }
    }

    /// `(namespace, id)` of the task bundles in the state directory (what is left of tasks
    /// containerd could not delete).
    fn bundles(&self) -> Vec<(String, String)> {
        let tasks = self.state().join("io.containerd.runtime.v2.task");
        let names = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|e| e.file_name().to_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        names(&tasks)
            .into_iter()
            .flat_map(|namespace| {
                names(&tasks.join(&namespace))
                    .into_iter()
                    .map(move |id| (namespace.clone(), id))
            })
            .collect()
    }

    /// Kills and deletes every task and container in every namespace; returns what it saw.
    fn remove_containers(&self) -> Vec<(String, String)> {
        let lines = |command: &mut Command| -> Vec<String> {
            match run_with_timeout(command, TEARDOWN_CTR_TIMEOUT) {
                Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
                _ => Vec::new(),
            }
        };
        let quiet = |command: &mut Command| {
            let _ = run_with_timeout(command, TEARDOWN_CTR_TIMEOUT);
        };
        let mut seen = Vec::new();
        let namespaces = lines(self.ctr_global().args(["namespaces", "ls", "-q"]));
        for namespace in namespaces {
            let in_ns = || {
                let mut command = self.ctr_global();
                command.arg("--namespace").arg(&namespace);
                command
            };
            for task in lines(in_ns().args(["tasks", "ls", "-q"])) {
                quiet(in_ns().args(["tasks", "kill", "--all", "--signal", "SIGKILL", &task]));
            }
            for task in lines(in_ns().args(["tasks", "ls", "-q"])) {
                quiet(in_ns().args(["tasks", "delete", "--force", &task]));
            }
            for container in lines(in_ns().args(["containers", "ls", "-q"])) {
                quiet(in_ns().args(["containers", "delete", &container]));
                seen.push((namespace.clone(), container));
            }
        }
        seen
    }

    fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Shims outlive containerd by design, and so do container processes whose shim is gone:
    /// any process running in a rootfs under the private directory, then any shim still
    /// serving this containerd, is killed.
    fn kill_leftover_processes(&self) {
        let address = self.socket.to_string_lossy().into_owned();
        kill_and_wait(&processes_rooted_under(&self.dir));
        kill_and_wait(&processes_mentioning(&address));
    }
}

/// SIGKILLs `pids` and waits (up to 5 s) for them to disappear.
fn kill_and_wait(pids: &[u32]) {
    for pid in pids {
        if let Ok(pid) = libc::pid_t::try_from(*pid) {
            // SAFETY: kill(2); the pid was read from /proc just now and names a process
            // started for this containerd.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && pids
            .iter()
            .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Unmounts (detached) everything under `dir`, deepest first, a few rounds for stacked mounts;
/// returns what is still mounted.
fn unmount_all_under(dir: &Path) -> Vec<PathBuf> {
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return mounts;
        }
        for mount in &mounts {
            let Ok(c_path) = CString::new(mount.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: umount2 with a valid NUL-terminated path; MNT_DETACH never blocks.
            let rc = unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!(
                    "testkit: umount {}: {}",
                    mount.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    mounts_under(dir)
}

/// `/run/containerd/s/<sha256(address/namespace/id)>`, as containerd 1.6's shims name their
/// sockets (`address` is containerd's gRPC socket).
pub fn shim_socket_path(address: &Path, namespace: &str, id: &str) -> PathBuf {
    let joined = address.join(namespace).join(id);
    let digest = Sha256::digest(joined.as_os_str().as_bytes());
    Path::new(SHIM_SOCKET_DIR).join(hex::encode(digest))
}

fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        toml_string(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_renders_private_paths_and_disables_cri() {
        let toml = ContainerdConfig::default().render(Path::new("/tmp/wbk-x"));
        assert!(toml.contains("root = \"/tmp/wbk-x/root\""), "{toml}");
        assert!(toml.contains("state = \"/tmp/wbk-x/state\""), "{toml}");
        assert!(toml.contains("address = \"/tmp/wbk-x/c.sock\""), "{toml}");
        assert!(toml.contains("\"io.containerd.grpc.v1.cri\""), "{toml}");
        assert!(toml.contains("\"io.containerd.internal.v1.opt\""), "{toml}");
        assert!(!toml.contains("/run/containerd"), "{toml}");
        assert!(!toml.contains("/var/lib/containerd"), "{toml}");
    }

    #[test]
    fn cri_runtimes_render() {
        let toml = ContainerdConfig::default()
            .with_cri(true)
            .with_cri_runtime(
                CriRuntime::new("wasmbay-wasmtime", "io.containerd.wasmbay-wasmtime.v1")
                    .option("BinaryName", "/usr/local/bin/x"),
            )
            .with_plugin_table("io.containerd.runtime.v1.linux", "  shim_debug = true")
            .render(Path::new("/tmp/wbk-y"));
        assert!(!toml.contains("disabled_plugins = [\"io.containerd.grpc.v1.cri\""));
        assert!(toml.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.\"wasmbay-wasmtime\"]\n  runtime_type = \"io.containerd.wasmbay-wasmtime.v1\""
        ), "{toml}");
        assert!(toml.contains("BinaryName = \"/usr/local/bin/x\""), "{toml}");
        assert!(toml.contains("Root = \"/tmp/wbk-y/runc\""), "{toml}");
        assert!(toml.contains("default_runtime_name = \"runc\""), "{toml}");
        assert!(toml.contains("shim_debug = true"), "{toml}");
        assert!(!toml.contains("runtime_root"), "{toml}");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(toml_key("Root"), "Root");
        assert_eq!(toml_key("a.b"), "\"a.b\"");
    }

    #[test]
    fn shim_socket_names_hash_address_namespace_and_id() {
        let p = shim_socket_path(Path::new("/tmp/wbk-a/c.sock"), "ns", "id");
        assert!(p.starts_with(SHIM_SOCKET_DIR));
        let expected = hex::encode(Sha256::digest(b"/tmp/wbk-a/c.sock/ns/id"));
        assert_eq!(
            p.file_name().and_then(|n| n.to_str()),
            Some(expected.as_str())
        );
    }
}
