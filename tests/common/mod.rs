//! Shared helpers for the CLI integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared wasi-testsuite corpus: `$WASMBAY_SHARED_DIR`, else `../shared` beside the repo.
/// Its absence fails the test: it is the external referee, not an optional extra.
pub fn shared_testsuite() -> PathBuf {
    let base = std::env::var_os("WASMBAY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    let dir = base.join("conformance/wasi-testsuite/tests");
    assert!(
        dir.is_dir(),
        "wasi-testsuite not found at {} (set WASMBAY_SHARED_DIR to the shared directory)",
        dir.display()
    );
    dir
}

/// A `wasmbay` command with a private precompiled cache, so tests never share state with each
/// other or with the machine.
pub fn wasmbay(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmbay"));
    cmd.env("WASMBAY_CACHE_DIR", cache);
    cmd.env_remove("RUST_LOG");
    cmd
}

/// A module that prints `ready` and then spins without host calls (export `spin`), or exits
/// with the code given to export `exit`.
pub const SPIN_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\n")
  (func $ready
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (call $ready) (loop (br 0)))
  (func (export "exit7") (call $exit (i32.const 7))))
"#;

/// Builds the project's Rust test programs into `conformance/corpus` (idempotent).
pub fn build_corpus() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(build_corpus_now);
}

fn build_corpus_now() {
    let status = Command::new(repo_root().join("scripts/build-corpus.sh"))
        .status()
        .expect("run scripts/build-corpus.sh");
    assert!(status.success(), "scripts/build-corpus.sh failed");
}
