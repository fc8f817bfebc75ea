//! wasmer configuration and the fingerprint of the code it generates.
//!
//! wasmer checks an artifact's layout when loading it but not which compiler settings or CPU
//! features produced it, so everything that changes generated code is spelled out in
//! [`fingerprint`], which the precompiled cache keys on.

use wasmbay_shim_core::EngineError;
use wasmer::sys::{Cranelift, CraneliftOptLevel, NativeEngineExt};

/// Tunables a frontend may change (runtime options, CLI flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Cranelift optimisation: `speed` unless turned off for faster compiles.
    pub optimize: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { optimize: true }
    }
}

impl Settings {
    pub(crate) fn build_engine(&self) -> Result<wasmer::Engine, EngineError> {
        let mut cranelift = Cranelift::new();
        cranelift.opt_level(if self.optimize {
            CraneliftOptLevel::Speed
        } else {
            CraneliftOptLevel::None
        });
        Ok(wasmer::Engine::from(cranelift))
    }
}

/// Everything that makes two artifacts incompatible: wasmer's version, the target triple, the
/// CPU features code was generated for, and the compiler's own settings id.
pub(crate) fn fingerprint(engine: &wasmer::Engine) -> String {
    let target = NativeEngineExt::target(engine);
    let mut features: Vec<String> = target
        .cpu_features()
        .iter()
        .map(|f| f.to_string())
        .collect();
    features.sort();
    format!(
        "wasmer-{}/{}/{}/{}",
        wasmer_types::VERSION,
        target.triple(),
        features.join(","),
        engine.deterministic_id()
    )
}
