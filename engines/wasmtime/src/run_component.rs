//! Running `wasi:cli/command` components (WASI preview 2), and the WASI context shared with
//! core modules.

use std::sync::Arc;

use wasmbay_shim_core::{
    CompiledModule, EngineError, ExitStatus, ModuleKind, Stdio, StopHandle, StopMode, WasiConfig,
};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::http_hooks::GuestHttpHooks;
use crate::limits::MemoryLimiter;
use crate::outcome::{arm_stop, classify};

pub(crate) struct ComponentState {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    http: WasiHttpCtx,
    http_hooks: GuestHttpHooks,
}

impl ComponentState {
    /// `network`: whether outgoing `wasi:http` requests may be sent (http_hooks.rs).
    pub(crate) fn new(
        ctx: WasiCtx,
        table: ResourceTable,
        limiter: MemoryLimiter,
        network: bool,
    ) -> Self {
        ComponentState {
            ctx,
            table,
            limiter,
            http: WasiHttpCtx::new(),
            http_hooks: GuestHttpHooks { network },
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

pub(crate) fn linker(
    engine: &wasmtime::Engine,
) -> Result<wasmtime::component::Linker<ComponentState>, EngineError> {
    let mut linker = wasmtime::component::Linker::new(engine);
    let internal = |e: wasmtime::Error| EngineError::Internal(format!("{e:#}"));
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(internal)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(internal)?;
    Ok(linker)
}

/// Builds the WASI context for `config`. Only what the config lists reaches the guest: no host
/// environment, no directories beyond the preopens, and no network unless `config.network`.
/// Takes the config by reference: a served handler builds one context per request from it.
pub(crate) fn wasi_builder(config: &WasiConfig) -> Result<WasiCtxBuilder, EngineError> {
    let mut builder = WasiCtxBuilder::new();
    builder.args(&config.args).envs(&config.env);
    if !config.cwd.is_empty() {
        builder.initial_cwd(&config.cwd);
    }
    // Blocking file operations run on the calling thread instead of bouncing through tokio's
    // blocking pool: each instance has its own thread, and the hop costs more than it saves.
    builder.allow_blocking_current_thread(true);
    // Sockets may always be created: an unbound socket reaches nothing, and every address is
    // refused by the default check unless the network is the guest's (as with `wasmtime run`
    // without `-Sinherit-network`). Name lookup reaches the resolver, so it follows the network.
    if config.network {
        builder.inherit_network();
    }
    builder
        .allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(config.network);
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
    let file = |file: &std::fs::File, stream: &str| {
        file.try_clone()
            .map_err(|e| EngineError::WasiSetup(format!("{stream}: {e}")))
    };
    match &config.stdin {
        Stdio::Inherit => {
            builder.inherit_stdin();
        }
        Stdio::Null => {}
        Stdio::File(f) => {
            builder.stdin(wasmtime_wasi::cli::InputFile::new(file(f, "stdin")?));
        }
    }
    match &config.stdout {
        Stdio::Inherit => {
            builder.stdout(std::io::stdout());
        }
        Stdio::Null => {}
        Stdio::File(f) => {
            builder.stdout(wasmtime_wasi::cli::OutputFile::new(file(f, "stdout")?));
        }
    }
    match &config.stderr {
        Stdio::Inherit => {
            builder.stderr(std::io::stderr());
        }
        Stdio::Null => {}
        Stdio::File(f) => {
            builder.stderr(wasmtime_wasi::cli::OutputFile::new(file(f, "stderr")?));
        }
    }
    Ok(builder)
}

/// Components always carry epoch checks (see `WasmtimeEngine::components`), so a stop
/// interrupts the guest in place: [`StopMode::InGuest`], whatever the frontend chose.
pub(crate) struct ComponentModule {
    engine: wasmtime::Engine,
    pre: Arc<CommandPre<ComponentState>>,
}

impl ComponentModule {
    pub(crate) fn new(
        engine: wasmtime::Engine,
        pre: wasmtime::component::InstancePre<ComponentState>,
    ) -> Result<Self, EngineError> {
        let pre = CommandPre::new(pre).map_err(|e| EngineError::MissingExport {
            name: format!("wasi:cli/run ({e:#})"),
        })?;
        Ok(ComponentModule {
            engine,
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
        let mut store = match command_store(&self.engine, config, entry, stop)? {
            Ok(store) => store,
            Err(status) => return Ok(status),
        };
        let result = (|| {
            let command = self.pre.instantiate(&mut store)?;
            command.wasi_cli_run().call_run(&mut store)
        })();
        command_status(result, stop)
    }
}

/// The store a command component runs in: its WASI context and memory limit, armed for `stop`.
/// `Err` holds the status to report at once when the stop came before the run. Components run
/// only `wasi:cli/run`, so an `entry` is refused.
pub(crate) fn command_store(
    engine: &wasmtime::Engine,
    config: WasiConfig,
    entry: Option<&str>,
    stop: &StopHandle,
) -> Result<Result<wasmtime::Store<ComponentState>, ExitStatus>, EngineError> {
    if let Some(name) = entry {
        return Err(EngineError::MissingExport {
            name: format!("{name} (components only run wasi:cli/run)"),
        });
    }
    let memory_limit = config.memory_limit;
    let network = config.network;
    let ctx = wasi_builder(&config)?.build();
    let mut store = wasmtime::Store::new(
        engine,
        ComponentState::new(
            ctx,
            ResourceTable::new(),
            MemoryLimiter::new(memory_limit),
            network,
        ),
    );
    store.limiter(|state| state.limiter());
    match arm_stop(engine, StopMode::InGuest, &mut store, stop) {
        Some(status) => Ok(Err(status)),
        None => Ok(Ok(store)),
    }
}

/// A command's exit status from what `wasi:cli/run` returned (ok or error, or how it ended).
pub(crate) fn command_status(
    result: wasmtime::Result<Result<(), ()>>,
    stop: &StopHandle,
) -> Result<ExitStatus, EngineError> {
    stop.clear_waker();
    match result {
        Ok(Ok(())) => Ok(ExitStatus::Exited(0)),
        Ok(Err(())) => Ok(ExitStatus::Exited(1)),
        Err(e) => classify(e, stop),
    }
}
