//! The WasmEdge engine behind wasmbay's [`Engine`](wasmbay_shim_core::Engine) trait.
//!
//! Owns: loading and validating core modules with WasmEdge, running WASI preview 1 commands
//! (args, env, preopens, stdio descriptors, memory limit, `#func` entry points), and stopping a
//! run through WasmEdge's executor stop token. Knows nothing of containers: frontends hand it a
//! [`WasiConfig`](wasmbay_shim_core::WasiConfig).
//!
//! Not supported, and refused with a typed error rather than approximated:
//! - components (WASI preview 2): WasmEdge 0.17 has no `wasi:cli/command` host, so
//!   [`EngineError::Unsupported`](wasmbay_shim_core::EngineError::Unsupported);
//! - precompiled artifacts: the engine runs WasmEdge's interpreter (libwasmedge built with
//!   `WASMEDGE_USE_LLVM=OFF`), which has no AOT compiler, so `precompile` answers
//!   [`EngineError::NoPrecompile`](wasmbay_shim_core::EngineError::NoPrecompile) and the
//!   loader compiles (parses and validates) on every start instead of caching.
//!
//! Known differences from the wasmtime engine, all from WasmEdge itself:
//! - the memory limit caps each linear memory (`WasmEdge_ConfigureSetMaxMemoryPage`), not
//!   their sum, and is rounded down to whole 64 KiB pages;
//! - `WasiConfig::cwd` is not passed on: WasmEdge's WASI has no initial working directory;
//! - a guest blocked inside a host call (a read on stdin, `poll_oneoff`) sees the stop only
//!   when the call returns; the frontends' grace period covers that, as for wasmtime;
//! - read-only preopens use WasmEdge's `:readonly` flag, which withholds the write rights of
//!   the directory and of everything opened under it.
//!
//! Features: `wasmedge` (off by default) compiles the engine and links the WasmEdge C library
//! 0.17.x, found where `wasmedge-sys` looks (`WASMEDGE_INCLUDE_DIR` + `WASMEDGE_LIB_DIR`,
//! `WASMEDGE_DIR`, `WASMEDGE_BUILD_DIR`, `~/.wasmedge`, `/usr/local`, `~/.local`). Without it
//! this crate is empty, so `cargo build --workspace` never needs libwasmedge.

#[cfg(feature = "wasmedge")]
mod capi;
#[cfg(feature = "wasmedge")]
mod run;
#[cfg(feature = "wasmedge")]
mod wasi;

#[cfg(feature = "wasmedge")]
pub use engine::WasmEdgeEngine;

/// The version of the WasmEdge library this process loaded, as `--version` reports it: it is
/// linked dynamically, so the one found at run time is the one that counts.
#[cfg(feature = "wasmedge")]
pub fn library_version() -> String {
    capi::version()
}

#[cfg(feature = "wasmedge")]
mod engine {
    use std::path::Path;
    use std::sync::Arc;

    use wasmbay_shim_core::{CompiledModule, Engine, EngineError, ModuleKind};

    use crate::capi::{self, AstModule, Config};
    use crate::run::CoreModule;

    /// WasmEdge's interpreter with its default proposals; cheap to share between threads.
    pub struct WasmEdgeEngine {
        config: Config,
        fingerprint: String,
    }

    impl WasmEdgeEngine {
        pub fn new() -> Result<Self, EngineError> {
            // WasmEdge logs every trap and WASI error to the process's stderr through spdlog.
            // That stream belongs to the guest; wasmbay reports the trap itself.
            wasmedge_sdk::LogManager::log_off();
            let config = Config::new().map_err(|e| EngineError::Internal(e.to_string()))?;
            let version = capi::version();
            tracing::debug!(%version, "wasmedge engine ready");
            Ok(WasmEdgeEngine {
                config,
                fingerprint: format!("{version}-interpreter-{}", std::env::consts::ARCH),
            })
        }

        fn no_artifacts(path: &Path) -> EngineError {
            EngineError::BadArtifact {
                path: path.to_path_buf(),
                reason: "the wasmedge engine runs the interpreter and never writes precompiled \
                         artifacts"
                    .into(),
            }
        }

        fn refuse_components(kind: ModuleKind) -> Result<(), EngineError> {
            match kind {
                ModuleKind::Core => Ok(()),
                ModuleKind::Component => Err(EngineError::Unsupported {
                    engine: "wasmedge",
                    kind: kind.as_str(),
                }),
            }
        }
    }

    impl Engine for WasmEdgeEngine {
        fn name(&self) -> &'static str {
            "wasmedge"
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
            Self::refuse_components(kind)?;
            let ast = AstModule::parse(&self.config, wasm)
                .map_err(|e| EngineError::InvalidModule(e.to_string()))?;
            Ok(Arc::new(CoreModule::new(ast)))
        }

        fn precompile(&self, _wasm: &[u8], kind: ModuleKind) -> Result<Vec<u8>, EngineError> {
            Self::refuse_components(kind)?;
            Err(EngineError::NoPrecompile { engine: "wasmedge" })
        }

        fn load_precompiled(
            &self,
            path: &Path,
            kind: ModuleKind,
        ) -> Result<Arc<dyn CompiledModule>, EngineError> {
            Self::refuse_components(kind)?;
            Err(Self::no_artifacts(path))
        }

        fn load_precompiled_file(
            &self,
            _file: std::fs::File,
            origin: &Path,
            kind: ModuleKind,
        ) -> Result<Arc<dyn CompiledModule>, EngineError> {
            Self::refuse_components(kind)?;
            Err(Self::no_artifacts(origin))
        }
    }
}
