//! `wasmbay conformance`: run corpus directories through a frontend and report, or the whole
//! matrix of engines × frontends.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use wasmbay_conformance::report::Outcome;
use wasmbay_conformance::{
    discover, run_cases, Case, CaseResult, ContainerdFrontend, DirectFrontend, Expectations,
    Frontend, Matrix, OciRuntimeFrontend, Pace, Report,
};
use wasmbay_shim_core::entrypoint::FileFormat;
use wasmbay_shim_core::{names, ModuleKind, StopMode};

use wasmbay_engines as engines;

const FRONTENDS: [&str; 3] = ["direct", "oci-runtime", "containerd"];

#[derive(Args)]
pub struct ConformanceArgs {
    /// Engine to run the cases on.
    #[arg(long, default_value = engines::DEFAULT_ENGINE)]
    engine: String,
    /// How cases are run: `direct` (wasmbay run), `oci-runtime` (wasmbay-runtime run) or
    /// `containerd` (ctr run on a private containerd with the shim).
    #[arg(long, default_value = "direct")]
    frontend: String,
    /// Run every engine compiled in through every frontend this machine can run, and print
    /// the pass/fail table and the cases on which engines differ.
    #[arg(long)]
    matrix: bool,
    /// With `--matrix`, run only these frontends (comma-separated; default: every frontend
    /// this machine can run). A frontend named here that the machine cannot run is an error.
    #[arg(long, value_name = "LIST", value_delimiter = ',', requires = "matrix")]
    frontends: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Also write the matrix as Markdown to this file (with `--matrix`).
    #[arg(long, value_name = "OUT", requires = "matrix")]
    markdown: Option<PathBuf>,
    /// Directory of per-engine expected failures (`<engine>.toml`, each with an upstream
    /// cause). A missing directory or file means none.
    #[arg(long, value_name = "DIR", default_value = "conformance/expectations")]
    expectations: PathBuf,
    /// Cases run at once (default: number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// The OCI runtime binary for `--frontend oci-runtime` (default: `wasmbay-runtime` next to
    /// this binary), or the shim binary for `--frontend containerd` (default:
    /// `containerd-shim-wasmbay-wasmtime-v1` next to this binary).
    #[arg(long, value_name = "PATH")]
    runtime: Option<PathBuf>,
    /// Multiply every case's timeout by this factor (at least 1), for machines that run guests
    /// far slower than natively, such as under qemu emulation (scripts/aarch64.sh).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, value_parser = parse_timeout_scale)]
    timeout_scale: f64,
    /// Bypass the precompiled cache.
    #[arg(long)]
    no_cache: bool,
    /// Directories holding cases (`.wasm`/`.wat` with optional `.json`).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
}

pub fn main(args: ConformanceArgs) -> Result<i32> {
    let mut cases = Vec::new();
    for dir in &args.dirs {
        let found = discover(dir).with_context(|| format!("reading cases in {}", dir.display()))?;
        if found.is_empty() {
            bail!("{}: no cases (.wasm or .wat files) found", dir.display());
        }
        cases.extend(found);
    }
    // Holds private state directories (OCI runtime state, shim links) for the whole run.
    let state_dir = tempfile::Builder::new()
        .prefix("wasmbay-conformance-")
        .tempdir()?;
    if args.matrix {
        return run_matrix(&args, &cases, state_dir.path());
    }
    let report = run_one(
        &args,
        &args.engine,
        &args.frontend,
        &cases,
        state_dir.path(),
    )?;
    if let Some(path) = &args.json {
        write(path, &serde_json::to_string_pretty(&report)?)?;
    }
    println!("{}", report.summary());
    Ok(if report.success() { 0 } else { 1 })
}

fn run_matrix(args: &ConformanceArgs, cases: &[Case], state: &Path) -> Result<i32> {
    if let Some(unknown) = args
        .frontends
        .iter()
        .find(|f| !FRONTENDS.contains(&f.as_str()))
    {
        bail!(
            "unknown frontend `{unknown}` in --frontends (available: {})",
            FRONTENDS.join(", ")
        );
    }
    let chosen =
        |frontend: &str| args.frontends.is_empty() || args.frontends.iter().any(|f| f == frontend);
    let mut reports = Vec::new();
    for frontend in FRONTENDS {
        if !chosen(frontend) {
            println!("frontend {frontend}: not run: not among --frontends");
            continue;
        }
        if let Err(why) = frontend_available(args, frontend) {
            // Asked for by name: not running it would pass a run that tested less than asked.
            if !args.frontends.is_empty() {
                bail!("frontend {frontend} cannot run here: {why}");
            }
            println!("frontend {frontend}: not run: {why}");
            continue;
        }
        for engine in engines::compiled_in() {
            println!("== {engine} via {frontend}");
            let report = run_one(args, engine, frontend, cases, state)?;
            println!("{engine} via {frontend}: {}", report.summary());
            reports.push(report);
        }
    }
    let matrix = Matrix::new(reports);
    println!("\n{}", matrix.markdown());
    if let Some(path) = &args.json {
        write(path, &serde_json::to_string_pretty(&matrix)?)?;
    }
    if let Some(path) = &args.markdown {
        write(path, &matrix.markdown())?;
    }
    Ok(if matrix.success() { 0 } else { 1 })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Why `frontend` cannot run on this machine, if it cannot.
fn frontend_available(args: &ConformanceArgs, frontend: &str) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    match frontend {
        "direct" => Ok(()),
        "oci-runtime" if !root => Err("needs root (namespaces, cgroups)".into()),
        "oci-runtime" => runtime_binary(args).map(|_| ()).map_err(|e| e.to_string()),
        "containerd" if !root => Err("needs root".into()),
        "containerd" if !Path::new("/usr/bin/containerd").is_file() => {
            Err("/usr/bin/containerd not installed (scripts/setup.sh installs it)".into())
        }
        "containerd" => shim_binary(args).map(|_| ()).map_err(|e| e.to_string()),
        other => Err(format!("unknown frontend `{other}`")),
    }
}

fn runtime_binary(args: &ConformanceArgs) -> Result<PathBuf> {
    match &args.runtime {
        Some(path) => Ok(path.clone()),
        None => sibling_binary("wasmbay-runtime"),
    }
}

fn shim_binary(args: &ConformanceArgs) -> Result<PathBuf> {
    match &args.runtime {
        Some(path) => Ok(path.clone()),
        None => sibling_binary(&names::shim_binary("wasmtime")),
    }
}

/// A directory where `containerd-shim-wasmbay-<engine>-v1` is the shim binary: the binary serves
/// the engine its name says, so other engines are links to it.
fn shim_dir_for(args: &ConformanceArgs, engine: &str, state: &Path) -> Result<PathBuf> {
    let shim = shim_binary(args)?;
    let name = names::shim_binary(engine);
    if shim.file_name().and_then(|n| n.to_str()) == Some(name.as_str()) {
        return Ok(shim
            .parent()
            .context("shim path has no directory")?
            .to_path_buf());
    }
    let dir = state.join(format!("shims-{engine}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let link = dir.join(&name);
    if !link.exists() {
        let target = std::fs::canonicalize(&shim)
            .with_context(|| format!("resolving {}", shim.display()))?;
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("linking {} to {}", link.display(), target.display()))?;
    }
    Ok(dir)
}

fn make_frontend(
    args: &ConformanceArgs,
    engine: &str,
    frontend: &str,
    state: &Path,
) -> Result<Box<dyn Frontend>> {
    let cache = if args.no_cache {
        Some(state.join("cache"))
    } else {
        std::env::var_os("WASMBAY_CACHE_DIR").map(PathBuf::from)
    };
    Ok(match frontend {
        "oci-runtime" => Box::new(OciRuntimeFrontend {
            runtime: runtime_binary(args)?,
            engine: engine.to_string(),
            state_root: state.join(format!("state-{engine}")),
            cache_dir: cache,
        }),
        "direct" => Box::new(DirectFrontend {
            wasmbay: std::env::current_exe().context("cannot locate the wasmbay binary")?,
            engine: engine.to_string(),
            use_cache: !args.no_cache,
        }),
        "containerd" => {
            let shim_dir = shim_dir_for(args, engine, state)?;
            Box::new(
                // containerd's own start is slowed as much as the cases are.
                ContainerdFrontend::start(
                    &shim_dir,
                    engine,
                    cache,
                    std::time::Duration::from_secs(30).mul_f64(args.timeout_scale),
                )
                .map_err(|e| anyhow::anyhow!("starting a private containerd: {e}"))?,
            )
        }
        other => bail!(
            "unknown frontend `{other}` (available: {})",
            FRONTENDS.join(", ")
        ),
    })
}

/// Runs `cases` on one engine through one frontend. Cases of a kind the engine cannot run
/// (components on an engine without WASI preview 2) are skipped with that reason; the
/// engine's expectations file turns its known upstream failures into expected failures.
fn run_one(
    args: &ConformanceArgs,
    engine_name: &str,
    frontend_name: &str,
    cases: &[Case],
    state: &Path,
) -> Result<Report> {
    // Fails early and clearly when the engine is not in this build.
    let engine = engines::create(engine_name, StopMode::ExitProcess)?;
    let expectations = Expectations::load(&args.expectations, engine_name)?;
    let frontend = make_frontend(args, engine_name, frontend_name, state)?;
    let (runnable, unsupported): (Vec<&Case>, Vec<&Case>) = cases
        .iter()
        .partition(|case| engine.supports(case_kind(case)));
    let runnable: Vec<Case> = runnable.into_iter().cloned().collect();
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // Lines are printed as cases finish, already judged against the expectations.
    let print = |result: &CaseResult| {
        let mut judged = result.clone();
        expectations.apply(std::slice::from_mut(&mut judged));
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", judged.line());
    };
    let pace = Pace {
        jobs,
        timeout_scale: args.timeout_scale,
    };
    let mut results = run_cases(frontend.as_ref(), &runnable, pace, &print);
    for case in unsupported {
        let result = CaseResult {
            id: case.id.clone(),
            module: case.module.clone(),
            outcome: Outcome::Skip(format!(
                "{engine_name} cannot run {} modules",
                case_kind(case).as_str()
            )),
            duration: std::time::Duration::ZERO,
        };
        print(&result);
        results.push(result);
    }
    expectations.apply(&mut results);
    Ok(Report::new(engine_name, frontend.name(), results))
}

fn parse_timeout_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(factor) if (1.0..=100.0).contains(&factor) => Ok(factor),
        Ok(_) => Err(format!("{text} is not between 1 and 100")),
        Err(e) => Err(format!("{text} is not a number: {e}")),
    }
}

/// A case's module kind from its first bytes; text is a core module.
fn case_kind(case: &Case) -> ModuleKind {
    let mut head = [0u8; 8];
    let read = std::fs::File::open(&case.module)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    match FileFormat::detect(&head[..read]) {
        FileFormat::Wasm(kind) => kind,
        _ => ModuleKind::Core,
    }
}

/// A binary installed next to `wasmbay` (cargo puts all of a workspace's binaries together).
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the wasmbay binary")?;
    let candidate = exe.with_file_name(name);
    if candidate.is_file() {
        return Ok(candidate);
    }
    bail!(
        "{name} not found next to {} (build the workspace with `cargo build --workspace`, or pass --runtime)",
        exe.display()
    )
}
