//! Running a WASI preview 1 command on WasmEdge: instantiate, call, classify the end.

use std::sync::Arc;

use wasmbay_shim_core::{
    CompiledModule, EngineError, ExitStatus, ModuleKind, StopHandle, WasiConfig,
};

use crate::capi::{self, AstModule, Completed, Config, Executor, Failure, Store};

/// WebAssembly page size: WasmEdge limits memory in pages, wasmbay in bytes.
const PAGE: u64 = 65536;

pub(crate) struct CoreModule {
    ast: Arc<AstModule>,
}

impl CoreModule {
    pub(crate) fn new(ast: AstModule) -> Self {
        CoreModule { ast: Arc::new(ast) }
    }
}

impl CompiledModule for CoreModule {
    fn kind(&self) -> ModuleKind {
        ModuleKind::Core
    }

    fn run(
        &self,
        mut config: WasiConfig,
        entry: Option<&str>,
        stop: &StopHandle,
    ) -> Result<ExitStatus, EngineError> {
        let name = entry.unwrap_or("_start");
        // Checked on the module before anything is built, so that a typo in `#func` is a load
        // error and not a trap.
        if !self.ast.exports_function(name) {
            return Err(EngineError::MissingExport {
                name: name.to_string(),
            });
        }
        // A stop that came before the run must not let any guest code run (not even the first
        // instructions before WasmEdge's thread sees the stop token).
        if let Some(signal) = stop.requested() {
            return Ok(ExitStatus::Killed(signal));
        }

        let internal = |e: Failure| EngineError::Internal(e.to_string());
        let mut runtime = Config::new().map_err(internal)?;
        if let Some(limit) = config.memory_limit {
            // WasmEdge caps each memory, not their sum; with one memory (every WASI command
            // today) that is the same thing. Below one page nothing can be instantiated.
            runtime.set_max_memory_pages(limit / PAGE);
        }
        let wasi = crate::wasi::build(&mut config)?;
        let mut executor = Executor::new(&runtime).map_err(internal)?;
        let mut store = Store::new().map_err(internal)?;
        executor
            .register_import(&mut store, &wasi.module)
            .map_err(|e| EngineError::WasiSetup(e.to_string()))?;
        let instance = executor
            .instantiate(&mut store, &self.ast)
            .map_err(|e| EngineError::Instantiate(e.to_string()))?;
        let func = instance
            .function(name)
            .ok_or_else(|| EngineError::MissingExport {
                name: name.to_string(),
            })?;
        let (params, returns_i32) = func.signature();
        if params != 0 {
            return Err(EngineError::Instantiate(format!(
                "export `{name}` takes parameters; an entrypoint must take none"
            )));
        }

        let run = executor.start(&func).map_err(internal)?;
        let canceller = run.canceller();
        // SAFETY: the waker is cleared below before `run` is dropped, and `StopHandle` calls
        // wakers under the same lock that `clear_waker` takes, so no cancel can reach a
        // deleted run.
        stop.set_waker(move || unsafe { canceller.cancel() });
        let outcome = run.wait(returns_i32);
        stop.clear_waker();
        drop(run);

        let status = match outcome {
            Ok((Completed::Terminated, _)) => ExitStatus::Exited(i32::from_ne_bytes(
                wasi.module.wasi_exit_code().to_ne_bytes(),
            )),
            Ok((Completed::Returned, code)) => ExitStatus::Exited(code.unwrap_or(0)),
            Err(failure) if failure.code == capi::CODE_INTERRUPTED => {
                ExitStatus::Killed(stop.requested().unwrap_or(libc::SIGKILL))
            }
            Err(failure) => ExitStatus::Trapped(failure.message),
        };
        tracing::debug!(%status, entry = name, "wasmedge run ended");
        // The guest instance goes before the store and the WASI module it imports from.
        drop(instance);
        drop(store);
        drop(wasi);
        Ok(status)
    }
}
