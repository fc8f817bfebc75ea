//! Where the time of one container start goes: the shim's and the guest's spans from the
//! start-up trace (`WASMBAY_TRACE_DIR`), put on one timeline with what `ctr` itself saw.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use wasmbay_shim_core::trace::{read_trace, SpanRecord, TRACE_FILE};
use wasmbay_testkit::PrivateContainerd;

/// One line of the start-up timeline, in milliseconds from the moment `ctr run` was spawned.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub process: String,
    pub start_ms: f64,
    pub duration_ms: f64,
}

/// The timeline of one traced `ctr run --rm`.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub steps: Vec<Step>,
    /// When the first byte of the container's output reached `ctr`'s stdout.
    pub first_output_ms: f64,
    /// When `ctr run --rm` exited (the container deleted).
    pub total_ms: f64,
}

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Runs `image` once with `ctr run --rm` on `runtime`. The private containerd must have been
/// started with `WASMBAY_TRACE_DIR=trace_dir` in its environment, which its shims inherit;
/// the directory exists only during this run, so other runs are not traced.
pub fn traced_start(
    cd: &PrivateContainerd,
    runtime: &str,
    image: &str,
    id: &str,
    trace_dir: &Path,
) -> Result<Timeline> {
    std::fs::create_dir_all(trace_dir)
        .with_context(|| format!("creating {}", trace_dir.display()))?;
    let _ = std::fs::remove_file(trace_dir.join(TRACE_FILE));
    let timeline = run_and_read(cd, runtime, image, id, trace_dir);
    let _ = std::fs::remove_dir_all(trace_dir);
    timeline
}

fn run_and_read(
    cd: &PrivateContainerd,
    runtime: &str,
    image: &str,
    id: &str,
    trace_dir: &Path,
) -> Result<Timeline> {
    let mut run = cd.ctr_run();
    run.args(["--rm", "--runtime", runtime, image, id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let t0 = epoch_us();
    let mut child = run.spawn().context("spawning ctr run")?;
    let mut stdout = child.stdout.take().context("ctr stdout")?;
    let mut first = [0u8; 1];
    let got = stdout.read(&mut first).context("reading ctr output")?;
    let first_output = epoch_us();
    let mut rest = Vec::new();
    let _ = stdout.read_to_end(&mut rest);
    let status = child.wait().context("waiting for ctr run")?;
    let end = epoch_us();
    if got == 0 || !status.success() {
        bail!("traced run of {image}: no output or ctr failed ({status})");
    }
    let ms = |us: u64| us.saturating_sub(t0) as f64 / 1000.0;
    let records = read_trace(trace_dir)
        .with_context(|| format!("reading the trace in {}", trace_dir.display()))?;
    let mut steps: Vec<Step> = records
        .iter()
        .filter(|r| r.start_us >= t0 && r.end_us <= end)
        .map(|r: &SpanRecord| Step {
            name: r.name.clone(),
            process: r.process.clone(),
            start_ms: ms(r.start_us),
            duration_ms: r.duration_us() as f64 / 1000.0,
        })
        .collect();
    if steps.is_empty() {
        bail!(
            "the trace in {} holds no span of this run: is the shim built with tracing?",
            trace_dir.display()
        );
    }
    steps.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    Ok(Timeline {
        steps,
        first_output_ms: ms(first_output),
        total_ms: ms(end),
    })
}

impl Timeline {
    /// The timeline as text lines: offset, duration, process and step, nested spans in the
    /// order they began.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{:>8.2} ms  {:>8.2} ms  {:<10} {}",
                    s.start_ms, s.duration_ms, s.process, s.name
                )
            })
            .collect();
        lines.push(format!(
            "{:>8.2} ms  {:>11}  {:<10} first output at ctr",
            self.first_output_ms, "", "ctr"
        ));
        lines.push(format!(
            "{:>8.2} ms  {:>11}  {:<10} ctr run --rm exits",
            self.total_ms, "", "ctr"
        ));
        lines
    }
}
