//! The wasmer engine behind wasmbay's [`Engine`] trait.
//!
//! Owns: engine settings (Cranelift), compiling and precompiling core modules, loading
//! precompiled artifacts by mapping the cache file, and running WASI preview 1 commands through
//! wasix with a memory limit and a stop that reaches `loop {}`. Knows nothing of containers:
//! frontends hand it a [`WasiConfig`](wasmbay_shim_core::WasiConfig).
//!
//! Not supported: components (WASI preview 2). wasmer has no component model, so
//! [`Engine::supports`] says no for [`ModuleKind::Component`] and compiling one is
//! [`EngineError::Unsupported`]; use the wasmtime engine for components.
//!
//! Depends on `wasmbay-shim-core` only, and is compiled in by the `wasmer` feature of
//! `wasmbay-engines`.
#![cfg(feature = "wasmer")]

mod host;
mod limits;
mod outcome;
mod preopens;
mod read_only_fs;
mod run_core;
mod settings;
mod stdio;
mod stop;
mod wasi_env;
mod wrappers;

use std::path::Path;
use std::sync::Arc;

use wasmbay_shim_core::{CompiledModule, Engine, EngineError, ModuleKind};

pub use settings::Settings;

/// The wasmer release this engine is built on, as `--version` reports it.
pub const WASMER_VERSION: &str = wasmer_types::VERSION;

/// wasmer with one configuration; cheap to share between threads.
pub struct WasmerEngine {
    engine: wasmer::Engine,
    host: host::LazyHost,
    fingerprint: String,
}

impl WasmerEngine {
    pub fn new(settings: &Settings) -> Result<Self, EngineError> {
        let engine = settings.build_engine()?;
        let fingerprint = settings::fingerprint(&engine);
        Ok(WasmerEngine {
            engine,
            host: host::LazyHost::default(),
            fingerprint,
        })
    }

    fn wrap(&self, module: wasmer::Module) -> Arc<dyn CompiledModule> {
        Arc::new(run_core::CoreModule::new(
            self.engine.clone(),
            module,
            self.host.clone(),
        ))
    }

    fn refuse_components(&self, kind: ModuleKind) -> Result<(), EngineError> {
        match kind {
            ModuleKind::Core => Ok(()),
            ModuleKind::Component => Err(EngineError::Unsupported {
                engine: "wasmer",
                kind: kind.as_str(),
            }),
        }
    }

    /// Loads an artifact by path. The path may be a procfs link to an open descriptor.
    fn deserialize(&self, path: &Path, origin: &Path) -> Result<wasmer::Module, EngineError> {
        // SAFETY: the artifact comes from the cache, which only this runtime writes (mode 0700
        // directory, files replaced by rename) under a key that includes the fingerprint;
        // wasmer still validates the artifact's layout. The file is mapped, not copied, so
        // processes running the same module share its pages.
        unsafe { wasmer::Module::deserialize_from_file(&self.engine, path) }.map_err(|e| {
            EngineError::BadArtifact {
                path: origin.to_path_buf(),
                reason: e.to_string(),
            }
        })
    }
}

impl Engine for WasmerEngine {
    fn name(&self) -> &'static str {
        "wasmer"
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn supports(&self, kind: ModuleKind) -> bool {
        kind == ModuleKind::Core
    }

    fn compile(
        &self,
        wasm: &[u8],
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError> {
        self.refuse_components(kind)?;
        let module = wasmer::Module::new(&self.engine, wasm)
            .map_err(|e| EngineError::InvalidModule(e.to_string()))?;
        Ok(self.wrap(module))
    }

    fn precompile(&self, wasm: &[u8], kind: ModuleKind) -> Result<Vec<u8>, EngineError> {
        self.refuse_components(kind)?;
        let module = wasmer::Module::new(&self.engine, wasm)
            .map_err(|e| EngineError::InvalidModule(e.to_string()))?;
        let bytes = module
            .serialize()
            .map_err(|e| EngineError::Internal(format!("cannot serialize module: {e}")))?;
        Ok(bytes.to_vec())
    }

    fn load_precompiled(
        &self,
        path: &Path,
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError> {
        self.refuse_components(kind)?;
        Ok(self.wrap(self.deserialize(path, path)?))
    }

    fn load_precompiled_file(
        &self,
        file: std::fs::File,
        origin: &Path,
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError> {
        self.refuse_components(kind)?;
        // wasmer maps artifacts only by path; the open descriptor has one in procfs, which
        // works inside a container where the cache directory is not visible. The mapping
        // outlives the descriptor, which is closed once loaded.
        use std::os::fd::AsRawFd;
        let by_fd = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let module = self.deserialize(&by_fd, origin)?;
        drop(file);
        Ok(self.wrap(module))
    }
}
