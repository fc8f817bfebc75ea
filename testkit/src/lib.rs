//! `wasmbay-testkit`: helpers for wasmbay's integration tests, never shipped.
//!
//! Owns: [`PrivateContainerd`] (a containerd of the test's own, in a temporary directory,
//! torn down completely when dropped), [`LoopbackRegistry`] (Debian's docker-registry on a
//! loopback port), the checks tests use to skip themselves
//! ([`require_root`], [`require_command`]) and the inspection helpers the teardown and the
//! tests share ([`mounts_under`], [`processes_mentioning`], [`processes_rooted_under`],
//! [`run_with_timeout`]).
//!
//! Must not depend on any wasmbay crate (tests combine it with them, not the other way round),
//! nor on a containerd client library: containerd is driven through `ctr`, as a user would.
//! Never touches the system-wide containerd (`/run/containerd/containerd.sock`,
//! `/var/lib/containerd`).
//!
//! # containerd 1.6 / `ctr` quirks met here
//!
//! - **Importing images for other platforms.** `ctr image import` keeps only content for the
//!   host platform unless told otherwise, and then fails with `image might be filtered out`
//!   for a `wasip1/wasm` image. `--all-platforms` imports it (and unpacks it, since a tar layer
//!   can be unpacked whatever the platform). `--platform wasip1/wasm` works too.
//! - **Artifact images** (the module itself is the layer, not a tar) cannot be unpacked: the
//!   import fails with `no processor for media-type` unless `--no-unpack` is given (with
//!   `--all-platforms`); the image is recorded anyway.
//! - **Names.** The importer names an image after the manifest's `io.containerd.image.name`
//!   annotation in `index.json`; without it a bare `org.opencontainers.image.ref.name` tag
//!   would need `--base-name`.
//! - **Paths outside the private directories.** The runc shim keeps runc's state in
//!   `/run/containerd/runc/<namespace>` unless `ctr run --runc-root` says otherwise, and `ctr`
//!   makes its stdio FIFOs in `/run/containerd/fifo` unless `--fifo-dir` says otherwise:
//!   [`PrivateContainerd::ctr_run`] passes both. The shim's own socket always goes to
//!   `/run/containerd/s/<sha256(address/namespace/id)>` in 1.6 (not configurable); the shim
//!   removes it on exit and the teardown removes any left behind by the containers it saw.
//! - containerd mounts snapshots for unpacking under `$TMPDIR`; the private containerd gets
//!   `TMPDIR` inside its directory, so such mounts are found and undone by the teardown.
//! - The `io.containerd.internal.v1.opt` plugin would create `/opt/containerd`: disabled.

mod api;
mod containerd;
pub mod cri;
mod process;
mod registry;
mod stress;

pub use api::{process_spec, ApiClient, ApiContainer};
pub use containerd::{
    shim_socket_path, ContainerdConfig, CriRuntime, PrivateContainerd, TomlValue,
};
pub use process::{
    cgroup_dirs_of, holds_in_forked_child, mounts_under, processes_mentioning,
    processes_rooted_under, run_with_timeout,
};
pub use registry::{LoopbackRegistry, REGISTRY_BINARY};
pub use stress::{poll_stdin_then, stress_rounds};

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

/// What can go wrong starting or driving a private containerd. `Debug` prints the same text
/// as `Display`, so that `.expect()` in a test shows logs and outputs with their line breaks.
#[derive(Error)]
pub enum TestkitError {
    #[error("cannot {what} {}: {error}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot start {}: {error}", program.display())]
    Spawn {
        program: PathBuf,
        error: std::io::Error,
    },
    #[error("socket path {} is {len} bytes; unix socket paths must be under 108", path.display())]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error("containerd exited before answering ({status}); its log ({}):\n{log}", log_path.display())]
    Exited {
        status: String,
        log_path: PathBuf,
        log: String,
    },
    #[error(
        "containerd did not answer on {} within {timeout:?} (last `ctr version`: {last_error}); \
         its log ({}):\n{log}",
        socket.display(),
        log_path.display()
    )]
    StartTimeout {
        socket: PathBuf,
        timeout: Duration,
        last_error: String,
        log_path: PathBuf,
        log: String,
    },
    #[error("`{command}` did not finish within {timeout:?}")]
    CommandTimeout { command: String, timeout: Duration },
    #[error("containerd API: {0}")]
    Api(String),
    #[error("`{command}` failed ({status}):\nstdout: {stdout}\nstderr: {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stdout: String,
        stderr: String,
    },
}

impl std::fmt::Debug for TestkitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// The environment variable that stretches every bounded wait of the tests (a factor, at
/// least 1): set by scripts/guest-suite.sh, whose guests run every instruction emulated.
pub const TIMEOUT_SCALE_ENV: &str = "WASMBAY_TEST_TIMEOUT_SCALE";

/// The factor in [`TIMEOUT_SCALE_ENV`] (1 when unset). A value that is not a number from 1 to
/// 100 is a mistake of whoever runs the tests, and panics naming the variable.
pub fn timeout_scale() -> f64 {
    let Some(text) = std::env::var_os(TIMEOUT_SCALE_ENV) else {
        return 1.0;
    };
    let text = text.to_string_lossy();
    match text.parse::<f64>() {
        Ok(factor) if (1.0..=100.0).contains(&factor) => factor,
        _ => panic!("{TIMEOUT_SCALE_ENV}={text}: expected a number from 1 to 100"),
    }
}

/// `limit` multiplied by [`timeout_scale`].
pub fn scaled(limit: std::time::Duration) -> std::time::Duration {
    limit.mul_f64(timeout_scale())
}

/// A polling loop's round count, stretched as [`scaled`] stretches a duration.
pub fn scaled_rounds(rounds: u32) -> u32 {
    (timeout_scale() * f64::from(rounds)).ceil() as u32
}

/// True where the systemd cgroup driver can be used: the unified hierarchy, and systemd as
/// init with its D-Bus socket (scripts/guest.sh boots such a machine). Otherwise prints
/// `skipped: …` with the reason and returns false.
pub fn require_systemd_cgroup_v2() -> bool {
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").is_file() {
        eprintln!("skipped: the systemd cgroup driver is tested on cgroup v2 hosts (scripts/guest.sh boots one)");
        return false;
    }
    let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if init.trim() != "systemd" || !std::path::Path::new("/run/dbus/system_bus_socket").exists() {
        eprintln!("skipped: the systemd cgroup driver needs systemd as init and its D-Bus socket");
        return false;
    }
    true
}

/// True when running as root; otherwise prints `skipped: …` and returns false.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        true
    } else {
        eprintln!("skipped: needs root (running as uid {euid})");
        false
    }
}

/// True when `name` (a path, or a program looked up in `PATH`) exists as an executable file;
/// otherwise prints `skipped: …` and returns false.
pub fn require_command(name: &str) -> bool {
    if find_command(name).is_some() {
        true
    } else {
        eprintln!("skipped: needs `{name}`, which is not installed (or not in PATH)");
        false
    }
}

/// Where `name` is: itself when it contains a `/`, else the first match in `PATH`.
pub fn find_command(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}
