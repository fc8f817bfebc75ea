//! `wasmbay run`: one module, on this machine, with only the files and variables given.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::entrypoint::Entrypoint;
use wasmbay_shim_core::runner::ModuleLoader;
use wasmbay_shim_core::signals::{stop_on_signals, stop_with_grace};
use wasmbay_shim_core::{ExitStatus, Preopen, StopHandle, StopMode, WasiConfig};

use wasmbay_engines as engines;

#[derive(Args)]
pub struct RunArgs {
    /// Engine to run the module on.
    #[arg(long, default_value = engines::DEFAULT_ENGINE)]
    engine: String,
    /// Preopen a host directory: `HOST::GUEST`, or `DIR` for the same path in both.
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Set a guest environment variable (the host environment is never passed).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    envs: Vec<String>,
    /// Guest working directory (default: `/` when `/` is preopened).
    #[arg(long)]
    cwd: Option<String>,
    /// Limit on the guest's linear memory, in bytes.
    #[arg(long, value_name = "BYTES")]
    memory_limit: Option<u64>,
    /// Stop the program after this many milliseconds (exit code 137).
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Compile in memory; neither read nor write the precompiled cache.
    #[arg(long)]
    no_cache: bool,
    /// Let the guest use this host's network (`wasi:sockets`, name lookup). Off by default:
    /// a module run here reaches nothing but its preopened directories.
    #[arg(long)]
    inherit_network: bool,
    /// The module: `FILE` or `FILE#func` to call an export other than `_start`.
    file: String,
    /// Arguments passed to the program (after its name).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub(crate) fn parse_dir(spec: &str) -> Result<Preopen> {
    let (host, guest) = match spec.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (spec, spec),
    };
    if host.is_empty() || guest.is_empty() {
        bail!("--dir {spec:?}: expected HOST::GUEST");
    }
    let host = PathBuf::from(host);
    if !host.is_dir() {
        bail!("--dir {spec:?}: {} is not a directory", host.display());
    }
    Ok(Preopen {
        host,
        guest: guest.to_string(),
        read_only: false,
    })
}

pub fn main(args: RunArgs) -> Result<i32> {
    let entry = if Path::new(&args.file).exists() {
        Entrypoint {
            path: args.file.clone(),
            func: None,
        }
    } else {
        Entrypoint::parse(&args.file)
    };
    let preopens = args
        .dirs
        .iter()
        .map(|d| parse_dir(d))
        .collect::<Result<Vec<_>>>()?;
    let engine = engines::create(&args.engine, StopMode::ExitProcess)?;
    let cache = (!args.no_cache).then(ModuleCache::default_location);
    let loader = ModuleLoader::new(engine.as_ref(), cache);
    let module = match loader.load_file(Path::new(&entry.path)) {
        Ok((module, provenance)) => {
            tracing::debug!(?provenance, "module ready");
            module
        }
        Err(e) => {
            eprintln!("wasmbay: {e}");
            return Ok(e.exit_code());
        }
    };

    let cwd = args.cwd.clone().unwrap_or_else(|| {
        if preopens.iter().any(|p| p.guest == "/") {
            "/".to_string()
        } else {
            String::new()
        }
    });
    let mut argv = vec![entry.path.clone()];
    argv.extend(args.args.iter().cloned());
    let config = WasiConfig {
        args: argv,
        env: WasiConfig::parse_env(&args.envs),
        cwd,
        preopens,
        memory_limit: args.memory_limit,
        network: args.inherit_network,
        ..WasiConfig::default()
    };

    let stop = StopHandle::new();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    stop_on_signals(&stop).context("cannot install signal handlers")?;
    if let Some(ms) = args.timeout_ms {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if done_rx.recv_timeout(Duration::from_millis(ms)).is_err() {
                eprintln!("wasmbay: stopped after the {ms} ms timeout");
                stop_with_grace(&stop, libc::SIGKILL);
            }
        });
    }

    let status = module.run(config, entry.func.as_deref(), &stop);
    let _ = done_tx.send(());
    flush_stdio();
    match status {
        Ok(status) => {
            if let ExitStatus::Trapped(message) = &status {
                eprintln!("wasmbay: wasm trap: {message}");
            }
            Ok(status.code())
        }
        Err(e) => {
            eprintln!("wasmbay: {}: {e}", entry.path);
            Ok(e.exit_code())
        }
    }
}

pub(crate) fn flush_stdio() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}
