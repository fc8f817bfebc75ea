//! `wasmbay bench`: measurements quoted in notes and reports. Benchmarks print figures; they
//! never pass or fail on timing.
//!
//! - `cache`: time to first output of a large generated module, cold (empty cache, compiles)
//!   versus warm (loads the precompiled artifact), through `wasmbay run` as a user runs it;
//!   the engine's own compile and precompile time for it; and the warm start of a small hello
//!   module. `--engine` picks the engine, so engines are compared run by run.
//! - `kill`: how long a guest spinning in `loop {}` takes to stop, in process (`StopHandle`)
//!   and through SIGTERM to `wasmbay run`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use wasmbay_shim_core::runner::ModuleLoader;
use wasmbay_shim_core::{EngineError, ModuleKind, StopHandle, StopMode, WasiConfig};

use wasmbay_engines as engines;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Cold vs warm time to first output of a large module, its compile and precompile time,
    /// and the warm start of a small module, for one engine.
    Cache {
        #[arg(long, default_value = engines::DEFAULT_ENGINE)]
        engine: String,
        /// Size of the generated module in MB (at least this much code).
        #[arg(long, default_value_t = 10)]
        size_mb: usize,
        /// Runs of each kind; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Keep the generated module here instead of a temporary directory.
        #[arg(long)]
        module: Option<PathBuf>,
    },
    /// `wasmbay-runtime run` of a wasm hello bundle against `runc run` of a busybox hello
    /// bundle, alternating, in the same session.
    Runtime {
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// The wasmbay-runtime binary (default: next to this binary).
        #[arg(long)]
        runtime: Option<PathBuf>,
        /// The baseline runtime.
        #[arg(long, default_value = "runc")]
        runc: PathBuf,
    },
    /// `ctr run --rm` of wasm (wasmbay shim) against busybox (runc) on one private
    /// containerd; PSS per sleeping container; first and second start of a large module.
    Start {
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Sleeping containers per kind for the memory figures, one figure per count
        /// (`--sleepers 10,100,1000`; `--sleepers 0` to skip).
        #[arg(long, value_delimiter = ',', default_values_t = [10])]
        sleepers: Vec<usize>,
        /// Containers per pod for the memory figures (`--pod-sizes 1,10`).
        #[arg(long, value_delimiter = ',', default_values_t = [1])]
        pod_sizes: Vec<usize>,
        /// Size of the large module in MB (0 to skip).
        #[arg(long, default_value_t = 25)]
        big_module_mb: usize,
        /// Client threads for the lifecycle rates (`--parallelism 1,4,16`).
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        parallelism: Vec<usize>,
        /// Lifecycles per kind at each parallelism (0 to skip).
        #[arg(long, default_value_t = 40)]
        lifecycles: usize,
        /// Shim grouping of the wasm runtime: `pod` or `namespace` (WASMBAY_SHIM_GROUPING).
        #[arg(long, default_value = "pod")]
        grouping: String,
        /// Write report.md, report.json and SVG charts into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Run time of compute-heavy programs (bench/compute) on each engine, as a ratio to the
    /// same source built natively.
    Compute {
        /// Engines to measure (default: every engine compiled in).
        #[arg(long)]
        engine: Vec<String>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The programs' workspace.
        #[arg(long, default_value = "bench/compute")]
        source: PathBuf,
        /// Write compute.json and compute.md into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// The lost-exit stress at length: guests ending beside a blocked thread of their
    /// process, through the shim (`ctr run --rm`, parallel clients) and `wasmbay-runtime run`,
    /// every run bounded; counts right statuses, hangs and what was left. Exit 1 unless clean.
    Stress {
        /// Runs through the shim.
        #[arg(long, default_value_t = 3000)]
        shim_runs: usize,
        /// Client threads for the shim runs.
        #[arg(long, default_value_t = 4)]
        parallelism: usize,
        /// Runs through `wasmbay-runtime run`.
        #[arg(long, default_value_t = 1000)]
        runtime_runs: usize,
        /// Write the counts as JSON into this file.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Serving a wasi:http component: wasmbay in a container through containerd against
    /// `wasmtime serve` (requests/s, p50/p99 at each concurrency), and the cold start to the
    /// first 200 against busybox httpd on runc.
    Http(crate::cmd::bench_http::HttpBench),
    /// Time from a stop request to the end of a guest spinning in `loop {}`.
    Kill {
        #[arg(long, default_value = engines::DEFAULT_ENGINE)]
        engine: String,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// The kernel's wait in a cgroup move (the one the shim's warm-up starts early): this
    /// process moved into its own cgroup after an idle spell, then once more at once (root).
    CgroupMove {
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// The idle spell before each first move, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        idle_ms: u64,
    },
}

pub fn main(args: BenchArgs) -> Result<i32> {
    match args.what {
        What::Cache {
            engine,
            size_mb,
            runs,
            module,
        } => bench_cache(&engine, size_mb, runs.max(1), module),
        What::Kill { engine, runs } => bench_kill(&engine, runs.max(1)),
        What::Http(bench) => crate::cmd::bench_http::run(bench),
        What::CgroupMove { rounds, idle_ms } => {
            bench_cgroup_move(rounds.max(1), Duration::from_millis(idle_ms))
        }
        What::Stress {
            shim_runs,
            parallelism,
            runtime_runs,
            report,
        } => crate::cmd::bench_stress::run(crate::cmd::bench_stress::StressBench {
            shim_runs,
            parallelism,
            runtime_runs,
            report,
        }),
        What::Compute {
            engine,
            runs,
            source,
            report,
        } => {
            let engines = if engine.is_empty() {
                engines::compiled_in()
                    .iter()
                    .map(|e| e.to_string())
                    .collect()
            } else {
                engine
            };
            let rows = crate::cmd::bench_compute::run(&source, &engines, runs.max(1))?;
            if let Some(dir) = report {
                crate::cmd::bench_compute::write_report(&dir, &rows)?;
                println!("report written to {}", dir.display());
            }
            Ok(0)
        }
        What::Start {
            runs,
            sleepers,
            pod_sizes,
            big_module_mb,
            parallelism,
            lifecycles,
            grouping,
            report,
        } => crate::cmd::bench_start::run(crate::cmd::bench_start::StartBench {
            runs: runs.max(1),
            sleepers: sleepers.into_iter().filter(|&n| n > 0).collect(),
            pod_sizes: pod_sizes.into_iter().map(|n| n.max(1)).collect(),
            big_module_mb,
            parallelism: parallelism.into_iter().map(|n| n.max(1)).collect(),
            lifecycles,
            grouping,
            report,
        }),
        What::Runtime {
            runs,
            runtime,
            runc,
        } => bench_runtime(runs.max(1), runtime, &runc),
    }
}

/// A module of many distinct functions (so that compilation cannot be shared between them) whose
/// `_start` prints one line, of at least `min_bytes`.
pub fn generate_large_module(min_bytes: usize) -> Result<Vec<u8>> {
    // Size one batch, then generate the whole module in one go.
    let probe = wat::parse_str(large_module_text(1000))?;
    let per_function = (probe.len() / 1000).max(1);
    let mut count = min_bytes / per_function + 1;
    loop {
        let wasm = wat::parse_str(large_module_text(count))?;
        if wasm.len() >= min_bytes {
            return Ok(wasm);
        }
        count += count / 20 + 1;
    }
}

fn large_module_text(functions: usize) -> String {
    let mut wat = String::from(
        "(module\n(import \"wasi_snapshot_preview1\" \"fd_write\" (func $w (param i32 i32 i32 i32) (result i32)))\n\
         (memory (export \"memory\") 1)\n(data (i32.const 16) \"first output\\n\")\n\
         (func (export \"_start\")\n(i32.store (i32.const 0) (i32.const 16))\n(i32.store (i32.const 4) (i32.const 13))\n\
         (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))\n",
    );
    for n in 0..functions {
        wat.push_str(&format!(
            "(func $f{n} (param $x i64) (result i64) (local $a i64)\n"
        ));
        wat.push_str("(local.set $a (local.get $x))\n");
        for k in 0..24u64 {
            let c = (n as u64).wrapping_mul(2654435761).wrapping_add(k * 97) % 100_000;
            wat.push_str(&format!(
                "(local.set $a (i64.xor (i64.mul (local.get $a) (i64.const {c})) (i64.add (local.get $x) (i64.const {k}))))\n"
            ));
        }
        wat.push_str("(local.get $a))\n");
    }
    wat.push(')');
    wat
}

/// The middle sample (the upper one of an even count); `samples` must not be empty.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `wasmbay run MODULE` and returns the time until the first byte of stdout.
fn time_to_first_output(cache: &Path, module: &Path, extra: &[&str]) -> Result<Duration> {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .env("WASMBAY_CACHE_DIR", cache)
        .arg("run")
        .args(extra)
        .arg(module)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting wasmbay run")?;
    let mut first = [0u8; 1];
    let stdout = child.stdout.as_mut().context("no stdout")?;
    let n = stdout.read(&mut first)?;
    let elapsed = started.elapsed();
    let status = child.wait()?;
    if n == 0 || !status.success() {
        bail!("wasmbay run {} failed: {status}", module.display());
    }
    Ok(elapsed)
}

fn bench_cache(engine: &str, size_mb: usize, runs: usize, keep: Option<PathBuf>) -> Result<i32> {
    let work = tempfile::tempdir()?;
    let module = keep.unwrap_or_else(|| work.path().join("large.wasm"));
    let wasm = generate_large_module(size_mb << 20)?;
    std::fs::write(&module, &wasm)?;
    println!(
        "module: {} ({:.1} MB), engine {engine}, {runs} runs each, medians",
        module.display(),
        wasm.len() as f64 / (1 << 20) as f64
    );
    let engine_arg = ["--engine", engine];
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut uncached = Vec::new();
    for i in 0..runs {
        let cache = work.path().join(format!("cache-{i}"));
        cold.push(time_to_first_output(&cache, &module, &engine_arg)?);
        warm.push(time_to_first_output(&cache, &module, &engine_arg)?);
        let no_cache = [engine_arg[0], engine_arg[1], "--no-cache"];
        uncached.push(time_to_first_output(&cache, &module, &no_cache)?);
        std::fs::remove_dir_all(&cache).ok();
    }
    let (cold, warm, uncached) = (median(cold), median(warm), median(uncached));
    println!("cold start (compile + store in cache): {}", ms(cold));
    println!("warm start (precompiled from cache):   {}", ms(warm));
    println!("no cache (compile in memory):          {}", ms(uncached));
    println!(
        "warm / cold: {:.3}",
        warm.as_secs_f64() / cold.as_secs_f64()
    );

    // In process, without a CLI start around it: what compiling this module costs the engine.
    // ExitProcess: the code a container's init compiles and loads.
    let compiler = engines::create(engine, StopMode::ExitProcess)?;
    let mut compile = Vec::new();
    let mut precompile = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        compiler.compile(&wasm, ModuleKind::Core)?;
        compile.push(started.elapsed());
        let started = Instant::now();
        match compiler.precompile(&wasm, ModuleKind::Core) {
            Ok(_) => precompile.push(started.elapsed()),
            // An interpreter (wasmedge) has no artifact to make; `compile` is its load.
            Err(EngineError::NoPrecompile { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "compile (in process):                  {}",
        ms(median(compile))
    );
    if precompile.is_empty() {
        println!("precompile (in process):               none: {engine} makes no artifacts");
    } else {
        println!(
            "precompile (in process, serialized):   {}",
            ms(median(precompile))
        );
    }

    // What a user waits for once the cache holds a small module: process start, engine
    // creation, artifact load, instantiation and the first write.
    let hello = work.path().join("hello.wasm");
    std::fs::write(&hello, wat::parse_str(HELLO)?)?;
    let cache = work.path().join("cache-hello");
    time_to_first_output(&cache, &hello, &engine_arg)?;
    let starts = (0..runs.max(HELLO_RUNS))
        .map(|_| time_to_first_output(&cache, &hello, &engine_arg))
        .collect::<Result<Vec<_>>>()?;
    println!(
        "hello start (warm cache, {} runs):     {}",
        starts.len(),
        ms(median(starts))
    );
    Ok(0)
}

/// Small-module starts are short and noisy, so they get at least this many samples.
const HELLO_RUNS: usize = 11;

const SPIN: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop (br 0))))"#;

fn bench_cgroup_move(rounds: usize, idle: Duration) -> Result<i32> {
    use wasmbay_shim_core::cgroup_move::move_into_own_cgroup;
    let mut first = Vec::new();
    let mut next = Vec::new();
    let mut procs = None;
    for _ in 0..rounds {
        std::thread::sleep(idle);
        let started = Instant::now();
        procs = Some(move_into_own_cgroup().context("moving into its own cgroup (needs root)")?);
        first.push(started.elapsed());
        let started = Instant::now();
        move_into_own_cgroup()?;
        next.push(started.elapsed());
    }
    let procs = procs.map(|p| p.display().to_string()).unwrap_or_default();
    println!("cgroup move into {procs}, {rounds} rounds:");
    println!(
        "  first after {} ms idle: median {:.2} ms",
        idle.as_millis(),
        median(first).as_secs_f64() * 1e3
    );
    println!(
        "  the next, at once:     median {:.2} ms",
        median(next).as_secs_f64() * 1e3
    );
    Ok(0)
}

fn bench_kill(engine_name: &str, runs: usize) -> Result<i32> {
    let work = tempfile::tempdir()?;
    let module_path = work.path().join("spin.wat");
    std::fs::write(&module_path, SPIN)?;

    // In process: the engine's reaction to StopHandle::stop.
    let engine = engines::create(engine_name, StopMode::InGuest)?;
    let loader = ModuleLoader::new(engine.as_ref(), None);
    let (module, _) = loader.load_file(&module_path)?;
    let mut in_process = Vec::new();
    for _ in 0..runs {
        let stop = StopHandle::new();
        let stopper = stop.clone();
        let timer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            let at = Instant::now();
            stopper.stop(libc::SIGKILL);
            at
        });
        let config = WasiConfig {
            args: vec!["spin".into()],
            stdout: wasmbay_shim_core::Stdio::Null,
            ..WasiConfig::default()
        };
        module.run(config, None, &stop)?;
        let ended = Instant::now();
        let asked = timer
            .join()
            .map_err(|_| anyhow::anyhow!("timer thread panicked"))?;
        in_process.push(ended.saturating_duration_since(asked));
    }

    // Through the process: SIGTERM to `wasmbay run` until it has exited.
    let cache = work.path().join("cache");
    let mut by_signal = Vec::new();
    for _ in 0..runs {
        let mut child = Command::new(std::env::current_exe()?)
            .env("WASMBAY_CACHE_DIR", &cache)
            .args(["run", "--engine", engine_name])
            .arg(&module_path)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().context("no stdout")?).read_line(&mut line)?;
        let at = Instant::now();
        // SAFETY: kill takes plain integers; the pid is our own child, not yet reaped, so it cannot
        // name another process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait()?;
        by_signal.push(at.elapsed());
        if status.code() != Some(143) {
            bail!("expected exit 143 after SIGTERM, got {status}");
        }
    }
    let max_in = in_process.iter().max().copied().unwrap_or_default();
    let max_sig = by_signal.iter().max().copied().unwrap_or_default();
    println!("engine {engine_name}, {runs} runs, guest spinning in `loop {{}}` (no host calls)");
    println!(
        "stop in process (StopHandle::stop → run returns): median {}, max {}",
        ms(median(in_process)),
        ms(max_in)
    );
    println!(
        "SIGTERM to `wasmbay run` → process exited (143):  median {}, max {}",
        ms(median(by_signal)),
        ms(max_sig)
    );
    Ok(0)
}

/// Prints `hello` through `fd_write`; the wasm side of the start benchmarks.
pub(crate) const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// A bundle with a read-only rootfs holding `files`, in the shape `runc spec` produces (pid,
/// ipc, uts, mount and network namespaces; /proc and /dev mounted).
pub(crate) fn write_bundle(dir: &Path, files: &[(&str, &[u8])], args: &[&str]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let rootfs = dir.join("rootfs");
    for sub in ["proc", "dev", "bin"] {
        std::fs::create_dir_all(rootfs.join(sub))?;
    }
    for (name, bytes) in files {
        let target = rootfs.join(name.trim_start_matches('/'));
        std::fs::write(&target, bytes)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
    }
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/bin"], "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]}
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

/// Wall time of one `<runtime> --root ROOT run --bundle BUNDLE ID`, checking it said hello.
fn time_run(
    runtime: &Path,
    root: &Path,
    bundle: &Path,
    id: &str,
    cache: &Path,
) -> Result<Duration> {
    let started = Instant::now();
    let output = Command::new(runtime)
        .env("WASMBAY_CACHE_DIR", cache)
        .arg("--root")
        .arg(root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", runtime.display()))?;
    let elapsed = started.elapsed();
    if !output.status.success() || output.stdout != b"hello\n" {
        bail!(
            "{} run failed ({}): {}",
            runtime.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn bench_runtime(runs: usize, runtime: Option<PathBuf>, runc: &Path) -> Result<i32> {
    let runtime = match runtime {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("wasmbay-runtime"),
    };
    let busybox = std::fs::read("/bin/busybox")
        .context("/bin/busybox (Debian package busybox-static) is needed for the baseline")?;
    let work = tempfile::Builder::new().prefix("wbbench-").tempdir()?;
    let wasm_bundle = work.path().join("wasm");
    let native_bundle = work.path().join("native");
    let module = wat::parse_str(HELLO)?;
    write_bundle(&wasm_bundle, &[("/hello.wasm", &module)], &["/hello.wasm"])?;
    write_bundle(
        &native_bundle,
        &[("/bin/busybox", &busybox)],
        &["/bin/busybox", "echo", "hello"],
    )?;
    let cache = work.path().join("cache");
    let (wasm_root, runc_root) = (
        work.path().join("state-wasm"),
        work.path().join("state-runc"),
    );

    // One warm-up each: the first wasm run fills the precompiled cache, the first runc run
    // pulls busybox into the page cache.
    time_run(&runtime, &wasm_root, &wasm_bundle, "warm-wasm", &cache)?;
    time_run(runc, &runc_root, &native_bundle, "warm-runc", &cache)?;
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    for i in 0..runs {
        wasm.push(time_run(
            &runtime,
            &wasm_root,
            &wasm_bundle,
            &format!("w{i}"),
            &cache,
        )?);
        native.push(time_run(
            runc,
            &runc_root,
            &native_bundle,
            &format!("r{i}"),
            &cache,
        )?);
    }
    let (wm, rm) = (median(wasm.clone()), median(native.clone()));
    println!("{runs} runs each, alternating; wall time of `run` of a hello bundle");
    println!(
        "wasmbay-runtime (wasm hello):  median {}, p10 {}, p90 {}",
        ms(wm),
        ms(percentile(&wasm, 0.1)),
        ms(percentile(&wasm, 0.9))
    );
    println!(
        "runc (busybox echo hello):     median {}, p10 {}, p90 {}",
        ms(rm),
        ms(percentile(&native, 0.1)),
        ms(percentile(&native, 0.9))
    );
    println!(
        "ratio wasm / runc (medians): {:.2}",
        wm.as_secs_f64() / rm.as_secs_f64()
    );
    Ok(0)
}
