//! What the shim's integration tests share: where the shim binary is, a private containerd
//! configured to find it, and `ctr` steps several tests take.
// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmbay_oci_image::{ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::{ContainerdConfig, PrivateContainerd};

/// The runtime type containerd knows the shim by (`wasmbay_shim_core::names::runtime_type`).
pub const RUNTIME: &str = "io.containerd.wasmbay-wasmtime.v1";
/// Its CRI runtime handler, as a RuntimeClass names it.
pub const HANDLER: &str = "wasmbay-wasmtime";

/// This machine's architecture as OCI platforms name it.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn shim_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-wasmbay-wasmtime-v1"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A private containerd that finds the shim on its PATH, with the shim's cache (and debug log,
/// next to it) private to the test.
pub fn containerd_config(cache: &Path) -> ContainerdConfig {
    let path = format!(
        "{}:{}",
        shim_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    ContainerdConfig::default()
        .with_env("PATH", &path)
        .with_env("WASMBAY_CACHE_DIR", cache.to_str().unwrap())
        .with_env(
            "WASMBAY_SHIM_LOG",
            cache.with_file_name("shim.log").to_str().unwrap(),
        )
}

pub const SPIN: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#;

/// Grows memory a wasm page at a time, touching every 4 KiB of each new page (so that the
/// memory is really resident), until refused or killed.
pub const HOG: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (local $page i32) (local $off i32)
    (loop $more
      (local.set $page (memory.grow (i32.const 1)))
      (if (i32.ne (local.get $page) (i32.const -1))
        (then
          (local.set $off (i32.const 0))
          (loop $touch
            (i32.store
              (i32.add (i32.mul (local.get $page) (i32.const 65536)) (local.get $off))
              (i32.const 1))
            (local.set $off (i32.add (local.get $off) (i32.const 4096)))
            (br_if $touch (i32.lt_u (local.get $off) (i32.const 65536))))
          (br $more))))))"#;

/// Bounded waits, stretched where guests run emulated ([`wasmbay_testkit::scaled`]).
pub static TIMEOUT: std::sync::LazyLock<Duration> =
    std::sync::LazyLock::new(|| wasmbay_testkit::scaled(Duration::from_secs(20)));

/// Builds a wasm app image of `wat` named `<name>:test` and imports it; returns its reference.
pub fn import(cd: &PrivateContainerd, dir: &Path, name: &str, wat: &str) -> String {
    let reference = ImageRef::parse(&format!("{name}:test")).unwrap();
    let mut spec = ImageSpec::new(reference.clone(), "app.wat", wat.as_bytes().to_vec());
    spec.layout = Layout::App;
    spec.platform = Platform::parse("linux/amd64").unwrap();
    let path = dir.join(format!("{name}.tar"));
    spec.build().unwrap().write_to(&path).unwrap();
    cd.import(&path, &[]).unwrap();
    reference.to_string()
}

/// The `ctr tasks ls` line of task `id` (empty when there is none).
pub fn task_line(cd: &PrivateContainerd, id: &str) -> String {
    let tasks = cd.run_ok(cd.ctr().args(["tasks", "ls"]), *TIMEOUT).unwrap();
    String::from_utf8_lossy(&tasks.stdout)
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_default()
        .to_string()
}

/// Starts a detached task `id` of `image` (with ctr run's `extra` options) and returns its
/// pid.
pub fn run_detached(cd: &PrivateContainerd, image: &str, id: &str, extra: &[&str]) -> u32 {
    let mut run = cd.ctr_run();
    run.arg("-d")
        .args(extra)
        .args(["--runtime", RUNTIME, image, id]);
    cd.run_ok(&mut run, *TIMEOUT).unwrap();
    task_line(cd, id)
        .split_whitespace()
        .nth(1)
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid for {id}: {}", task_line(cd, id)))
}

/// SIGKILLs task `id`, waits (bounded) for it to stop, and deletes task and container.
pub fn kill_and_remove(cd: &PrivateContainerd, id: &str) {
    cd.run_ok(
        cd.ctr().args(["tasks", "kill", "--signal", "SIGKILL", id]),
        *TIMEOUT,
    )
    .unwrap();
    let mut stopped = false;
    for _ in 0..wasmbay_testkit::scaled_rounds(250) {
        if task_line(cd, id).contains("STOPPED") {
            stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        stopped,
        "{id} did not stop on SIGKILL: {}",
        task_line(cd, id)
    );
    cd.run_ok(cd.ctr().args(["tasks", "delete", id]), *TIMEOUT)
        .unwrap();
    cd.run_ok(cd.ctr().args(["containers", "delete", id]), *TIMEOUT)
        .unwrap();
}

pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The shim processes serving containers of this test's containerd. A shim's zygote and the
/// wasm inits it makes share the shim's command line, so only the topmost count.
pub fn shims_of(cd: &PrivateContainerd) -> Vec<u32> {
    let address = cd.address().to_string_lossy().into_owned();
    let mentioning: Vec<u32> = wasmbay_testkit::processes_mentioning(&address)
        .into_iter()
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("containerd-shim-wasmbay-wasmtime-v1"))
        })
        .collect();
    mentioning
        .iter()
        .copied()
        .filter(|&pid| parent_of(pid).is_none_or(|parent| !mentioning.contains(&parent)))
        .collect()
}

/// `_start` prints "from exec" and exits 5; `wait` sleeps a minute (the init's entrypoint,
/// `/app.wat#wait`), so one module serves as both a running task and a command to exec.
pub const EXEC_TARGET: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "from exec\n")
  (func (export "_start")
    (i32.store (i32.const 200) (i32.const 256))
    (i32.store (i32.const 204) (i32.const 10))
    (drop (call $w (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 208)))
    (call $exit (i32.const 5)))
  (func (export "wait")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 60000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#;
