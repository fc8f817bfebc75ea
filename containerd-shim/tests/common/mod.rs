//! What the shim's integration tests share: where the shim binary is and a private
//! containerd configured to find it.

use std::path::{Path, PathBuf};

use wasmbay_testkit::ContainerdConfig;

pub const RUNTIME: &str = "io.containerd.wasmtime.v1";

pub fn shim_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-wasmtime-v1"))
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
