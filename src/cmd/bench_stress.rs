//! `wasmbay bench stress`: the lost-exit stress test at length (docs/reliability/report.md).
//!
//! Guests that end while another thread of their process is blocked (a poll on stdin at end
//! of file beside a clock: wasmtime-wasi answers it from a thread of its own) by returning,
//! by `proc_exit` and by a trap, run through the shim (`ctr run --rm`, from several client
//! threads at once) and through `wasmbay-runtime run`. Every run is bounded; a run that does
//! not end in time is a hang. The tests run the same guests ten rounds in CI.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use wasmbay_testkit::{ContainerdConfig, PrivateContainerd, TestkitError};

/// The guests: name, how `_start` ends, the exit status it must give.
const GUESTS: [(&str, &str, i32); 3] = [
    ("poll-return", "", 0),
    ("poll-exit", "(call $exit (i32.const 7))", 7),
    ("poll-trap", "unreachable", 251),
];

/// A run that has not ended by then is counted as a hang (and killed).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

const WASM_RUNTIME: &str = "io.containerd.wasmbay-wasmtime.v1";

pub struct StressBench {
    /// Runs through the shim (spread over the guests).
    pub shim_runs: usize,
    /// Client threads running them.
    pub parallelism: usize,
    /// Runs through `wasmbay-runtime run`.
    pub runtime_runs: usize,
    /// Write the counts as JSON here.
    pub report: Option<PathBuf>,
}

/// What one frontend's runs came to.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub frontend: &'static str,
    pub runs: usize,
    pub right_status: usize,
    pub wrong_status: usize,
    pub hangs: usize,
    pub other_failures: usize,
    pub seconds: f64,
    /// Tasks, containers or state directories left once every run was over.
    pub left_behind: Vec<String>,
    /// The first few failures, for the report.
    pub examples: Vec<String>,
}

impl Outcome {
    fn record(&mut self, what: &str, result: Result<Option<i32>, TestkitError>, expected: i32) {
        self.runs += 1;
        let failure = match result {
            Ok(Some(code)) if code == expected => {
                self.right_status += 1;
                return;
            }
            Ok(code) => {
                self.wrong_status += 1;
                format!("{what}: status {code:?}, not {expected}")
            }
            Err(TestkitError::CommandTimeout { timeout, .. }) => {
                self.hangs += 1;
                format!("{what}: no end within {timeout:?}")
            }
            Err(e) => {
                self.other_failures += 1;
                format!("{what}: {e}")
            }
        };
        if self.examples.len() < 5 {
            self.examples.push(failure);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.runs += other.runs;
        self.right_status += other.right_status;
        self.wrong_status += other.wrong_status;
        self.hangs += other.hangs;
        self.other_failures += other.other_failures;
        let room = 5usize.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }

    fn clean(&self) -> bool {
        self.runs == self.right_status && self.left_behind.is_empty()
    }

    fn print(&self) {
        println!(
            "{}: {} runs in {:.1} s ({:.1}/s): {} right status, {} wrong, {} hangs, {} other failures; left behind: {}",
            self.frontend,
            self.runs,
            self.seconds,
            self.runs as f64 / self.seconds.max(1e-9),
            self.right_status,
            self.wrong_status,
            self.hangs,
            self.other_failures,
            if self.left_behind.is_empty() {
                "nothing".to_string()
            } else {
                self.left_behind.join(", ")
            }
        );
        for example in &self.examples {
            println!("  {example}");
        }
    }
}

pub fn run(bench: StressBench) -> Result<i32> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("the directory of this binary")?;
    let work = tempfile::Builder::new().prefix("wbstress-").tempdir()?;
    let mut outcomes = Vec::new();
    if bench.shim_runs > 0 {
        let shim = bin_dir.join("containerd-shim-wasmbay-wasmtime-v1");
        if !shim.is_file() {
            bail!(
                "{} not found (build the workspace binaries)",
                shim.display()
            );
        }
        outcomes.push(through_the_shim(&bench, bin_dir, work.path())?);
    }
    if bench.runtime_runs > 0 {
        let runtime = bin_dir.join("wasmbay-runtime");
        if !runtime.is_file() {
            bail!(
                "{} not found (build the workspace binaries)",
                runtime.display()
            );
        }
        outcomes.push(through_the_runtime(&bench, &runtime, work.path())?);
    }
    for outcome in &outcomes {
        outcome.print();
    }
    if let Some(path) = &bench.report {
        std::fs::write(path, serde_json::to_vec_pretty(&outcomes)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(if outcomes.iter().all(Outcome::clean) {
        0
    } else {
        1
    })
}

fn through_the_shim(bench: &StressBench, bin_dir: &Path, work: &Path) -> Result<Outcome> {
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = ContainerdConfig::default()
        .with_env("PATH", &path)
        .with_env("WASMBAY_CACHE_DIR", &work.join("cache").to_string_lossy())
        // Short, so that the count of shims left after the runs need not wait long.
        .with_env("WASMBAY_SHIM_LINGER_MS", "500");
    let cd = PrivateContainerd::start_with(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut images = Vec::new();
    for (name, end, code) in GUESTS {
        let wat = wasmbay_testkit::poll_stdin_then(end);
        let (tar, reference) =
            crate::cmd::bench_start::image(work, name, "app.wasm", wat::parse_str(&wat)?, None)?;
        cd.import(&tar, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
        images.push((reference, name, code));
    }
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let mut outcome = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..bench.parallelism.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut outcome = Outcome::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= bench.shim_runs {
                            return outcome;
                        }
                        let (image, name, code) = &images[i % images.len()];
                        let id = format!("{name}-{i}");
                        let mut run = cd.ctr_run();
                        run.args(["--rm", "--runtime", WASM_RUNTIME, image, &id]);
                        let result = wasmbay_testkit::run_with_timeout(&mut run, RUN_TIMEOUT)
                            .map(|out| out.status.code());
                        outcome.record(&id, result, *code);
                    }
                })
            })
            .collect();
        let mut all = Outcome::default();
        for worker in workers {
            match worker.join() {
                Ok(part) => all.merge(part),
                Err(_) => all.examples.push("a client thread panicked".into()),
            }
        }
        all
    });
    outcome.frontend = "shim (ctr run --rm)";
    outcome.seconds = started.elapsed().as_secs_f64();
    for what in ["tasks", "containers"] {
        let listed = cd
            .run_ok(cd.ctr().args([what, "ls", "-q"]), RUN_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let listed = String::from_utf8_lossy(&listed.stdout);
        let count = listed.lines().filter(|l| !l.trim().is_empty()).count();
        if count > 0 {
            outcome.left_behind.push(format!("{count} {what}"));
        }
    }
    // The shims end once their last container is gone (and the short linger has passed).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut shims = wasmbay_testkit::processes_mentioning(&cd.address().to_string_lossy());
    while !shims.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        shims = wasmbay_testkit::processes_mentioning(&cd.address().to_string_lossy());
    }
    // containerd itself is started with its config, not its socket, on its command line.
    shims.retain(|&pid| Some(pid) != cd.pid());
    if !shims.is_empty() {
        outcome
            .left_behind
            .push(format!("{} shim processes", shims.len()));
    }
    Ok(outcome)
}

fn through_the_runtime(bench: &StressBench, runtime: &Path, work: &Path) -> Result<Outcome> {
    let root = work.join("runtime-state");
    std::fs::create_dir_all(&root)?;
    let mut bundles = Vec::new();
    for (name, end, code) in GUESTS {
        let dir = work.join(format!("bundle-{name}"));
        let wasm = wat::parse_str(wasmbay_testkit::poll_stdin_then(end))?;
        crate::cmd::bench::write_bundle(&dir, &[("/app.wasm", &wasm)], &["/app.wasm"])?;
        bundles.push((dir, name, code));
    }
    let mut outcome = Outcome {
        frontend: "wasmbay-runtime run",
        ..Outcome::default()
    };
    let cgroups_before = top_level_cgroups();
    let started = Instant::now();
    for i in 0..bench.runtime_runs {
        let (bundle, name, code) = &bundles[i % bundles.len()];
        let id = format!("{name}-{i}");
        let mut run = std::process::Command::new(runtime);
        run.arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(&id);
        let result =
            wasmbay_testkit::run_with_timeout(&mut run, RUN_TIMEOUT).map(|out| out.status.code());
        outcome.record(&id, result, *code);
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    let left = std::fs::read_dir(&root)?.count();
    if left > 0 {
        outcome
            .left_behind
            .push(format!("{left} state directories"));
    }
    let mounts = wasmbay_testkit::mounts_under(work).len();
    if mounts > 0 {
        outcome.left_behind.push(format!("{mounts} mounts"));
    }
    let processes = wasmbay_testkit::processes_rooted_under(work).len();
    if processes > 0 {
        outcome.left_behind.push(format!("{processes} processes"));
    }
    let cgroups = top_level_cgroups().saturating_sub(cgroups_before);
    if cgroups > 0 {
        outcome.left_behind.push(format!("{cgroups} cgroups"));
    }
    Ok(outcome)
}

/// The cgroups directly under the root of the pids hierarchy (v1) or the unified one (v2):
/// a container without a `cgroupsPath` gets one there (libcontainer's `:youki:<id>`).
fn top_level_cgroups() -> usize {
    let root = Path::new("/sys/fs/cgroup");
    let root = if root.join("cgroup.controllers").exists() {
        root.to_path_buf()
    } else {
        root.join("pids")
    };
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .count()
        })
        .unwrap_or(0)
}
