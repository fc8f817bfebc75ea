//! The report of `wasmbay bench start --report DIR`: `report.json` (every sample),
//! `report.md` (the tables, the machine, the command) and SVG charts, side by side with the
//! runc baseline measured in the same run.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cmd::bench_parallel::Rate;
use crate::cmd::bench_start::StartBench;
use crate::cmd::bench_svg::{line_chart, strip_chart};
use crate::cmd::bench_trace::Timeline;

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub containerd: String,
    pub runc: String,
    pub cgroups: String,
}

fn first_line(command: &str, args: &[&str]) -> String {
    std::process::Command::new(command)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let cgroups = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "v2"
        } else if Path::new("/sys/fs/cgroup/unified").exists() {
            "v1 (hybrid)"
        } else {
            "v1"
        };
        Machine {
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_gib: memory_kib / (1024.0 * 1024.0),
            kernel: first_line("uname", &["-sr"]),
            containerd: first_line("containerd", &["--version"]),
            runc: first_line("runc", &["--version"]),
            cgroups: cgroups.to_string(),
        }
    }
}

/// Start latencies of both kinds, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Samples {
    pub wasm_ms: Vec<f64>,
    pub runc_ms: Vec<f64>,
    pub wasm_median_ms: f64,
    pub runc_median_ms: f64,
    pub ratio: f64,
}

fn millis(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
}

impl Samples {
    pub fn new(wasm: Vec<Duration>, runc: Vec<Duration>) -> Samples {
        let (wasm_ms, runc_ms) = (millis(&wasm), millis(&runc));
        let wasm_median_ms = median_ms(&wasm_ms);
        let runc_median_ms = median_ms(&runc_ms);
        Samples {
            wasm_ms,
            runc_ms,
            wasm_median_ms,
            runc_median_ms,
            ratio: wasm_median_ms / runc_median_ms,
        }
    }
}

fn median_ms(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

#[derive(Debug, Serialize)]
pub struct LifecyclePair {
    pub parallelism: usize,
    pub wasm: Rate,
    pub runc: Rate,
    /// wasm lifecycles per second over runc's.
    pub ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct MemoryRow {
    pub count: usize,
    pub per_pod: usize,
    /// PSS of all inits and shims, per container.
    pub wasm_pss_mib: f64,
    pub runc_pss_mib: f64,
    /// What each container beyond a lone first one adds to the total PSS: (PSS of all
    /// `count` - PSS of one sleeper alone) / (count - 1). None for a single sleeper.
    pub wasm_additional_mib: Option<f64>,
    pub runc_additional_mib: Option<f64>,
    pub wasm_shims: usize,
    pub runc_shims: usize,
    pub wasm_shim_rss_mib: f64,
    pub runc_shim_rss_mib: f64,
    /// Context switches per second of all shims together while the sleepers sleep.
    pub wasm_shim_wakeups: f64,
    pub runc_shim_wakeups: f64,
}

#[derive(Debug, Serialize)]
pub struct BigModule {
    pub size_mb: f64,
    pub layout: String,
    pub cold_ms: f64,
    pub warm_ms: f64,
    pub after_restart_ms: f64,
    /// warm over cold.
    pub ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub date: String,
    pub machine: Machine,
    pub grouping: String,
    pub start: Option<Samples>,
    pub trace: Option<Timeline>,
    pub lifecycles: Vec<LifecyclePair>,
    pub memory: Vec<MemoryRow>,
    /// PSS in MiB of one sleeper alone (its init and shim), wasm and runc.
    pub memory_one: Option<(f64, f64)>,
    pub shims_left_after_sleepers: Option<usize>,
    pub big_modules: Vec<BigModule>,
}

impl Report {
    pub fn new(bench: &StartBench) -> Report {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Report {
            command: format!("./target/release/wasmbay {}", args.join(" ")),
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            machine: Machine::describe(),
            grouping: bench.grouping.clone(),
            start: None,
            trace: None,
            lifecycles: Vec::new(),
            memory: Vec::new(),
            memory_one: None,
            shims_left_after_sleepers: None,
            big_modules: Vec::new(),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        };
        write("report.json", &serde_json::to_string_pretty(self)?)?;
        let mut charts = Vec::new();
        if let Some(start) = &self.start {
            write(
                "start-latency.svg",
                &strip_chart(
                    "`ctr run --rm` hello: wall time of each run (bar: median)",
                    "ms",
                    &[
                        ("wasm (wasmbay)", &start.wasm_ms),
                        ("busybox (runc)", &start.runc_ms),
                    ],
                ),
            )?;
            charts.push("start-latency.svg".to_string());
        }
        for per_pod in self.pod_sizes() {
            let rows: Vec<&MemoryRow> = self
                .memory
                .iter()
                .filter(|r| r.per_pod == per_pod)
                .collect();
            let x: Vec<String> = rows.iter().map(|r| r.count.to_string()).collect();
            let name = format!("memory-{per_pod}-per-pod.svg");
            write(
                &name,
                &line_chart(
                    &format!("PSS per sleeping container, {per_pod} container(s) per pod"),
                    "sleeping containers",
                    "MiB",
                    &x,
                    &[
                        (
                            "wasm (wasmbay)",
                            rows.iter().map(|r| Some(r.wasm_pss_mib)).collect(),
                        ),
                        (
                            "busybox (runc)",
                            rows.iter().map(|r| Some(r.runc_pss_mib)).collect(),
                        ),
                    ],
                ),
            )?;
            charts.push(name);
        }
        write("report.md", &self.markdown(&charts))?;
        Ok(())
    }

    fn pod_sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.memory.iter().map(|r| r.per_pod).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    fn markdown(&self, charts: &[String]) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# wasmbay start-up, density and big-module benchmark\n");
        let _ = writeln!(
            md,
            "Measured {} with:\n\n```\n{}\n```\n",
            self.date, self.command
        );
        let _ = writeln!(
            md,
            "Machine: {} ({} cores), {:.1} GiB, {}, cgroups {}; {}; {}. Shim grouping: `{}`. \
             Every wasm figure has its runc figure from the same run, on the same private containerd.\n",
            m.cpu, m.cores, m.memory_gib, m.kernel, m.cgroups, m.containerd, m.runc, self.grouping
        );
        if let Some(start) = &self.start {
            let _ = writeln!(md, "## Start: `ctr run --rm` of a hello image\n");
            let _ = writeln!(
                md,
                "| | wasm (wasmbay shim, wasmtime) | busybox (runc) | ratio |"
            );
            let _ = writeln!(md, "|---|---|---|---|");
            let _ = writeln!(
                md,
                "| median of {} (alternating) | {:.1} ms | {:.1} ms | {:.2} |\n",
                start.wasm_ms.len(),
                start.wasm_median_ms,
                start.runc_median_ms,
                start.ratio
            );
        }
        if let Some(trace) = &self.trace {
            let _ = writeln!(md, "### Where the time of one wasm start goes\n");
            let _ = writeln!(md, "Offsets are from spawning `ctr`; spans come from the shim's start-up trace (`WASMBAY_TRACE_DIR`).\n");
            let _ = writeln!(md, "| offset | duration | process | step |");
            let _ = writeln!(md, "|---|---|---|---|");
            for s in &trace.steps {
                let _ = writeln!(
                    md,
                    "| {:.2} ms | {:.2} ms | {} | `{}` |",
                    s.start_ms, s.duration_ms, s.process, s.name
                );
            }
            let _ = writeln!(
                md,
                "| {:.2} ms | | ctr | first output |",
                trace.first_output_ms
            );
            let _ = writeln!(md, "| {:.2} ms | | ctr | exits |\n", trace.total_ms);
        }
        if !self.lifecycles.is_empty() {
            let _ = writeln!(
                md,
                "## Lifecycles per second (`ctr run --rm` hello from N client threads)\n"
            );
            let _ = writeln!(md, "| parallelism | wasm /s | runc /s | ratio |");
            let _ = writeln!(md, "|---|---|---|---|");
            for l in &self.lifecycles {
                let _ = writeln!(
                    md,
                    "| {} | {:.1} | {:.1} | {:.2} |",
                    l.parallelism, l.wasm.per_second, l.runc.per_second, l.ratio
                );
            }
            md.push('\n');
        }
        if !self.memory.is_empty() {
            let _ = writeln!(md, "## Memory of sleeping containers\n");
            let _ = writeln!(
                md,
                "PSS of every init and every shim process, divided by the number of containers. Wake-ups: context switches per second of all shim threads together while the containers sleep.\n"
            );
            if let Some((wasm, runc)) = self.memory_one {
                let _ = writeln!(
                    md,
                    "One sleeper alone, whose processes hold all the binaries' shared pages: wasm {wasm:.2} MiB, runc {runc:.2} MiB. \"per additional\" is (PSS of all N - PSS of that one) / (N - 1): what each further container costs.\n"
                );
            }
            let _ = writeln!(md, "| sleepers | per pod | wasm PSS/container | runc PSS/container | wasm per additional | runc per additional | wasm shims | runc shims | wasm shim wake-ups/s | runc shim wake-ups/s |");
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");

            for r in &self.memory {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.2} MiB | {:.2} MiB | {} | {} | {} | {} | {:.0} | {:.0} |",
                    r.count,
                    r.per_pod,
                    r.wasm_pss_mib,
                    r.runc_pss_mib,
                    mib_or_dash(r.wasm_additional_mib),
                    mib_or_dash(r.runc_additional_mib),
                    r.wasm_shims,
                    r.runc_shims,
                    r.wasm_shim_wakeups,
                    r.runc_shim_wakeups
                );
            }
            if let Some(left) = self.shims_left_after_sleepers {
                let _ = writeln!(md, "\nAfter every sleeper was killed and deleted: {left} wasm shim processes left.");
            }
            md.push('\n');
        }
        if !self.big_modules.is_empty() {
            let _ = writeln!(md, "## Big module: first and second start\n");
            let _ = writeln!(md, "| module | layout | first | second (median of 3) | second/first | after containerd restart |");
            let _ = writeln!(md, "|---|---|---|---|---|---|");
            for b in &self.big_modules {
                let _ = writeln!(
                    md,
                    "| {:.1} MB | {} | {:.1} ms | {:.1} ms | {:.3} | {:.1} ms |",
                    b.size_mb, b.layout, b.cold_ms, b.warm_ms, b.ratio, b.after_restart_ms
                );
            }
            md.push('\n');
        }
        if !charts.is_empty() {
            let _ = writeln!(md, "## Charts\n");
            for chart in charts {
                let _ = writeln!(md, "![{chart}]({chart})\n");
            }
        }
        md
    }
}

/// `12.34 MiB`, or `-` where there is no figure.
pub(crate) fn mib_or_dash(mib: Option<f64>) -> String {
    mib.map_or_else(|| "-".to_string(), |m| format!("{m:.2} MiB"))
}
