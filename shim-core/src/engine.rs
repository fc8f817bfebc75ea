//! The [`Engine`] trait: the only thing a frontend knows about a WebAssembly engine.
//!
//! The trait is split in two steps because containers start far more often than images change:
//! [`Engine::compile`] or [`Engine::load_precompiled`] produce a [`CompiledModule`] once, and
//! [`CompiledModule::run`] instantiates it as many times as needed. The expensive part (code
//! generation) happens at most once per module per engine configuration; a loaded artifact is
//! mapped from the cache file rather than copied, so that processes running the same image
//! share the code pages.
//!
//! Engines are `Send + Sync` and cheap to share: a frontend keeps one per process and may run
//! several modules on it from different threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exit::ExitStatus;
use crate::serve::ServeLimits;
use crate::stop::StopHandle;
use crate::wasi::WasiConfig;

/// The two shapes of WebAssembly binary a frontend may hand to an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ModuleKind {
    /// A core module implementing a WASI preview 1 command (`_start`).
    Core,
    /// A component implementing `wasi:cli/command` (WASI preview 2).
    Component,
}

impl ModuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Core => "core",
            ModuleKind::Component => "component",
        }
    }
}

/// Why an engine refused or failed a module. Each variant names the thing at fault; frontends
/// add the file or container id around it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{engine} does not support {kind} modules")]
    Unsupported {
        engine: &'static str,
        kind: &'static str,
    },
    #[error("invalid module: {0}")]
    InvalidModule(String),
    #[error("module has no exported function `{name}`")]
    MissingExport { name: String },
    /// A component that exports no `wasi:cli/run`: an HTTP handler (served, not run), or
    /// neither world. The text says which.
    #[error("component is not a wasi:cli command: {0}")]
    NotACommand(String),
    /// Asked to serve a module that exports no `wasi:http` handler. The text says what it is.
    #[error("component is not a wasi:http handler: {0}")]
    NotAnHttpHandler(String),
    /// The server itself failed (the listener broke, the runtime could not start).
    #[error("cannot serve: {0}")]
    Serve(String),
    #[error("precompiled artifact {path} is unusable: {reason}")]
    BadArtifact { path: PathBuf, reason: String },
    #[error("cannot set up WASI: {0}")]
    WasiSetup(String),
    #[error("cannot instantiate module: {0}")]
    Instantiate(String),
    #[error("{engine} cannot precompile modules")]
    NoPrecompile { engine: &'static str },
    #[error("engine failure: {0}")]
    Internal(String),
}

/// Exit codes for errors that happen before the guest runs. They sit in a block (240..=250)
/// below [`crate::exit::TRAP_EXIT_CODE`] and above the signal range so that scripts can tell
/// "the module is broken" from "the module ran and failed".
pub mod error_codes {
    /// Internal or setup failure of the runtime itself.
    pub const RUNTIME: i32 = 240;
    /// The engine cannot run this kind of module (e.g. components on an engine without them).
    pub const UNSUPPORTED: i32 = 242;
    /// The requested entrypoint export (`#func`) does not exist.
    pub const UNKNOWN_FUNC: i32 = 243;
    /// The module has no `_start` export and no `#func` was given.
    pub const MISSING_START: i32 = 244;
    /// The bytes are wasm but the module is malformed or fails validation (e.g. truncated).
    pub const INVALID_MODULE: i32 = 245;
    /// The file is not wasm at all (wrong magic, ELF, script, unknown text).
    pub const NOT_WASM: i32 = 246;
    /// The module file does not exist or cannot be read.
    pub const MISSING_FILE: i32 = 247;
}

impl EngineError {
    /// The process exit code a frontend reports for this error (see [`error_codes`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::InvalidModule(_) | EngineError::BadArtifact { .. } => {
                error_codes::INVALID_MODULE
            }
            EngineError::MissingExport { name } if name == "_start" => error_codes::MISSING_START,
            // Like a core module without `_start`: nothing to run.
            EngineError::NotACommand(_) | EngineError::NotAnHttpHandler(_) => {
                error_codes::MISSING_START
            }
            EngineError::MissingExport { .. } => error_codes::UNKNOWN_FUNC,
            EngineError::Unsupported { .. } => error_codes::UNSUPPORTED,
            _ => error_codes::RUNTIME,
        }
    }
}

/// A WebAssembly engine. See the module docs for why compile and run are separate steps.
pub trait Engine: Send + Sync {
    /// The name users select the engine by (`wasmtime`, `wasmer`, `wasmedge`).
    fn name(&self) -> &'static str;

    /// A string that changes whenever compiled artifacts of this engine would change: engine
    /// version, target, and every setting that affects code generation. It is part of the
    /// precompiled cache key, so two engine builds never share an artifact by mistake.
    fn fingerprint(&self) -> String;

    /// Whether this engine can run modules of `kind`.
    fn supports(&self, kind: ModuleKind) -> bool;

    /// Compiles a binary module (already validated as wasm by magic) for running now.
    fn compile(
        &self,
        wasm: &[u8],
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError>;

    /// Compiles a binary module into a serialized artifact for the cache. Engines that cannot
    /// precompile return [`EngineError::NoPrecompile`].
    fn precompile(&self, wasm: &[u8], kind: ModuleKind) -> Result<Vec<u8>, EngineError>;

    /// Loads an artifact produced by [`Engine::precompile`] of an engine with the same
    /// fingerprint, without recompiling. The file may be mapped rather than read, so it must not
    /// be modified while in use (the cache only ever replaces files by rename).
    fn load_precompiled(
        &self,
        path: &Path,
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError>;

    /// Like [`Engine::load_precompiled`], from a file opened earlier. Container frontends open
    /// the artifact on the host and load it after entering the container, where the cache
    /// directory is not visible; `origin` names the artifact in errors.
    fn load_precompiled_file(
        &self,
        file: std::fs::File,
        origin: &Path,
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError>;
}

/// A module ready to be instantiated. Running it twice gives two independent instances.
pub trait CompiledModule: Send + Sync {
    fn kind(&self) -> ModuleKind;

    /// Instantiates the module with `config` and runs it to completion.
    ///
    /// `entry` names the export to call instead of `_start` (the `#func` of an entrypoint); it
    /// must take no parameters. Components only run `wasi:cli/run`, so they refuse `entry`.
    /// The run ends early when `stop` is triggered, with [`ExitStatus::Killed`].
    fn run(
        &self,
        config: WasiConfig,
        entry: Option<&str>,
        stop: &StopHandle,
    ) -> Result<ExitStatus, EngineError>;

    /// Whether the module is an HTTP handler (`wasi:http/incoming-handler` of 0.2, the 0.3
    /// `wasi:http/handler`): such a module is served with [`CompiledModule::serve`], and
    /// [`CompiledModule::run`] refuses it.
    fn serves_http(&self) -> bool {
        false
    }

    /// Serves HTTP on `listener` (already bound, in the network the guest should have) until
    /// `stop` is triggered: each request gets a fresh instance configured from `config`, within
    /// `limits`. After a stop the listener is closed and requests in flight finish; the call
    /// returns once they have. Frontends end the process at once on a second stop signal.
    fn serve(
        &self,
        config: WasiConfig,
        listener: std::net::TcpListener,
        limits: &ServeLimits,
        stop: &StopHandle,
    ) -> Result<(), EngineError> {
        let _ = (config, listener, limits, stop);
        Err(EngineError::NotAnHttpHandler(format!(
            "a {} module is run, not served",
            self.kind().as_str()
        )))
    }
}
