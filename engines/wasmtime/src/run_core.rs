//! Running WASI preview 1 core modules.

use std::sync::Arc;

use wasmbay_shim_core::{
    CompiledModule, EngineError, ExitStatus, ModuleKind, StopHandle, StopMode, WasiConfig,
};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::limits::MemoryLimiter;
use crate::outcome::{arm_stop, classify};

pub(crate) struct CoreState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

pub(crate) fn linker(
    engine: &wasmtime::Engine,
) -> Result<wasmtime::Linker<CoreState>, EngineError> {
    let mut linker = wasmtime::Linker::new(engine);
    let internal = |e: wasmtime::Error| EngineError::Internal(format!("{e:#}"));
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut CoreState| &mut state.wasi)
        .map_err(internal)?;
    // wasmtime-wasi turns `proc_exit(n)` with n >= 126 into a trap (a CLI convention that keeps
    // shell codes free). A container reports the program's own status, whatever it is, so
    // `proc_exit` is replaced by one that passes every value through.
    linker.allow_shadowing(true);
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "proc_exit",
            |_: wasmtime::Caller<'_, CoreState>, code: i32| -> wasmtime::Result<()> {
                Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(code)))
            },
        )
        .map_err(internal)?;
    linker.allow_shadowing(false);
    Ok(linker)
}

pub(crate) struct CoreModule {
    engine: wasmtime::Engine,
    stop_mode: StopMode,
    module: wasmtime::Module,
    pre: Arc<wasmtime::InstancePre<CoreState>>,
}

impl CoreModule {
    pub(crate) fn new(
        engine: wasmtime::Engine,
        stop_mode: StopMode,
        module: wasmtime::Module,
        pre: wasmtime::InstancePre<CoreState>,
    ) -> Self {
        CoreModule {
            engine,
            stop_mode,
            module,
            pre: Arc::new(pre),
        }
    }
}

impl CompiledModule for CoreModule {
    fn kind(&self) -> ModuleKind {
        ModuleKind::Core
    }

    fn run(
        &self,
        config: WasiConfig,
        entry: Option<&str>,
        stop: &StopHandle,
    ) -> Result<ExitStatus, EngineError> {
        let name = entry.unwrap_or("_start");
        // Check the export before building anything so that a typo in `#func` is a load error,
        // not a trap.
        match self.module.get_export(name) {
            Some(wasmtime::ExternType::Func(_)) => {}
            _ => {
                return Err(EngineError::MissingExport {
                    name: name.to_string(),
                })
            }
        }
        let memory_limit = config.memory_limit;
        let wasi = crate::run_component::wasi_builder(&config)?.build_p1();
        let mut store = wasmtime::Store::new(
            &self.engine,
            CoreState {
                wasi,
                limiter: MemoryLimiter::new(memory_limit),
            },
        );
        store.limiter(|state| &mut state.limiter);
        if let Some(status) = arm_stop(&self.engine, self.stop_mode, &mut store, stop) {
            return Ok(status);
        }

        let result = (|| {
            let instance = self.pre.instantiate(&mut store)?;
            let func = instance
                .get_func(&mut store, name)
                .ok_or_else(|| wasmtime::format_err!("export `{name}` is not a function"))?;
            let ty = func.ty(&store);
            if ty.params().len() != 0 {
                wasmtime::bail!("export `{name}` takes parameters; an entrypoint must take none");
            }
            let mut results = vec![wasmtime::Val::I32(0); ty.results().len()];
            func.call(&mut store, &[], &mut results)?;
            // An entrypoint returning an i32 reports it as its exit code, as C `main` does.
            Ok(match results.first() {
                Some(wasmtime::Val::I32(code)) => *code,
                _ => 0,
            })
        })();
        stop.clear_waker();
        match result {
            Ok(code) => Ok(ExitStatus::Exited(code)),
            Err(e) if e.to_string().contains("takes parameters") => {
                Err(EngineError::Instantiate(format!("{e:#}")))
            }
            Err(e) => classify(e, stop),
        }
    }
}
