//! `wasmbay bench compute`: run time of compute-heavy programs on each engine as a ratio to
//! the same source built natively.
//!
//! The programs live in `bench/compute` (a workspace of their own) and are built here for the
//! host and for wasm32-wasip1 with the same profile. Each wasm run goes through `wasmbay run`
//! with a warm cache, so the figure is execution, not compilation; the first run of each
//! program on each engine warms the cache and is not counted. Native and wasm runs alternate.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cmd::bench::median;

/// Each program with the argument that sizes its work.
const PROGRAMS: [(&str, &str); 3] = [
    ("nbody", "2000000"),
    ("sha256", "16"),
    ("binary_trees", "16"),
];

#[derive(Debug, Serialize)]
pub struct ComputeRow {
    pub program: String,
    pub engine: String,
    pub native_ms: f64,
    pub wasm_ms: f64,
    pub ratio: f64,
}

fn build(dir: &Path, target: Option<&str>) -> Result<()> {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"));
    if let Some(target) = target {
        cargo.args(["--target", target]);
    }
    let status = cargo.status().context("running cargo")?;
    if !status.success() {
        bail!(
            "building {} ({}) failed",
            dir.display(),
            target.unwrap_or("host")
        );
    }
    Ok(())
}

/// Wall time of `command`, whose stdout must equal `expected` when given; returns the output.
fn time_run(command: &mut Command) -> Result<(Duration, Vec<u8>)> {
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let started = Instant::now();
    let output = command.output().context("spawning")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!("{command:?} exited with {}", output.status);
    }
    Ok((elapsed, output.stdout))
}

pub fn run(source: &Path, engines: &[String], runs: usize) -> Result<Vec<ComputeRow>> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    build(source, None)?;
    build(source, Some("wasm32-wasip1"))?;
    let exe = std::env::current_exe()?;
    let cache = tempfile::Builder::new().prefix("wbcompute-").tempdir()?;
    let native_dir = source.join("target/release");
    let wasm_dir = source.join("target/wasm32-wasip1/release");
    let mut rows = Vec::new();
    for (program, arg) in PROGRAMS {
        let native = || {
            let mut run = Command::new(native_dir.join(program));
            run.arg(arg);
            run
        };
        let module = wasm_dir.join(format!("{program}.wasm"));
        let wasm = |engine: &str| {
            let mut run = Command::new(&exe);
            run.env("WASMBAY_CACHE_DIR", cache.path())
                .args(["run", "--engine", engine])
                .arg(&module)
                .arg(arg);
            run
        };
        let (_, expected) = time_run(&mut native())?;
        for engine in engines {
            let (_, output) = time_run(&mut wasm(engine))?;
            if output != expected {
                bail!("{program} on {engine}: output differs from the native build's");
            }
        }
        // Native and each engine take turns within a run, so a burst of load on this shared
        // machine falls on all of them rather than on whichever was measured at the time.
        let mut native_times = Vec::with_capacity(runs);
        let mut wasm_times = vec![Vec::with_capacity(runs); engines.len()];
        for _ in 0..runs {
            native_times.push(time_run(&mut native())?.0);
            for (engine, times) in engines.iter().zip(&mut wasm_times) {
                times.push(time_run(&mut wasm(engine))?.0);
            }
        }
        let native_ms = median(native_times);
        for (engine, times) in engines.iter().zip(wasm_times) {
            let wasm_ms = median(times);
            let row = ComputeRow {
                program: program.to_string(),
                engine: engine.clone(),
                native_ms: native_ms.as_secs_f64() * 1000.0,
                wasm_ms: wasm_ms.as_secs_f64() * 1000.0,
                ratio: wasm_ms.as_secs_f64() / native_ms.as_secs_f64(),
            };
            println!(
                "{:<13} {:<9} native {:>8.1} ms  wasm {:>8.1} ms  ratio {:.2}",
                row.program, row.engine, row.native_ms, row.wasm_ms, row.ratio
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

/// `compute.json` (the rows) and `compute.md` (a table and the command) in `dir`.
pub fn write_report(dir: &Path, rows: &[ComputeRow]) -> Result<()> {
    use std::fmt::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("compute.json");
    std::fs::write(&json, serde_json::to_string_pretty(rows)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut md = String::new();
    let _ = writeln!(md, "# Compute: wasm run time against native\n");
    let _ = writeln!(
        md,
        "Command: `./target/release/wasmbay {}` (median of the runs; the cache is warm, so compilation is not counted).\n",
        args.join(" ")
    );
    let _ = writeln!(md, "| program | engine | native | wasm | wasm/native |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} ms | {:.1} ms | {:.2} |",
            r.program, r.engine, r.native_ms, r.wasm_ms, r.ratio
        );
    }
    let path = dir.join("compute.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))
}
