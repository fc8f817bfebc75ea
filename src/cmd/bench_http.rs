//! `wasmbay bench http`: serving throughput and latency of a `wasi:http` component, wasmbay in a
//! container through containerd against `wasmtime serve` of the same wasmtime release, and the
//! cold start of a served container against busybox `httpd` on runc.
//!
//! - load: `wrk` (one thread, HTTP/1.1 keep-alive) at each concurrency, for a hello route and a
//!   route doing work per request (SHA-256 of a 64 KiB body); the two servers alternate within
//!   every round and the medians over rounds are reported;
//! - cold: from spawning `ctr run -d` to the first 200 answer, polled every millisecond.
//!
//! Both servers listen on loopback of the host network (the container with `--net-host`), so
//! that the only difference is the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use wasmbay_oci_image::{ExtraFile, ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::{ContainerdConfig, PrivateContainerd};

use crate::cmd::bench_svg::line_chart;

const WASM_RUNTIME: &str = "io.containerd.wasmbay-wasmtime.v1";
const TIMEOUT: Duration = Duration::from_secs(120);
/// Where `scripts/setup.sh --bench` installs the baseline.
const WASMTIME_48: &str = "/var/cache/wasmbay/wasmtime-cli/48.0.8/bin/wasmtime";

#[derive(Args)]
pub struct HttpBench {
    /// The handler component (default: the corpus's, conformance/corpus/http_handler.wasm).
    #[arg(long)]
    component: Option<PathBuf>,
    /// Directory of the shim to measure (default: next to this binary). Measure an optimised
    /// build: `cargo build --profile perf -p wasmbay-containerd-shim`, then
    /// `--shim-dir target/perf`.
    #[arg(long)]
    shim_dir: Option<PathBuf>,
    /// `wasmtime` of the same release as the engine (48.0.8), the baseline.
    #[arg(long, default_value = WASMTIME_48)]
    wasmtime: PathBuf,
    /// Concurrent connections, one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    concurrency: Vec<usize>,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 5)]
    duration_s: u64,
    /// Rounds; each runs both servers at every point, in alternating order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Skip the load measurements (only the cold starts).
    #[arg(long)]
    no_load: bool,
    /// Cold starts of each kind (0 to skip).
    #[arg(long, default_value_t = 10)]
    cold_runs: usize,
    /// Write report.md, report.json and SVG charts into this directory.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// One load measurement as wrk reports it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Load {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Medians over rounds at one point (route, concurrency) for both servers.
#[derive(Debug, serde::Serialize)]
struct Point {
    route: &'static str,
    concurrency: usize,
    wasmbay: Load,
    wasmtime: Load,
    throughput_ratio: f64,
    p99_ratio: f64,
}

#[derive(Debug, serde::Serialize)]
struct Cold {
    runs: usize,
    wasmbay_median_ms: f64,
    busybox_httpd_median_ms: f64,
    ratio: f64,
}

/// A route of the handler and how wrk requests it.
struct Route {
    name: &'static str,
    path: &'static str,
    /// wrk script for a POST with a body, if the route takes one.
    post_body_bytes: Option<usize>,
}

const ROUTES: [Route; 2] = [
    Route {
        name: "hello",
        path: "/",
        post_body_bytes: None,
    },
    Route {
        name: "sha256-64KiB",
        path: "/sha256",
        post_body_bytes: Some(64 * 1024),
    },
];

pub fn run(bench: HttpBench) -> Result<i32> {
    let exe = std::env::current_exe()?;
    let shim_dir = match &bench.shim_dir {
        Some(dir) => dir.clone(),
        None => exe.parent().context("exe dir")?.to_path_buf(),
    };
    let shim = shim_dir.join("containerd-shim-wasmbay-wasmtime-v1");
    if !shim.is_file() {
        bail!(
            "{} not found (build the workspace binaries)",
            shim.display()
        );
    }
    if !bench.wasmtime.is_file() {
        bail!(
            "{} not found: the baseline is wasmtime-cli 48.0.8 (`scripts/setup.sh --bench` \
             installs it)",
            bench.wasmtime.display()
        );
    }
    which("wrk").context("wrk not found (Debian package wrk; scripts/setup.sh installs it)")?;
    let component = match &bench.component {
        Some(path) => path.clone(),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/corpus/http_handler.wasm")
        }
    };
    let handler = std::fs::read(&component).with_context(|| {
        format!(
            "{} (scripts/build-corpus.sh builds it)",
            component.display()
        )
    })?;
    let busybox = PathBuf::from("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox missing (Debian package busybox-static)");
    }

    let work = tempfile::Builder::new().prefix("wbhttp-").tempdir()?;
    let path = format!(
        "{}:{}",
        shim_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cd = PrivateContainerd::start_with(
        ContainerdConfig::default()
            .with_env("PATH", &path)
            .with_env(
                "WASMBAY_CACHE_DIR",
                &work.path().join("cache").to_string_lossy(),
            ),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let wasm_image = import(&cd, work.path(), "web", "web.wasm", handler, None)?;
    let httpd_image = import(
        &cd,
        work.path(),
        "httpd",
        "index.html",
        b"hello from busybox\n".to_vec(),
        Some(&busybox),
    )?;

    let wasmbay_port = free_port()?;
    let wasmtime_port = free_port()?;
    let mut points = Vec::new();
    if !bench.no_load {
        let _container = Served::container(&cd, &wasm_image, "bench-web", wasmbay_port)?;
        let _wasmtime = Served::wasmtime(&bench.wasmtime, &component, wasmtime_port)?;
        let lua = work.path().join("post.lua");
        for route in &ROUTES {
            for &concurrency in &bench.concurrency {
                let (mut ours, mut theirs) = (Vec::new(), Vec::new());
                for round in 0..bench.rounds.max(1) {
                    let order = if round % 2 == 0 {
                        [wasmbay_port, wasmtime_port]
                    } else {
                        [wasmtime_port, wasmbay_port]
                    };
                    for port in order {
                        let load = wrk(port, route, concurrency, bench.duration_s, &lua)?;
                        if port == wasmbay_port {
                            ours.push(load)
                        } else {
                            theirs.push(load)
                        }
                    }
                }
                let (wasmbay, wasmtime) = (median_load(&ours), median_load(&theirs));
                let point = Point {
                    route: route.name,
                    concurrency,
                    throughput_ratio: wasmbay.requests_per_s / wasmtime.requests_per_s,
                    p99_ratio: wasmbay.p99_ms / wasmtime.p99_ms,
                    wasmbay,
                    wasmtime,
                };
                println!(
                    "{:>13} c={:<3} wasmbay {:>8.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms | wasmtime serve {:>8.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms | throughput x{:.2}, p99 x{:.2}",
                    point.route,
                    concurrency,
                    point.wasmbay.requests_per_s,
                    point.wasmbay.p50_ms,
                    point.wasmbay.p99_ms,
                    point.wasmtime.requests_per_s,
                    point.wasmtime.p50_ms,
                    point.wasmtime.p99_ms,
                    point.throughput_ratio,
                    point.p99_ratio
                );
                points.push(point);
            }
        }
    }

    let shim_log = work.path().join("shim.log");
    let cold = if bench.cold_runs > 0 {
        // A fresh port each time: a port the last container listened on may still be held
        // by its connections' ends.
        let wasm_start = |id: &str| {
            let port = free_port()?;
            first_answer(
                &cd,
                Some(WASM_RUNTIME),
                &wasm_image,
                id,
                port,
                None,
                &shim_log,
            )
        };
        let httpd_start = |id: &str| {
            let port = free_port()?;
            first_answer(&cd, None, &httpd_image, id, port, Some(port), &shim_log)
        };
        // One of each first: the module's compile into the cache is not a cold start.
        wasm_start("cold-warm-w")?;
        httpd_start("cold-warm-r")?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..bench.cold_runs {
            ours.push(wasm_start(&format!("cold-w{i}"))?);
            theirs.push(httpd_start(&format!("cold-r{i}"))?);
        }
        let (ours, theirs) = (median(&ours), median(&theirs));
        println!(
            "cold: ctr run to the first 200, {} runs each: wasmbay median {ours:.1} ms, busybox httpd (runc) median {theirs:.1} ms, ratio {:.2}",
            bench.cold_runs,
            ours / theirs
        );
        Some(Cold {
            runs: bench.cold_runs,
            wasmbay_median_ms: ours,
            busybox_httpd_median_ms: theirs,
            ratio: ours / theirs,
        })
    } else {
        None
    };

    if let Some(dir) = &bench.report {
        write_report(dir, &bench, &points, cold.as_ref())?;
        println!("report written to {}", dir.display());
    }
    Ok(0)
}

fn which(program: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .context("not on PATH")
}

/// An app-layout image of `file` (at `/<file>`), imported; with `busybox`, an httpd image
/// serving `/www` instead.
fn import(
    cd: &PrivateContainerd,
    dir: &Path,
    name: &str,
    file: &str,
    contents: Vec<u8>,
    busybox: Option<&Path>,
) -> Result<String> {
    let reference = ImageRef::parse(&format!("{name}:bench"))?;
    let mut spec = ImageSpec::new(reference.clone(), file, contents);
    spec.layout = Layout::App;
    spec.platform = Platform::parse("linux/amd64")?;
    match busybox {
        Some(busybox) => {
            spec.extra_files = vec![ExtraFile::from_host(busybox, "/bin/busybox")?];
            spec.env = vec!["PATH=/bin".to_string()];
            // `ctr run` appends its arguments (the applet and its flags) to the entrypoint.
            spec.entrypoint = Some(vec!["/bin/busybox".to_string()]);
        }
        None => spec.entrypoint = Some(vec![format!("/{file}")]),
    }
    let tar = dir.join(format!("{name}.tar"));
    spec.build()?.write_to(&tar)?;
    cd.import(&tar, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(reference.to_string())
}

/// A free port below Linux's ephemeral range (32768 up). The probes connect every millisecond
/// to a port nobody listens on yet; with a port from the ephemeral range the kernel may give a
/// probe that very port as its own end, and the probe then connects to itself and holds the
/// port the server is about to bind.
fn free_port() -> Result<u16> {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20000 + (std::process::id() % 5000) as u16;
    for _ in 0..5000 {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 5000;
        let port = base + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between 20000 and 30000")
}

/// A server for the length of the load runs, stopped when dropped.
enum Served<'a> {
    /// The container and the attached `ctr run` that holds its output's reading end.
    Container {
        cd: &'a PrivateContainerd,
        id: String,
        ctr: Child,
    },
    Process(Child),
}

impl<'a> Served<'a> {
    fn container(cd: &'a PrivateContainerd, image: &str, id: &str, port: u16) -> Result<Self> {
        // Attached rather than `-d`: the guest's stderr is the fifo `ctr` reads, and a
        // detached `ctr` leaves it without a reader (a write then fails with EPIPE).
        let mut run = cd.ctr_run();
        run.args(["--net-host", "--runtime", WASM_RUNTIME])
            .arg("--annotation")
            .arg(format!("wasmbay.http.listen=127.0.0.1:{port}"))
            .args([image, id])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let ctr = run.spawn().context("ctr run")?;
        let served = Served::Container {
            cd,
            id: id.to_string(),
            ctr,
        };
        wait_for_200(port, TIMEOUT)?;
        Ok(served)
    }

    fn wasmtime(wasmtime: &Path, component: &Path, port: u16) -> Result<Self> {
        // `-Scli`: the CLI interfaces beside the proxy world's, as wasmbay links them (a Rust
        // handler imports wasi:cli/environment through std).
        let child = Command::new(wasmtime)
            .args(["serve", "-Scli"])
            .arg(format!("--addr=127.0.0.1:{port}"))
            .arg(component)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("{} serve", wasmtime.display()))?;
        let served = Served::Process(child);
        wait_for_200(port, TIMEOUT)?;
        Ok(served)
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        match self {
            Served::Container { cd, id, ctr } => {
                remove_container(cd, id);
                let _ = ctr.wait();
            }
            Served::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Kills and deletes container `id`; every `ctr` call is bounded (the testkit kills one that
/// outlives its timeout), so a stuck removal costs seconds, never the run.
fn remove_container(cd: &PrivateContainerd, id: &str) {
    let step = Duration::from_secs(10);
    let _ = cd.run_ok(cd.ctr().args(["tasks", "kill", "-s", "SIGKILL", id]), step);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match cd.run_ok(cd.ctr().args(["tasks", "delete", id]), step) {
            Ok(_) => break,
            // An attached `ctr run` deletes the task itself once it has exited.
            Err(e) if e.to_string().contains("not found") => break,
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = cd.run_ok(cd.ctr().args(["containers", "delete", id]), step);
}

/// Milliseconds from spawning `ctr run` to the first 200 answer on `port`.
fn first_answer(
    cd: &PrivateContainerd,
    runtime: Option<&str>,
    image: &str,
    id: &str,
    port: u16,
    httpd_port: Option<u16>,
    shim_log: &Path,
) -> Result<f64> {
    let started = Instant::now();
    let mut run = cd.ctr_run();
    // Attached, as a CRI container's output is: its stdout and stderr reach `ctr`, which
    // returns once the container is removed below.
    run.args(["--net-host"]);
    if let Some(runtime) = runtime {
        run.args(["--runtime", runtime]);
    }
    run.arg("--annotation")
        .arg(format!("wasmbay.http.listen=127.0.0.1:{port}"));
    run.args([image, id]);
    if let Some(port) = httpd_port {
        run.args(["/bin/busybox", "httpd", "-f", "-p"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-h", "/"]);
    }
    // The answer may come before `ctr` returns: poll while it runs.
    let (started_ok, answered, diagnosis) = std::thread::scope(|scope| {
        let ctr = scope.spawn(|| cd.run_ok(&mut run, TIMEOUT).map_err(|e| e.to_string()));
        let answered =
            wait_for_200(port, TIMEOUT).map(|_| started.elapsed().as_secs_f64() * 1000.0);
        let diagnosis = if answered.is_err() {
            let log = std::fs::read_to_string(shim_log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tasks = cd
                .ctr()
                .args(["tasks", "ls"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let listening = Command::new("ss")
                .args(["-ltnp"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            format!(
                "tasks:\n{tasks}\nlistening:\n{listening}\nthe shim's log ends:\n{}",
                tail.join("\n")
            )
        } else {
            String::new()
        };
        // Removing the container ends `ctr run`.
        remove_container(cd, id);
        (ctr.join(), answered, diagnosis)
    });
    match (answered, started_ok) {
        (Ok(ms), _) => Ok(ms),
        (Err(e), Ok(ran)) => bail!("{image} ({id}): {e:#}: {diagnosis}\nctr run: {ran:?}"),
        (Err(e), Err(_)) => bail!("{image} ({id}): {e:#}; the thread running ctr panicked"),
    }
}

/// Polls `GET /` on loopback `port` every millisecond until it answers 200.
fn wait_for_200(port: u16, within: Duration) -> Result<()> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + within;
    loop {
        if get_status(address) == Some(200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing answered 200 on {address} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn get_status(address: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// One wrk run: a single thread (the machine has two cores, and the server needs them).
fn wrk(port: u16, route: &Route, concurrency: usize, seconds: u64, lua: &Path) -> Result<Load> {
    let mut command = Command::new("wrk");
    command
        .args(["-t1", "--latency"])
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{seconds}s"))
        .arg(format!("http://127.0.0.1:{port}{}", route.path));
    if let Some(bytes) = route.post_body_bytes {
        std::fs::write(
            lua,
            format!("wrk.method = \"POST\"\nwrk.body = string.rep(\"a\", {bytes})\n"),
        )?;
        command.arg("-s").arg(lua);
    }
    let output = command.output().context("wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if text.contains("Non-2xx") {
        bail!("wrk saw errors on {}: {text}", route.path);
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk's output: {text}"))
}

fn parse_wrk(text: &str) -> Option<Load> {
    let requests_per_s = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| duration_ms(v.trim()))
    };
    Some(Load {
        requests_per_s,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
    })
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.10s`, `1.5m`.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn median_load(loads: &[Load]) -> Load {
    let of = |f: fn(&Load) -> f64| median(&loads.iter().map(f).collect::<Vec<_>>());
    Load {
        requests_per_s: of(|l| l.requests_per_s),
        p50_ms: of(|l| l.p50_ms),
        p99_ms: of(|l| l.p99_ms),
    }
}

fn write_report(
    dir: &Path,
    bench: &HttpBench,
    points: &[Point],
    cold: Option<&Cold>,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::json!({
        "command": command_line(bench),
        "wasmtime_baseline": bench.wasmtime.display().to_string(),
        "duration_s": bench.duration_s,
        "rounds": bench.rounds,
        "points": points,
        "cold": cold,
    });
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;

    let mut md = String::new();
    md.push_str("# HTTP serving: wasmbay (containerd, shim) against `wasmtime serve` 48.0.8\n\n");
    md.push_str(&format!("Command: `{}`\n\n", command_line(bench)));
    md.push_str(
        "| route | concurrency | wasmbay req/s | wasmtime req/s | throughput ratio (≥ 1.0) | \
         wasmbay p50 / p99 ms | wasmtime p50 / p99 ms | p99 ratio (≤ 1.2) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in points {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.2} {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} {} |\n",
            p.route,
            p.concurrency,
            p.wasmbay.requests_per_s,
            p.wasmtime.requests_per_s,
            p.throughput_ratio,
            if p.throughput_ratio >= 1.0 {
                "met"
            } else {
                "missed"
            },
            p.wasmbay.p50_ms,
            p.wasmbay.p99_ms,
            p.wasmtime.p50_ms,
            p.wasmtime.p99_ms,
            p.p99_ratio,
            if p.p99_ratio <= 1.2 { "met" } else { "missed" },
        ));
    }
    if let Some(cold) = cold {
        md.push_str(&format!(
            "\nCold start, `ctr run` to the first 200 ({} runs each, medians): wasmbay {:.1} ms, \
             busybox httpd on runc {:.1} ms, ratio {:.2} (target ≤ 0.5: {}).\n",
            cold.runs,
            cold.wasmbay_median_ms,
            cold.busybox_httpd_median_ms,
            cold.ratio,
            if cold.ratio <= 0.5 { "met" } else { "missed" }
        ));
    }
    md.push_str("\nCharts: throughput.svg, p99.svg.\n");
    std::fs::write(dir.join("report.md"), md)?;

    let xs: Vec<String> = bench.concurrency.iter().map(|c| c.to_string()).collect();
    let series = |route: &str, f: fn(&Load) -> f64, ours: bool| -> Vec<Option<f64>> {
        bench
            .concurrency
            .iter()
            .map(|&c| {
                points
                    .iter()
                    .find(|p| p.route == route && p.concurrency == c)
                    .map(|p| f(if ours { &p.wasmbay } else { &p.wasmtime }))
            })
            .collect()
    };
    for (file, title, unit, f) in [
        (
            "throughput.svg",
            "Requests per second against concurrency",
            "req/s",
            (|l: &Load| l.requests_per_s) as fn(&Load) -> f64,
        ),
        (
            "p99.svg",
            "p99 latency against concurrency",
            "ms",
            |l: &Load| l.p99_ms,
        ),
    ] {
        let names: Vec<(String, Vec<Option<f64>>)> = ROUTES
            .iter()
            .flat_map(|r| {
                [
                    (format!("wasmbay {}", r.name), series(r.name, f, true)),
                    (
                        format!("wasmtime serve {}", r.name),
                        series(r.name, f, false),
                    ),
                ]
            })
            .collect();
        let borrowed: Vec<(&str, Vec<Option<f64>>)> =
            names.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
        std::fs::write(
            dir.join(file),
            line_chart(title, "concurrent connections", unit, &xs, &borrowed),
        )?;
    }
    Ok(())
}

fn command_line(bench: &HttpBench) -> String {
    format!(
        "wasmbay bench http --shim-dir target/perf --concurrency {} --duration-s {} --rounds {} --cold-runs {}",
        bench
            .concurrency
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
        bench.duration_s,
        bench.rounds,
        bench.cold_runs
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 5s test @ http://127.0.0.1:1/\n  1 threads and 16 connections\n  \
            Latency Distribution\n     50%  812.00us\n     75%    1.10ms\n     90%    2.00ms\n     \
            99%    4.52ms\n  100 requests in 5.00s, 1.00MB read\nRequests/sec:  12345.67\n";
        let load = parse_wrk(text).unwrap();
        assert_eq!(load.requests_per_s, 12345.67);
        assert!((load.p50_ms - 0.812).abs() < 1e-9);
        assert_eq!(load.p99_ms, 4.52);
        assert_eq!(duration_ms("2.10s"), Some(2100.0));
        assert_eq!(duration_ms("bad"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
