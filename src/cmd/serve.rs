//! `wasmbay serve`: an HTTP handler component (`wasi:http`, WASI 0.2 or 0.3) served on this
//! machine, a fresh instance per request.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::runner::ModuleLoader;
use wasmbay_shim_core::serve::{parse_listen, DEFAULT_LISTEN};
use wasmbay_shim_core::signals::stop_on_signals;
use wasmbay_shim_core::{EngineError, ModuleKind, ServeLimits, StopHandle, StopMode, WasiConfig};

use wasmbay_engines as engines;

use super::run::{flush_stdio, parse_dir};

#[derive(Args)]
pub struct ServeArgs {
    /// Engine to serve the component on.
    #[arg(long, default_value = engines::DEFAULT_ENGINE)]
    engine: String,
    /// Address to listen on: `HOST:PORT`, or `:PORT` for every IPv4 address; port 0 picks a
    /// free one. The first line on stderr names the address served.
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_LISTEN.to_string())]
    listen: String,
    /// Preopen a host directory for every request: `HOST::GUEST`, or `DIR` for both.
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Set a guest environment variable (the host environment is never passed).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    envs: Vec<String>,
    /// Limit on one request's linear memory, in bytes; a request over it is answered 500.
    #[arg(long, value_name = "BYTES")]
    memory_limit: Option<u64>,
    /// Wall-clock budget of one request in milliseconds; guest code still running then is
    /// interrupted and the request answered 500.
    #[arg(long, value_name = "MS", default_value_t = ServeLimits::default().request_timeout.as_millis() as u64)]
    request_timeout_ms: u64,
    /// Requests handled at once; further ones wait.
    #[arg(long, value_name = "N", default_value_t = ServeLimits::default().max_concurrency)]
    max_concurrency: usize,
    /// Compile in memory; neither read nor write the precompiled cache.
    #[arg(long)]
    no_cache: bool,
    /// Let the guest use this host's network (outgoing `wasi:http`, `wasi:sockets`). Off by
    /// default; serving itself needs no such permission.
    #[arg(long)]
    inherit_network: bool,
    /// The component.
    file: String,
}

pub fn main(args: ServeArgs) -> Result<i32> {
    let listen = parse_listen(&args.listen)
        .with_context(|| format!("--listen {:?}: expected HOST:PORT or :PORT", args.listen))?;
    let preopens = args
        .dirs
        .iter()
        .map(|d| parse_dir(d))
        .collect::<Result<Vec<_>>>()?;
    if args.request_timeout_ms == 0 || args.max_concurrency == 0 {
        anyhow::bail!("--request-timeout-ms and --max-concurrency must be positive");
    }
    let engine = engines::create(&args.engine, StopMode::ExitProcess)?;
    let cache = (!args.no_cache).then(ModuleCache::default_location);
    let loader = ModuleLoader::new(engine.as_ref(), cache);
    let module = match loader.load_file(Path::new(&args.file)) {
        Ok((module, _)) => module,
        Err(e) => {
            eprintln!("wasmbay: {e}");
            return Ok(e.exit_code());
        }
    };
    // Refused before binding: nothing listens for a component that cannot answer.
    if !module.serves_http() {
        let e = EngineError::NotAnHttpHandler(match module.kind() {
            ModuleKind::Core => "a core module (WASI preview 1) is run, not served".to_string(),
            ModuleKind::Component => {
                "it exports wasi:cli/run, a command, which is run, not served".to_string()
            }
        });
        eprintln!("wasmbay: {}: {e} (`wasmbay run`)", args.file);
        return Ok(e.exit_code());
    }
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("--listen {listen}: cannot listen"))?;
    let local = listener.local_addr().context("listener address")?;
    let preopened_root = preopens.iter().any(|p| p.guest == "/");
    let config = WasiConfig {
        args: vec![args.file.clone()],
        env: WasiConfig::parse_env(&args.envs),
        cwd: if preopened_root {
            "/".to_string()
        } else {
            String::new()
        },
        preopens,
        stdin: wasmbay_shim_core::Stdio::Null,
        network: args.inherit_network,
        ..WasiConfig::default()
    };
    let limits = ServeLimits {
        request_memory: args.memory_limit,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_concurrency: args.max_concurrency,
    };
    let stop = StopHandle::new();
    stop.drain_on_signal();
    stop_on_signals(&stop).context("cannot install signal handlers")?;
    // The first line on stderr: what scripts (and wasi-testsuite's executor) read.
    eprintln!("wasmbay: serving http://{local}/");
    let result = module.serve(config, listener, &limits, &stop);
    flush_stdio();
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("wasmbay: {}: {e}", args.file);
            Ok(e.exit_code())
        }
    }
}
