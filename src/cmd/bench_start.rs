//! `wasmbay bench start`: wasm containers against runc containers on one private containerd.
//!
//! - start: median wall time of `ctr run --rm` of a wasm hello image (wasmbay shim) and of a
//!   busybox hello image (runc), alternating;
//! - memory: PSS of every process a sleeping container needs (its shim and its init),
//!   averaged over a set of sleepers, for both;
//! - big module: first and second start of an image holding a large module, app and artifact
//!   layouts (`bench_big.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wasmbay_oci_image::{ExtraFile, ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::{ContainerdConfig, PrivateContainerd};

use crate::cmd::bench::HELLO;
use crate::cmd::bench_big::BigBench;
use crate::cmd::bench_parallel::lifecycle_rate;
use crate::cmd::bench_report::{mib_or_dash, LifecyclePair, MemoryRow, Report, Samples};

/// Sleeps an hour in `poll_oneoff` (one relative clock subscription), using no CPU.
const SLEEP: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 0) (i64.const 0))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#;

const WASM_RUNTIME: &str = "io.containerd.wasmbay-wasmtime.v1";
const TIMEOUT: Duration = Duration::from_secs(120);

pub struct StartBench {
    pub runs: usize,
    /// Sleeper counts for the memory figures.
    pub sleepers: Vec<usize>,
    /// Containers per pod for the memory figures.
    pub pod_sizes: Vec<usize>,
    pub big_module_mb: usize,
    /// Client threads for the lifecycle rates.
    pub parallelism: Vec<usize>,
    /// Lifecycles per kind at each parallelism.
    pub lifecycles: usize,
    /// `pod` or `namespace`: the shim grouping of the wasm runtime.
    pub grouping: String,
    /// Write report.md, report.json and the charts here.
    pub report: Option<PathBuf>,
}

pub(crate) fn image(
    dir: &Path,
    name: &str,
    module_name: &str,
    module: Vec<u8>,
    extra: Option<(&[&str], PathBuf)>,
) -> Result<(PathBuf, String)> {
    let reference = ImageRef::parse(&format!("{name}:bench"))?;
    let mut spec = ImageSpec::new(reference.clone(), module_name, module);
    spec.platform = Platform::parse("linux/amd64")?;
    if let Some((args, busybox)) = extra {
        spec.extra_files = vec![ExtraFile::from_host(&busybox, "/bin/busybox")?];
        spec.entrypoint = Some(args.iter().map(|a| a.to_string()).collect());
        spec.env = vec!["PATH=/bin".to_string()];
    }
    let path = dir.join(format!("{name}.tar"));
    spec.build()?.write_to(&path)?;
    Ok((path, reference.to_string()))
}

/// Wall time of one `ctr run --rm` of `image` that must print something.
pub(crate) fn timed(
    cd: &PrivateContainerd,
    runtime: Option<&str>,
    image: &str,
    id: &str,
    timeout: Duration,
) -> Result<Duration> {
    let mut run = cd.ctr_run();
    run.arg("--rm");
    if let Some(runtime) = runtime {
        run.args(["--runtime", runtime]);
    }
    run.args([image, id]);
    let started = Instant::now();
    let output = cd.run_ok(&mut run, timeout)?;
    let elapsed = started.elapsed();
    if output.stdout.is_empty() {
        bail!("{image}: no output");
    }
    Ok(elapsed)
}

/// The KiB figure of the line starting with `key` in a /proc file of `pid`.
fn proc_kib(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Proportional set size of a process in KiB, from smaps_rollup.
fn pss_kib(pid: u32) -> u64 {
    proc_kib(pid, "smaps_rollup", "Pss:")
}

/// Resident set size of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    proc_kib(pid, "status", "VmRSS:")
}

/// Memory of `count` sleeping containers, per container (KiB).
struct SleeperMemory {
    /// PSS of each container's init plus its share of the shims.
    pss: f64,
    /// RSS of the shim processes alone (shared pages counted in full, per shim).
    shim_rss: f64,
    shims: usize,
    /// Context switches per second of all shim threads together while the sleepers sleep:
    /// what idle containers cost the node's CPUs.
    shim_wakeups: f64,
    /// Where the PSS goes, summed over the inits and over the shims, per container.
    inits: Rollup,
    shim_parts: Rollup,
}

/// The smaps_rollup fields that tell private from shared, anonymous from file-backed memory.
#[derive(Default, Clone, Copy)]
struct Rollup {
    pss_anon: u64,
    pss_file: u64,
    private_dirty: u64,
}

impl Rollup {
    fn of(pid: u32) -> Rollup {
        Rollup {
            pss_anon: proc_kib(pid, "smaps_rollup", "Pss_Anon:"),
            pss_file: proc_kib(pid, "smaps_rollup", "Pss_File:"),
            private_dirty: proc_kib(pid, "smaps_rollup", "Private_Dirty:"),
        }
    }

    fn add(&mut self, other: Rollup) {
        self.pss_anon += other.pss_anon;
        self.pss_file += other.pss_file;
        self.private_dirty += other.private_dirty;
    }

    fn describe(&self, count: usize) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0 / count as f64;
        format!(
            "PSS anon {:.2} MiB, PSS file {:.2} MiB, private dirty {:.2} MiB",
            mib(self.pss_anon),
            mib(self.pss_file),
            mib(self.private_dirty)
        )
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Context switches (voluntary and not) of every thread of `pids`, summed.
fn context_switches(pids: &std::collections::BTreeSet<u32>) -> u64 {
    let mut total = 0;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            total += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    total
}

/// How often the threads of `pids` wake up, measured over one second of idleness.
fn wakeups_per_second(pids: &std::collections::BTreeSet<u32>) -> f64 {
    let before = context_switches(pids);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let after = context_switches(pids);
    after.saturating_sub(before) as f64 / started.elapsed().as_secs_f64()
}

/// The shim binaries whose processes must be gone before a memory measurement.
const WASM_SHIM_BINARY: &str = "containerd-shim-wasmbay-wasmtime-v1";
const RUNC_SHIM_BINARY: &str = "containerd-shim-runc-v2";

/// Waits until no process runs `binary` (shims of earlier runs linger for a moment), so that
/// the measured processes hold the binary's shared pages alone and a lone sleeper's PSS is
/// not lowered by sharing them with processes about to go.
fn wait_until_gone(binary: &str) {
    for _ in 0..200 {
        if wasmbay_testkit::processes_mentioning(binary).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "    note: {binary} processes still running after 20 s; shared pages are split with them"
    );
}

/// Starts `count` detached containers of `image`, `per_pod` of them sharing a pod (the CRI
/// sandbox annotation both shims group by), checks that all run, measures their memory, then
/// kills and deletes them and checks that none is left.
fn sleepers_memory(
    cd: &PrivateContainerd,
    runtime: Option<&str>,
    image: &str,
    prefix: &str,
    count: usize,
    per_pod: usize,
) -> Result<SleeperMemory> {
    wait_until_gone(if runtime.is_some() {
        WASM_SHIM_BINARY
    } else {
        RUNC_SHIM_BINARY
    });
    let ids: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let mut run = cd.ctr_run();
        run.arg("-d");
        if let Some(runtime) = runtime {
            run.args(["--runtime", runtime]);
        }
        if per_pod > 1 {
            run.arg("--annotation").arg(format!(
                "io.kubernetes.cri.sandbox-id={prefix}-pod{}",
                i / per_pod
            ));
        }
        run.args([image, id]);
        cd.run_ok(&mut run, TIMEOUT)?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let tasks = cd.run_ok(cd.ctr().args(["tasks", "ls"]), TIMEOUT)?;
    let tasks = String::from_utf8_lossy(&tasks.stdout).into_owned();
    let running = tasks
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|id| id.starts_with(prefix))
        })
        .filter(|l| l.split_whitespace().nth(2) == Some("RUNNING"))
        .count();
    if running != count {
        bail!("{prefix}: {running} of {count} sleepers are running");
    }
    let mut total = 0u64;
    let mut inits = Rollup::default();
    let mut shims = std::collections::BTreeSet::new();
    for id in &ids {
        let line = tasks
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .with_context(|| format!("task {id} not listed"))?;
        let pid: u32 = line.split_whitespace().nth(1).context("no pid")?.parse()?;
        total += pss_kib(pid);
        inits.add(Rollup::of(pid));
        if let Some(shim) = parent_of(pid) {
            shims.insert(shim);
        }
    }
    total += shims.iter().map(|&p| pss_kib(p)).sum::<u64>();
    let mut shim_parts = Rollup::default();
    for &shim in &shims {
        shim_parts.add(Rollup::of(shim));
    }
    let shim_rss: u64 = shims.iter().map(|&p| rss_kib(p)).sum();
    let shim_wakeups = wakeups_per_second(&shims);
    for id in &ids {
        let _ = cd
            .ctr()
            .args(["tasks", "kill", "--signal", "SIGKILL", id])
            .output();
    }
    for id in &ids {
        for _ in 0..100 {
            if cd
                .ctr()
                .args(["tasks", "delete", id])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = cd.ctr().args(["containers", "delete", id]).output();
    }
    let left = cd.run_ok(cd.ctr().args(["containers", "ls", "-q"]), TIMEOUT)?;
    let left = String::from_utf8_lossy(&left.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count();
    if left > 0 {
        bail!("{prefix}: {left} of {count} containers could not be deleted");
    }
    Ok(SleeperMemory {
        pss: total as f64 / count as f64,
        shim_rss: shim_rss as f64 / count as f64,
        shims: shims.len(),
        shim_wakeups,
        inits,
        shim_parts,
    })
}

pub fn run(bench: StartBench) -> Result<i32> {
    let exe = std::env::current_exe()?;
    let shim = exe.with_file_name("containerd-shim-wasmbay-wasmtime-v1");
    if !shim.is_file() {
        bail!(
            "{} not found (build the workspace binaries)",
            shim.display()
        );
    }
    let busybox = PathBuf::from("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox missing (Debian package busybox-static)");
    }
    let work = tempfile::Builder::new().prefix("wbstart-").tempdir()?;
    let cache = work.path().join("cache");
    let trace_dir = work.path().join("trace");
    let path = format!(
        "{}:{}",
        exe.parent().context("exe dir")?.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = ContainerdConfig::default()
        .with_env("PATH", &path)
        .with_env("WASMBAY_CACHE_DIR", &cache.to_string_lossy())
        .with_env(
            wasmbay_shim_core::trace::TRACE_DIR_ENV,
            &trace_dir.to_string_lossy(),
        )
        .with_env("WASMBAY_SHIM_GROUPING", &bench.grouping)
        // Short, so that the check that no shim is left after the sleepers need not wait long.
        .with_env("WASMBAY_SHIM_LINGER_MS", "2000");
    let mut cd =
        PrivateContainerd::start_with(config.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let import = |cd: &PrivateContainerd, tar: &Path| {
        cd.import(tar, &[]).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let mut report = Report::new(&bench);

    let (tar, wasm_hello) = image(
        work.path(),
        "wasm-hello",
        "hello.wasm",
        wat::parse_str(HELLO)?,
        None,
    )?;
    import(&cd, &tar)?;
    let (tar, native_hello) = image(
        work.path(),
        "busybox-hello",
        "note.txt",
        b"busybox\n".to_vec(),
        Some((&["/bin/busybox", "echo", "hello"], busybox.clone())),
    )?;
    import(&cd, &tar)?;

    timed(&cd, Some(WASM_RUNTIME), &wasm_hello, "warm-w", TIMEOUT)?;
    timed(&cd, None, &native_hello, "warm-r", TIMEOUT)?;
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    for i in 0..bench.runs {
        wasm.push(timed(
            &cd,
            Some(WASM_RUNTIME),
            &wasm_hello,
            &format!("w{i}"),
            TIMEOUT,
        )?);
        native.push(timed(&cd, None, &native_hello, &format!("r{i}"), TIMEOUT)?);
    }
    report.start = Some(Samples::new(wasm, native));
    if let Some(start) = &report.start {
        println!(
            "start: `ctr run --rm` hello, {} runs each, alternating, same containerd",
            bench.runs
        );
        println!(
            "  wasm (wasmbay shim, wasmtime): median {:.1} ms",
            start.wasm_median_ms
        );
        println!(
            "  busybox (runc v2 shim):        median {:.1} ms",
            start.runc_median_ms
        );
        println!("  ratio wasm / runc: {:.2}", start.ratio);
    }

    let timeline = crate::cmd::bench_trace::traced_start(
        &cd,
        WASM_RUNTIME,
        &wasm_hello,
        "traced",
        &trace_dir,
    )?;
    println!("start-up trace of one wasm `ctr run --rm` (offset from spawning ctr, duration):");
    for line in timeline.lines() {
        println!("  {line}");
    }
    report.trace = Some(timeline);

    for &parallelism in &bench.parallelism {
        if bench.lifecycles == 0 {
            break;
        }
        let w = lifecycle_rate(
            &cd,
            Some(WASM_RUNTIME),
            &wasm_hello,
            "lw",
            parallelism,
            bench.lifecycles,
        )?;
        let r = lifecycle_rate(
            &cd,
            None,
            &native_hello,
            "lr",
            parallelism,
            bench.lifecycles,
        )?;
        println!(
            "lifecycles at parallelism {parallelism}: wasm {:.1}/s, runc {:.1}/s, ratio {:.2}",
            w.per_second,
            r.per_second,
            w.per_second / r.per_second
        );
        report.lifecycles.push(LifecyclePair {
            parallelism,
            ratio: w.per_second / r.per_second,
            wasm: w,
            runc: r,
        });
    }

    if !bench.sleepers.is_empty() {
        let (tar, wasm_sleep) = image(
            work.path(),
            "wasm-sleep",
            "sleep.wasm",
            wat::parse_str(SLEEP)?,
            None,
        )?;
        import(&cd, &tar)?;
        let (tar, native_sleep) = image(
            work.path(),
            "busybox-sleep",
            "note.txt",
            b"busybox\n".to_vec(),
            Some((&["/bin/busybox", "sleep", "3600"], busybox.clone())),
        )?;
        import(&cd, &tar)?;
        // One sleeper alone: its processes carry all of the binaries' shared pages, which
        // more containers only share further. What each further container adds is
        // (PSS of N) - (PSS of this one), over N - 1.
        // The image's first start compiles the module, and the compiler's code pages would
        // then count in that lone sleeper's PSS: start it once before.
        sleepers_memory(&cd, Some(WASM_RUNTIME), &wasm_sleep, "sw", 1, 1)?;
        let wasm_one = sleepers_memory(&cd, Some(WASM_RUNTIME), &wasm_sleep, "sw", 1, 1)?.pss;
        let runc_one = sleepers_memory(&cd, None, &native_sleep, "sr", 1, 1)?.pss;
        let additional = |m: &SleeperMemory, one: f64, count: usize| {
            (count > 1).then(|| (m.pss * count as f64 - one) / (count - 1) as f64 / 1024.0)
        };
        println!(
            "memory: 1 sleeper alone: PSS wasm {:.2} MiB, runc {:.2} MiB",
            wasm_one / 1024.0,
            runc_one / 1024.0
        );
        report.memory_one = Some((wasm_one / 1024.0, runc_one / 1024.0));
        for &per_pod in &bench.pod_sizes {
            for &count in &bench.sleepers {
                let w =
                    sleepers_memory(&cd, Some(WASM_RUNTIME), &wasm_sleep, "sw", count, per_pod)?;
                let r = sleepers_memory(&cd, None, &native_sleep, "sr", count, per_pod)?;
                let (wasm_additional_mib, runc_additional_mib) = (
                    additional(&w, wasm_one, count),
                    additional(&r, runc_one, count),
                );
                println!(
                    "memory: {count} sleepers, {per_pod} per pod: PSS per container (inits + shims) wasm {:.2} MiB ({} shims), runc {:.2} MiB ({} shims); per additional container wasm {}, runc {}; idle shim wake-ups/s wasm {:.0}, runc {:.0}",
                    w.pss / 1024.0,
                    w.shims,
                    r.pss / 1024.0,
                    r.shims,
                    mib_or_dash(wasm_additional_mib),
                    mib_or_dash(runc_additional_mib),
                    w.shim_wakeups,
                    r.shim_wakeups
                );
                for (who, m) in [("wasm", &w), ("runc", &r)] {
                    println!("    {who} inits: {}", m.inits.describe(count));
                    println!("    {who} shims: {}", m.shim_parts.describe(count));
                }
                report.memory.push(MemoryRow {
                    count,
                    per_pod,
                    wasm_pss_mib: w.pss / 1024.0,
                    runc_pss_mib: r.pss / 1024.0,
                    wasm_additional_mib,
                    runc_additional_mib,
                    wasm_shims: w.shims,
                    runc_shims: r.shims,
                    wasm_shim_rss_mib: w.shim_rss / 1024.0,
                    runc_shim_rss_mib: r.shim_rss / 1024.0,
                    wasm_shim_wakeups: w.shim_wakeups,
                    runc_shim_wakeups: r.shim_wakeups,
                });
            }
        }
        // Every sleeper is gone; after the linger time no wasm shim may be left either.
        std::thread::sleep(Duration::from_millis(2500));
        let shims = wasmbay_testkit::processes_mentioning(WASM_SHIM_BINARY);
        report.shims_left_after_sleepers = Some(shims.len());
        if !shims.is_empty() {
            bail!(
                "{} wasm shim processes outlived their containers: {shims:?}",
                shims.len()
            );
        }
    }

    if bench.big_module_mb > 0 {
        let module = crate::cmd::bench::generate_large_module(bench.big_module_mb << 20)?;
        let mut big = BigBench {
            containerd: &mut cd,
            config: &config,
            runtime: WASM_RUNTIME,
            cache: &cache,
            work: work.path(),
        };
        for layout in [Layout::App, Layout::Artifact] {
            let row = big.measure(&module, layout)?;
            println!(
                "big module ({:.1} MB, {} layout): first start {:.1} ms, second start {:.1} ms (median of 3), ratio {:.3}; after restarting containerd {:.1} ms",
                row.size_mb, row.layout, row.cold_ms, row.warm_ms, row.ratio, row.after_restart_ms
            );
            report.big_modules.push(row);
        }
    }
    cd.stop();

    if let Some(dir) = &bench.report {
        report.write(dir)?;
        println!("report written to {}", dir.display());
    }
    Ok(0)
}
