//! `wasmbay bench`: measurements quoted in notes and reports. Benchmarks print figures; they
//! never pass or fail on timing.
//!
//! - `cache`: time to first output of a large generated module, cold (empty cache, compiles)
//!   versus warm (loads the precompiled artifact), through `wasmbay run` as a user runs it.
//! - `kill`: how long a guest spinning in `loop {}` takes to stop, in process (`StopHandle`)
//!   and through SIGTERM to `wasmbay run`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use wasmbay_shim_core::runner::ModuleLoader;
use wasmbay_shim_core::{StopHandle, WasiConfig};

use wasmbay_engines as engines;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Cold vs warm time to first output of a large module.
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
    /// Time from a stop request to the end of a guest spinning in `loop {}`.
    Kill {
        #[arg(long, default_value = engines::DEFAULT_ENGINE)]
        engine: String,
        #[arg(long, default_value_t = 20)]
        runs: usize,
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
    }
}

/// A module of many distinct functions (so that compilation cannot be shared between them) whose
/// `_start` prints one line. About 330 bytes of code per function.
pub fn generate_large_module(min_bytes: usize) -> Result<Vec<u8>> {
    let mut wat = String::from(
        "(module\n(import \"wasi_snapshot_preview1\" \"fd_write\" (func $w (param i32 i32 i32 i32) (result i32)))\n\
         (memory (export \"memory\") 1)\n(data (i32.const 16) \"first output\\n\")\n\
         (func (export \"_start\")\n(i32.store (i32.const 0) (i32.const 16))\n(i32.store (i32.const 4) (i32.const 13))\n\
         (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))\n",
    );
    let mut n = 0usize;
    loop {
        // Estimate from the text size; checked against the binary below.
        if n.is_multiple_of(1000) && n > 0 && wat.len() / 4 > min_bytes {
            let wasm = wat::parse_str(format!("{wat})"))?;
            if wasm.len() >= min_bytes {
                return Ok(wasm);
            }
        }
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
        n += 1;
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
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
    Ok(0)
}

const SPIN: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop (br 0))))"#;

fn bench_kill(engine_name: &str, runs: usize) -> Result<i32> {
    let work = tempfile::tempdir()?;
    let module_path = work.path().join("spin.wat");
    std::fs::write(&module_path, SPIN)?;

    // In process: the engine's reaction to StopHandle::stop.
    let engine = engines::create(engine_name)?;
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
