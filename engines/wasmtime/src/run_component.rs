//! Running `wasi:cli/command` components (WASI preview 2), and the WASI context shared with
//! core modules.

use std::sync::Arc;

use wasmbay_shim_core::{
    CompiledModule, EngineError, ExitStatus, ModuleKind, Stdio, StopHandle, StopMode, WasiConfig,
};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::limits::MemoryLimiter;
use crate::outcome::{arm_stop, classify};

pub(crate) struct ComponentState {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

pub(crate) fn linker(
    engine: &wasmtime::Engine,
) -> Result<wasmtime::component::Linker<ComponentState>, EngineError> {
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| EngineError::Internal(format!("{e:#}")))?;
    Ok(linker)
}

/// Builds the WASI context for `config`. Only what the config lists reaches the guest: no host
/// environment, no network, no directories beyond the preopens.
pub(crate) fn wasi_builder(config: WasiConfig) -> Result<WasiCtxBuilder, EngineError> {
    let mut builder = WasiCtxBuilder::new();
    builder.args(&config.args).envs(&config.env);
    if !config.cwd.is_empty() {
        builder.initial_cwd(&config.cwd);
    }
    // Blocking file operations run on the calling thread instead of bouncing through tokio's
    // blocking pool: each instance has its own thread, and the hop costs more than it saves.
    builder.allow_blocking_current_thread(true);
    for preopen in &config.preopens {
        let perms = if preopen.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        builder
            .preopened_dir(&preopen.host, &preopen.guest, perms)
            .map_err(|e| {
                EngineError::WasiSetup(format!(
                    "preopen {} as {}: {e:#}",
                    preopen.host.display(),
                    preopen.guest
                ))
            })?;
    }
    match config.stdin {
        Stdio::Inherit => {
            builder.inherit_stdin();
        }
        Stdio::Null => {}
        Stdio::File(file) => {
            builder.stdin(wasmtime_wasi::cli::InputFile::new(file));
        }
    }
    match config.stdout {
        Stdio::Inherit => {
            builder.stdout(std::io::stdout());
        }
        Stdio::Null => {}
        Stdio::File(file) => {
            builder.stdout(wasmtime_wasi::cli::OutputFile::new(file));
        }
    }
    match config.stderr {
        Stdio::Inherit => {
            builder.stderr(std::io::stderr());
        }
        Stdio::Null => {}
        Stdio::File(file) => {
            builder.stderr(wasmtime_wasi::cli::OutputFile::new(file));
        }
    }
    Ok(builder)
}

pub(crate) struct ComponentModule {
    engine: wasmtime::Engine,
    stop_mode: StopMode,
    pre: Arc<CommandPre<ComponentState>>,
}

impl ComponentModule {
    pub(crate) fn new(
        engine: wasmtime::Engine,
        stop_mode: StopMode,
        pre: wasmtime::component::InstancePre<ComponentState>,
    ) -> Result<Self, EngineError> {
        let pre = CommandPre::new(pre).map_err(|e| EngineError::MissingExport {
            name: format!("wasi:cli/run ({e:#})"),
        })?;
        Ok(ComponentModule {
            engine,
            stop_mode,
            pre: Arc::new(pre),
        })
    }
}

impl CompiledModule for ComponentModule {
    fn kind(&self) -> ModuleKind {
        ModuleKind::Component
    }

    fn run(
        &self,
        config: WasiConfig,
        entry: Option<&str>,
        stop: &StopHandle,
    ) -> Result<ExitStatus, EngineError> {
        if let Some(name) = entry {
            return Err(EngineError::MissingExport {
                name: format!("{name} (components only run wasi:cli/run)"),
            });
        }
        let memory_limit = config.memory_limit;
        let ctx = wasi_builder(config)?.build();
        let mut store = wasmtime::Store::new(
            &self.engine,
            ComponentState {
                ctx,
                table: ResourceTable::new(),
                limiter: MemoryLimiter::new(memory_limit),
            },
        );
        store.limiter(|state| &mut state.limiter);
        if let Some(status) = arm_stop(&self.engine, self.stop_mode, &mut store, stop) {
            return Ok(status);
        }
        let result = (|| {
            let command = self.pre.instantiate(&mut store)?;
            command.wasi_cli_run().call_run(&mut store)
        })();
        stop.clear_waker();
        match result {
            Ok(Ok(())) => Ok(ExitStatus::Exited(0)),
            Ok(Err(())) => Ok(ExitStatus::Exited(1)),
            Err(e) => classify(e, stop),
        }
    }
}
