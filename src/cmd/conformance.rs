//! `wasmbay conformance`: run corpus directories through a frontend and report.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use wasmbay_conformance::{
    discover, run_cases, ContainerdFrontend, DirectFrontend, Frontend, OciRuntimeFrontend, Report,
};

use wasmbay_engines as engines;

#[derive(Args)]
pub struct ConformanceArgs {
    /// Engine to run the cases on.
    #[arg(long, default_value = engines::DEFAULT_ENGINE)]
    engine: String,
    /// How cases are run: `direct` (wasmbay run) or `oci-runtime` (wasmbay-runtime run).
    #[arg(long, default_value = "direct")]
    frontend: String,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Cases run at once (default: number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// The OCI runtime binary for `--frontend oci-runtime` (default: `wasmbay-runtime` next to
    /// this binary), or the shim binary for `--frontend containerd` (default:
    /// `containerd-shim-<engine>-v1` next to this binary).
    #[arg(long, value_name = "PATH")]
    runtime: Option<PathBuf>,
    /// Bypass the precompiled cache.
    #[arg(long)]
    no_cache: bool,
    /// Directories holding cases (`.wasm`/`.wat` with optional `.json`).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
}

pub fn main(args: ConformanceArgs) -> Result<i32> {
    // Fail early and clearly when the engine is not in this build.
    engines::create(&args.engine)?;
    // Holds the OCI runtime's private state directory for the whole run.
    let state_dir = tempfile::Builder::new()
        .prefix("wasmbay-conformance-")
        .tempdir()?;
    let frontend: Box<dyn Frontend> = match args.frontend.as_str() {
        "oci-runtime" => Box::new(OciRuntimeFrontend {
            runtime: match &args.runtime {
                Some(path) => path.clone(),
                None => sibling_binary("wasmbay-runtime")?,
            },
            engine: args.engine.clone(),
            state_root: state_dir.path().join("state"),
            cache_dir: if args.no_cache {
                Some(state_dir.path().join("cache"))
            } else {
                std::env::var_os("WASMBAY_CACHE_DIR").map(PathBuf::from)
            },
        }),
        "direct" => Box::new(DirectFrontend {
            wasmbay: std::env::current_exe().context("cannot locate the wasmbay binary")?,
            engine: args.engine.clone(),
            use_cache: !args.no_cache,
        }),
        "containerd" => {
            let shim = match &args.runtime {
                Some(path) => path.clone(),
                None => sibling_binary(&format!("containerd-shim-{}-v1", args.engine))?,
            };
            let shim_dir = shim
                .parent()
                .context("shim path has no directory")?
                .to_path_buf();
            let cache = if args.no_cache {
                Some(state_dir.path().join("cache"))
            } else {
                std::env::var_os("WASMBAY_CACHE_DIR").map(PathBuf::from)
            };
            Box::new(
                ContainerdFrontend::start(&shim_dir, &args.engine, cache)
                    .map_err(|e| anyhow::anyhow!("starting a private containerd: {e}"))?,
            )
        }
        other => bail!("unknown frontend `{other}` (available: direct, oci-runtime, containerd)"),
    };
    let mut cases = Vec::new();
    for dir in &args.dirs {
        let found = discover(dir).with_context(|| format!("reading cases in {}", dir.display()))?;
        if found.is_empty() {
            bail!("{}: no cases (.wasm or .wat files) found", dir.display());
        }
        cases.extend(found);
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let print = |result: &wasmbay_conformance::CaseResult| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", result.line());
    };
    let results = run_cases(frontend.as_ref(), &cases, jobs, &print);
    let report = Report::new(&args.engine, frontend.name(), results);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", report.summary());
    Ok(if report.success() { 0 } else { 1 })
}

/// A binary installed next to `wasmbay` (cargo puts all of a workspace's binaries together).
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the wasmbay binary")?;
    let candidate = exe.with_file_name(name);
    if candidate.is_file() {
        return Ok(candidate);
    }
    bail!(
        "{name} not found next to {} (build it with `cargo build -p wasmbay-runtime-bridge`, or pass --runtime)",
        exe.display()
    )
}
