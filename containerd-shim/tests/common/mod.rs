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
