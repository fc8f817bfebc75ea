//! `containerd-shim-wasmbay-<engine>-v1`: the containerd shim v2 for wasm containers.
//!
//! containerd starts this binary by its runtime type (`io.containerd.wasmbay-wasmtime.v1` →
//! `containerd-shim-wasmbay-wasmtime-v1`, see `wasmbay_shim_core::names`); the engine is the
//! `<engine>` part of the binary name, so one binary can serve several engines through links. Containers are created with the
//! runtime-bridge executor on libcontainer: wasm runs on the engine, native entrypoints (the
//! pod's pause container, sidecars) are exec'd as runc would.

mod cgroup_driver;
mod cgroup_manager;
mod cgroup_v2;
mod console;
mod containers;
mod content;
mod events;
mod exec;
mod grouping;
mod mount_namespace;
mod oom;
mod orphan;
mod rootfs;
mod rpc;
mod serve;
mod service;
mod stdio;
mod zygote_containers;

use std::io::Write;

use containerd_shim::Shim;
use wasmbay_shim_core::names;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = match engine_to_serve(args.first().map(String::as_str)) {
        Ok(engine) => engine,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(1);
        }
    };
    let runtime_id = names::runtime_type(&engine);
    // `-v` as containerd's own shims answer it: which build a node runs, engines included.
    if matches!(
        args.get(1).map(String::as_str),
        Some("-v" | "-version" | "--version")
    ) {
        let binary = names::shim_binary(&engine);
        let version = wasmbay_engines::version_line(env!("CARGO_PKG_VERSION"));
        println!("{binary}:\n  Version: {version}\n  Runtime: {runtime_id}");
        return;
    }
    // containerd before 2.3 passes the start parameters in flags and the environment and, up to
    // 1.6, reads back a bare socket address; the shim crate answers the newer JSON form, which
    // 1.6 cannot parse. The legacy start is therefore answered here.
    if args.last().map(String::as_str) == Some("start")
        && std::env::var_os("TTRPC_ADDRESS").is_some()
    {
        serve::install_subscriber("shim-start");
        let started = tracing::info_span!("shim.start").entered();
        let result = legacy_start(&runtime_id, &args[1..]);
        drop(started);
        match result {
            Ok(address) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(address.as_bytes());
                let _ = stdout.flush();
                return;
            }
            Err(e) => {
                eprintln!("{runtime_id}: start: {e}");
                std::process::exit(1);
            }
        }
    }
    let action = args.last().map(String::as_str).unwrap_or_default();
    if action == "start" || action == "delete" {
        if action == "delete" {
            // The cleanup after a dead shim: its warnings belong in the shim log too.
            serve::install_subscriber("shim-delete");
        }
        containerd_shim::run::<service::Service>(&runtime_id, None);
        return;
    }
    if let Err(e) = serve::serve(&runtime_id, &args[1..]) {
        eprintln!("{runtime_id}: {e:#}");
        std::process::exit(1);
    }
}

/// The engine this process serves: the one `start` handed its daemon in the environment, else
/// the one the binary's name says. Any other name is refused rather than served by a default
/// engine, which would run a pod on an engine nobody chose.
fn engine_to_serve(argv0: Option<&str>) -> Result<String, String> {
    if let Some(engine) = std::env::var(service::ENGINE_ENV)
        .ok()
        .filter(|e| !e.is_empty())
    {
        return names::engine_of_runtime_handler(&names::runtime_handler(&engine))
            .map(str::to_string)
            .ok_or_else(|| format!("{}={engine:?}: not an engine name", service::ENGINE_ENV));
    }
    let argv0 = argv0.unwrap_or_default();
    names::engine_of_shim_binary(argv0)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "{argv0:?}: the engine is told by the binary's name, which must be {} \
                 (or set {})",
                names::shim_binary("<engine>"),
                service::ENGINE_ENV
            )
        })
}

fn legacy_start(runtime_id: &str, args: &[String]) -> Result<String, containerd_shim::Error> {
    let flags = containerd_shim::parse(args)?;
    let mut config = containerd_shim::Config::default();
    let mut shim = service::Service::new(runtime_id, &flags, &mut config);
    let opts = containerd_shim::StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS").unwrap_or_default(),
        namespace: flags.namespace.clone(),
        debug: flags.debug,
        ..Default::default()
    };
    shim.start_shim(opts)
}
