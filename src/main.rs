//! `wasmbay`: run WebAssembly modules, check conformance, manage the precompiled cache.

mod cmd;
mod http1;
mod node;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wasmbay",
    version,
    about = "Run WebAssembly workloads as containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a wasm module or component (WASI preview 1, 0.2 or 0.3).
    Run(cmd::run::RunArgs),
    /// Serve an HTTP handler component (wasi:http, WASI 0.2 or 0.3), an instance per request.
    Serve(cmd::serve::ServeArgs),
    /// Run conformance cases (wasi-testsuite JSON format) through a frontend.
    Conformance(cmd::conformance::ConformanceArgs),
    /// Inspect or clear the precompiled-module cache.
    Cache(cmd::cache::CacheArgs),
    /// List the engines this binary knows and which are compiled in.
    Engines,
    /// containerd integration: runtime configuration and installing the shims.
    Containerd(cmd::containerd::ContainerdArgs),
    /// Install onto a node (plain containerd, k3s, rke2, microk8s, k0s), remove, or check.
    Node(node::NodeArgs),
    /// Measure start-up from the cache and kill latency.
    Bench(cmd::bench::BenchArgs),
    /// Build OCI images holding a module, for containerd (`ctr image import`).
    Image(cmd::image::ImageArgs),
    /// Write man pages and shell completions (for packages).
    #[command(hide = true)]
    Docs(cmd::docs::DocsArgs),
}

const DEFAULT_LOG_FILTER: &str =
    "off,wasmbay=warn,wasmbay_shim_core=warn,wasmbay_engine_wasmtime=warn,wasmbay_conformance=warn";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                // Only wasmbay's own warnings by default: stderr belongs to the guest, and library
                // chatter there would change what the workload appears to print.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in logs and captured output.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `--version` names the engines built in, made only when asked for.
    let mut command = Cli::command();
    if wasmbay_engines::version_asked() {
        command = command.version(wasmbay_engines::leaked_version_line(env!(
            "CARGO_PKG_VERSION"
        )));
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Run(args) => cmd::run::main(args),
        Command::Serve(args) => cmd::serve::main(args),
        Command::Conformance(args) => cmd::conformance::main(args),
        Command::Cache(args) => cmd::cache::main(args),
        Command::Bench(args) => cmd::bench::main(args),
        Command::Containerd(args) => cmd::containerd::main(args),
        Command::Node(args) => node::main(args),
        Command::Image(args) => cmd::image::main(args),
        Command::Docs(args) => cmd::docs::main(
            args,
            Cli::command().version(wasmbay_engines::leaked_version_line(env!(
                "CARGO_PKG_VERSION"
            ))),
        ),
        Command::Engines => {
            for name in wasmbay_engines::KNOWN {
                let state = if wasmbay_engines::is_compiled_in(name) {
                    "compiled in"
                } else {
                    "not compiled in"
                };
                println!("{name}\t{state}");
            }
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        Err(e) => {
            eprintln!("wasmbay: {e:#}");
            ExitCode::from(1)
        }
    }
}
