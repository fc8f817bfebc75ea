//! Running `wasi:cli/command` components of WASI 0.3. Their calls are asynchronous (component
//! model async), so a run is a future driven on wasmtime-wasi's tokio runtime; the 0.2
//! interfaces such components still import are linked in their asynchronous form, since a
//! synchronous host call would block that runtime from inside itself.

use std::sync::Arc;

use wasmbay_shim_core::{
    CompiledModule, EngineError, ExitStatus, ModuleKind, StopHandle, WasiConfig,
};
use wasmtime::component::Linker;
use wasmtime_wasi::p3::bindings::CommandPre;

use crate::run_component::{command_status, command_store, ComponentState};

/// The 0.2 and 0.3 WASI interfaces, asynchronous, in one linker.
pub(crate) fn linker(engine: &wasmtime::Engine) -> Result<Linker<ComponentState>, EngineError> {
    let mut linker = p2_async_linker(engine)?;
    let internal = |e: wasmtime::Error| EngineError::Internal(format!("{e:#}"));
    wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(internal)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(internal)?;
    Ok(linker)
}

/// The 0.2 WASI interfaces and `wasi:http`, asynchronous: what a 0.2 HTTP handler needs, the
/// handler being called concurrently. Half the size of [`linker`], which a served container
/// builds at every start.
pub(crate) fn p2_async_linker(
    engine: &wasmtime::Engine,
) -> Result<Linker<ComponentState>, EngineError> {
    let mut linker = Linker::new(engine);
    let internal = |e: wasmtime::Error| EngineError::Internal(format!("{e:#}"));
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(internal)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(internal)?;
    Ok(linker)
}

/// Components always carry epoch checks (see `WasmtimeEngine::components`), so a stop
/// interrupts the guest in place (`StopMode::InGuest`), whatever the frontend chose.
pub(crate) struct P3CommandModule {
    engine: wasmtime::Engine,
    pre: Arc<CommandPre<ComponentState>>,
}

impl P3CommandModule {
    pub(crate) fn new(
        engine: wasmtime::Engine,
        pre: wasmtime::component::InstancePre<ComponentState>,
    ) -> Result<Self, EngineError> {
        let pre = CommandPre::new(pre).map_err(|e| EngineError::MissingExport {
            name: format!("wasi:cli/run@0.3 ({e:#})"),
        })?;
        Ok(P3CommandModule {
            engine,
            pre: Arc::new(pre),
        })
    }
}

impl CompiledModule for P3CommandModule {
    fn kind(&self) -> ModuleKind {
        ModuleKind::Component
    }

    fn run(
        &self,
        config: WasiConfig,
        entry: Option<&str>,
        stop: &StopHandle,
    ) -> Result<ExitStatus, EngineError> {
        let mut store = match command_store(&self.engine, config, entry, stop)? {
            Ok(store) => store,
            Err(status) => return Ok(status),
        };
        let pre = self.pre.clone();
        // wasmtime-wasi's sockets and timers need a tokio runtime with I/O; `in_tokio` runs the
        // future on the one that crate keeps for synchronous embedders.
        let result = wasmtime_wasi::runtime::in_tokio(async move {
            let command = pre.instantiate_async(&mut store).await?;
            store
                .run_concurrent(async move |store| command.wasi_cli_run().call_run(store).await)
                .await?
        });
        command_status(result, stop)
    }
}
