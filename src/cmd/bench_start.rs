//! `wasmbay bench start`: wasm containers against runc containers on one private containerd.
//!
//! - start: median wall time of `ctr run --rm` of a wasm hello image (wasmbay shim) and of a
//!   busybox hello image (runc), alternating;
//! - memory: PSS of every process a sleeping container needs (its shim and its init),
//!   averaged over a set of sleepers, for both;
//! - big module: first and second `ctr run --rm` of an image holding a large module.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use wasmbay_oci_image::{ExtraFile, ImageRef, ImageSpec, Platform};
use wasmbay_testkit::{ContainerdConfig, PrivateContainerd};

use crate::cmd::bench::HELLO;

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

const WASM_RUNTIME: &str = "io.containerd.wasmtime.v1";
const TIMEOUT: Duration = Duration::from_secs(120);

pub struct StartBench {
    pub runs: usize,
    pub sleepers: usize,
    pub big_module_mb: usize,
}

fn image(
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

fn timed(cd: &PrivateContainerd, runtime: Option<&str>, image: &str, id: &str) -> Result<Duration> {
    let mut run = cd.ctr_run();
    run.arg("--rm");
    if let Some(runtime) = runtime {
        run.args(["--runtime", runtime]);
    }
    run.args([image, id]);
    let started = Instant::now();
    let output = cd.run_ok(&mut run, TIMEOUT)?;
    let elapsed = started.elapsed();
    if output.stdout.is_empty() {
        bail!("{image}: no output");
    }
    Ok(elapsed)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
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
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Starts `count` detached containers of `image`, measures their memory, then removes them.
fn sleepers_memory(
    cd: &PrivateContainerd,
    runtime: Option<&str>,
    image: &str,
    prefix: &str,
    count: usize,
) -> Result<SleeperMemory> {
    let ids: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        let mut run = cd.ctr_run();
        run.arg("-d");
        if let Some(runtime) = runtime {
            run.args(["--runtime", runtime]);
        }
        run.args([image, id]);
        cd.run_ok(&mut run, TIMEOUT)?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let tasks = cd.run_ok(cd.ctr().args(["tasks", "ls"]), TIMEOUT)?;
    let tasks = String::from_utf8_lossy(&tasks.stdout).into_owned();
    let mut total = 0u64;
    let mut shims = std::collections::BTreeSet::new();
    for id in &ids {
        let line = tasks
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .with_context(|| format!("task {id} not listed"))?;
        let pid: u32 = line.split_whitespace().nth(1).context("no pid")?.parse()?;
        total += pss_kib(pid);
        if let Some(shim) = parent_of(pid) {
            shims.insert(shim);
        }
    }
    total += shims.iter().map(|&p| pss_kib(p)).sum::<u64>();
    let shim_rss: u64 = shims.iter().map(|&p| rss_kib(p)).sum();
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
    Ok(SleeperMemory {
        pss: total as f64 / count as f64,
        shim_rss: shim_rss as f64 / count as f64,
        shims: shims.len(),
    })
}

pub fn run(bench: StartBench) -> Result<i32> {
    let exe = std::env::current_exe()?;
    let shim = exe.with_file_name("containerd-shim-wasmtime-v1");
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
    let path = format!(
        "{}:{}",
        exe.parent().context("exe dir")?.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cd = PrivateContainerd::start_with(
        ContainerdConfig::default()
            .with_env("PATH", &path)
            .with_env("WASMBAY_CACHE_DIR", &cache.to_string_lossy()),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let import = |tar: &Path| cd.import(tar, &[]).map_err(|e| anyhow::anyhow!("{e}"));

    let (tar, wasm_hello) = image(
        work.path(),
        "wasm-hello",
        "hello.wasm",
        wat::parse_str(HELLO)?,
        None,
    )?;
    import(&tar)?;
    let (tar, native_hello) = image(
        work.path(),
        "busybox-hello",
        "note.txt",
        b"busybox\n".to_vec(),
        Some((&["/bin/busybox", "echo", "hello"], busybox.clone())),
    )?;
    import(&tar)?;

    timed(&cd, Some(WASM_RUNTIME), &wasm_hello, "warm-w")?;
    timed(&cd, None, &native_hello, "warm-r")?;
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    for i in 0..bench.runs {
        wasm.push(timed(
            &cd,
            Some(WASM_RUNTIME),
            &wasm_hello,
            &format!("w{i}"),
        )?);
        native.push(timed(&cd, None, &native_hello, &format!("r{i}"))?);
    }
    let (wm, rm) = (median(wasm), median(native));
    println!(
        "start: `ctr run --rm` hello, {} runs each, alternating, same containerd",
        bench.runs
    );
    println!("  wasm (wasmbay shim, wasmtime): median {}", ms(wm));
    println!("  busybox (runc v2 shim):        median {}", ms(rm));
    println!(
        "  ratio wasm / runc: {:.2}",
        wm.as_secs_f64() / rm.as_secs_f64()
    );

    if bench.sleepers > 0 {
        let (tar, wasm_sleep) = image(
            work.path(),
            "wasm-sleep",
            "sleep.wasm",
            wat::parse_str(SLEEP)?,
            None,
        )?;
        import(&tar)?;
        let (tar, native_sleep) = image(
            work.path(),
            "busybox-sleep",
            "note.txt",
            b"busybox\n".to_vec(),
            Some((&["/bin/busybox", "sleep", "3600"], busybox.clone())),
        )?;
        import(&tar)?;
        let w = sleepers_memory(&cd, Some(WASM_RUNTIME), &wasm_sleep, "sw", bench.sleepers)?;
        let r = sleepers_memory(&cd, None, &native_sleep, "sr", bench.sleepers)?;
        println!(
            "memory: PSS per sleeping container (init + shim), mean over {} containers",
            bench.sleepers
        );
        println!("  wasm (wasmbay shim): {:.2} MiB", w.pss / 1024.0);
        println!("  busybox (runc):      {:.2} MiB", r.pss / 1024.0);
        println!(
            "memory: shim RSS per running container ({} wasm shims, {} runc shims)",
            w.shims, r.shims
        );
        println!("  wasmbay shim:  {:.2} MiB", w.shim_rss / 1024.0);
        println!("  runc shim:     {:.2} MiB", r.shim_rss / 1024.0);
    }

    if bench.big_module_mb > 0 {
        let module = crate::cmd::bench::generate_large_module(bench.big_module_mb << 20)?;
        let size = module.len();
        let (tar, big) = image(work.path(), "wasm-big", "big.wasm", module, None)?;
        import(&tar)?;
        let cold = timed(&cd, Some(WASM_RUNTIME), &big, "big-cold")?;
        let warm = median(
            (0..3)
                .map(|i| timed(&cd, Some(WASM_RUNTIME), &big, &format!("big-warm{i}")))
                .collect::<Result<Vec<_>>>()?,
        );
        println!(
            "big module ({:.1} MB): first start {}, second start {} (median of 3), ratio {:.3}",
            size as f64 / (1 << 20) as f64,
            ms(cold),
            ms(warm),
            warm.as_secs_f64() / cold.as_secs_f64()
        );
    }
    Ok(0)
}
