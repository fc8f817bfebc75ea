//! The engines compiled into this binary, selected by name. Asking for an engine that is not
//! compiled in is an error that says how to get it, never a silent substitution.

use std::sync::Arc;

use anyhow::{bail, Result};
use wasmbay_shim_core::Engine;

/// Engine used when none is named.
pub const DEFAULT_ENGINE: &str = "wasmtime";

/// Every engine wasmbay knows, and whether this build has it.
pub fn available() -> Vec<(&'static str, bool)> {
    vec![
        ("wasmtime", cfg!(feature = "wasmtime")),
        ("wasmer", false),
        ("wasmedge", false),
    ]
}

pub fn create(name: &str) -> Result<Arc<dyn Engine>> {
    match name {
        #[cfg(feature = "wasmtime")]
        "wasmtime" => Ok(Arc::new(wasmbay_engine_wasmtime::WasmtimeEngine::new(
            &wasmbay_engine_wasmtime::Settings::default(),
        )?)),
        known if available().iter().any(|(n, _)| *n == known) => bail!(
            "engine `{known}` is not compiled into this binary; rebuild with `cargo build --features {known}`"
        ),
        unknown => {
            let names: Vec<_> = available().iter().map(|(n, _)| *n).collect();
            bail!("unknown engine `{unknown}` (known engines: {})", names.join(", "))
        }
    }
}
