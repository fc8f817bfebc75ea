//! The wasmtime engine through the `Engine` trait only, as frontends use it.

use std::fs::File;
use std::io::{Read, Seek};
use std::sync::Arc;
use std::time::Duration;

use wasmbay_engine_wasmtime::{Settings, WasmtimeEngine};
use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::runner::{ModuleLoader, Provenance};
use wasmbay_shim_core::{
    CompiledModule, Engine, EngineError, ExitStatus, ModuleKind, ServeLimits, Stdio, StopHandle,
    StopMode, WasiConfig,
};

const PRINT_AND_EXIT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "out\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 3)))
  (func (export "spin") (loop (br 0)))
  (func (export "grow") (result i32)
    ;; Grows one page at a time until refused; returns how many pages were added.
    (local $n i32)
    (block $done
      (loop $again
        (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $again)))
    (local.get $n))
  (func (export "trap") unreachable))"#;

fn engine() -> WasmtimeEngine {
    WasmtimeEngine::new(&Settings::default()).unwrap()
}

fn compile(engine: &WasmtimeEngine) -> Arc<dyn CompiledModule> {
    let wasm = wat::parse_str(PRINT_AND_EXIT).unwrap();
    engine.compile(&wasm, ModuleKind::Core).unwrap()
}

/// A config whose stdout goes to a temp file that the test reads back.
fn captured() -> (WasiConfig, File) {
    let file = tempfile::tempfile().unwrap();
    let config = WasiConfig {
        args: vec!["prog".into()],
        stdout: Stdio::File(file.try_clone().unwrap()),
        ..WasiConfig::default()
    };
    (config, file)
}

fn read_back(mut file: File) -> String {
    file.rewind().unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn one_compile_many_independent_runs() {
    let engine = engine();
    let module = compile(&engine);
    for _ in 0..20 {
        let (config, out) = captured();
        let status = module.run(config, None, &StopHandle::new()).unwrap();
        assert_eq!(status, ExitStatus::Exited(3));
        assert_eq!(read_back(out), "out\n");
    }
}

#[test]
fn precompiled_artifact_loads_without_recompiling_and_runs() {
    let engine = engine();
    let wasm = wat::parse_str(PRINT_AND_EXIT).unwrap();
    let artifact = engine.precompile(&wasm, ModuleKind::Core).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.bin");
    std::fs::write(&path, artifact).unwrap();
    let module = engine.load_precompiled(&path, ModuleKind::Core).unwrap();
    let (config, out) = captured();
    assert_eq!(
        module.run(config, None, &StopHandle::new()).unwrap(),
        ExitStatus::Exited(3)
    );
    assert_eq!(read_back(out), "out\n");
}

#[test]
fn garbage_artifact_is_refused_with_its_path() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.bin");
    std::fs::write(&path, b"not an artifact").unwrap();
    let err = engine
        .load_precompiled(&path, ModuleKind::Core)
        .err()
        .unwrap();
    assert!(matches!(err, EngineError::BadArtifact { .. }));
    assert!(err.to_string().contains("junk.bin"));
}

#[test]
fn loader_uses_the_cache_on_the_second_load_and_recovers_from_corruption() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::new(dir.path().join("cache"), 1 << 30);
    let module_path = dir.path().join("m.wat");
    std::fs::write(&module_path, PRINT_AND_EXIT).unwrap();
    let loader = ModuleLoader::new(&engine, Some(cache.clone()));
    let (_, first) = loader.load_file(&module_path).unwrap();
    assert_eq!(first, Provenance::CompiledAndCached);
    let (module, second) = loader.load_file(&module_path).unwrap();
    assert_eq!(second, Provenance::CacheHit);
    let (config, _) = captured();
    assert_eq!(
        module.run(config, None, &StopHandle::new()).unwrap(),
        ExitStatus::Exited(3)
    );
    // Corrupt every artifact: the loader must notice, drop it and compile again. The damaged
    // file replaces the entry by rename: truncating a file that a live module maps would fault
    // that module.
    for engine_dir in std::fs::read_dir(cache.dir()).unwrap() {
        for entry in std::fs::read_dir(engine_dir.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "bin") {
                continue;
            }
            let damaged = path.with_extension("damaged");
            std::fs::write(&damaged, b"corrupt").unwrap();
            std::fs::rename(&damaged, &path).unwrap();
        }
    }
    let (_, third) = loader.load_file(&module_path).unwrap();
    assert_eq!(third, Provenance::CompiledAndCached);
}

#[test]
fn stop_from_another_thread_ends_a_tight_loop() {
    let engine = engine();
    let module = compile(&engine);
    let stop = StopHandle::new();
    let stopper = stop.clone();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stopper.stop(libc_sigterm());
    });
    let (config, _) = captured();
    let status = module.run(config, Some("spin"), &stop).unwrap();
    thread.join().unwrap();
    assert_eq!(status, ExitStatus::Killed(libc_sigterm()));
    assert_eq!(status.code(), 143);
}

#[test]
fn stop_before_run_never_runs_guest_code() {
    let engine = engine();
    let module = compile(&engine);
    let stop = StopHandle::new();
    stop.stop(9);
    let (config, out) = captured();
    let status = module.run(config, None, &stop).unwrap();
    assert_eq!(status, ExitStatus::Killed(9));
    assert_eq!(read_back(out), "");
}

/// Guests that own their process are compiled without interruption checks: their artifacts
/// must never be mistaken for the interruptible ones, they run the same, and a stop that came
/// before the run still runs nothing.
#[test]
fn exit_process_mode_compiles_apart_and_registers_no_waker() {
    let in_guest = engine();
    let exit_process = WasmtimeEngine::new(&Settings {
        stop_mode: StopMode::ExitProcess,
        ..Settings::default()
    })
    .unwrap();
    assert_ne!(in_guest.fingerprint(), exit_process.fingerprint());

    let wasm = wat::parse_str(PRINT_AND_EXIT).unwrap();
    let artifact = in_guest.precompile(&wasm, ModuleKind::Core).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in-guest.cwasm");
    std::fs::write(&path, artifact).unwrap();
    assert!(matches!(
        exit_process.load_precompiled(&path, ModuleKind::Core),
        Err(EngineError::BadArtifact { .. })
    ));

    let module = compile(&exit_process);
    let (config, out) = captured();
    let stop = StopHandle::new();
    let status = module.run(config, None, &stop).unwrap();
    assert_eq!(status, ExitStatus::Exited(3));
    assert_eq!(read_back(out), "out\n");

    let stop = StopHandle::new();
    stop.stop(15);
    let (config, out) = captured();
    assert_eq!(
        module.run(config, None, &stop).unwrap(),
        ExitStatus::Killed(15)
    );
    assert_eq!(read_back(out), "");
}

#[test]
fn memory_limit_refuses_growth_past_it() {
    let engine = engine();
    let module = compile(&engine);
    let (mut config, _) = captured();
    // One page is there from the start; the limit allows ten in total.
    config.memory_limit = Some(10 * 65536);
    let status = module
        .run(config, Some("grow"), &StopHandle::new())
        .unwrap();
    assert_eq!(status, ExitStatus::Exited(9));
}

#[test]
fn trap_is_reported_with_its_message() {
    let engine = engine();
    let module = compile(&engine);
    let (config, _) = captured();
    let status = module
        .run(config, Some("trap"), &StopHandle::new())
        .unwrap();
    match &status {
        ExitStatus::Trapped(message) => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(status.code(), 251);
}

#[test]
fn missing_export_is_an_error_before_running() {
    let engine = engine();
    let module = compile(&engine);
    let (config, out) = captured();
    let err = module
        .run(config, Some("absent"), &StopHandle::new())
        .unwrap_err();
    assert!(matches!(err, EngineError::MissingExport { ref name } if name == "absent"));
    assert_eq!(read_back(out), "");
}

#[test]
fn fingerprint_is_stable_and_changes_with_settings() {
    let a = engine().fingerprint();
    assert_eq!(a, engine().fingerprint());
    let unoptimized = WasmtimeEngine::new(&Settings {
        optimize: false,
        ..Settings::default()
    })
    .unwrap();
    assert_ne!(a, unoptimized.fingerprint());
}

fn libc_sigterm() -> i32 {
    15
}

#[test]
fn modules_known_by_digest_are_fetched_only_on_a_cache_miss() {
    use std::cell::Cell;
    use wasmbay_shim_core::cache::module_digest;
    use wasmbay_shim_core::runner::{DigestArtifact, LoadError};

    let engine = WasmtimeEngine::new(&Settings::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wasm = wat::parse_str(PRINT_AND_EXIT).unwrap();
    let digest = module_digest(&wasm);
    let origin = std::path::Path::new("img@sha256:layer");
    let fetches = Cell::new(0);
    let fetch = || {
        fetches.set(fetches.get() + 1);
        Ok(wasm.clone())
    };
    let loader = ModuleLoader::new(&engine, Some(ModuleCache::new(dir.path(), 1 << 30)));
    for _ in 0..2 {
        match loader.prepare_by_digest(origin, &digest, fetch).unwrap() {
            DigestArtifact::Precompiled(prepared) => {
                assert_eq!(prepared.kind, ModuleKind::Core);
                assert!(prepared.artifact.path.starts_with(dir.path()));
            }
            DigestArtifact::Bytes(_) => panic!("wasmtime precompiles"),
        }
    }
    assert_eq!(
        fetches.get(),
        1,
        "the second call found the artifact by digest"
    );

    // Content that does not match its descriptor is refused, naming the module.
    let wrong = "00".repeat(32);
    let err = loader
        .prepare_by_digest(origin, &wrong, || Ok(wasm.clone()))
        .unwrap_err();
    assert!(matches!(err, LoadError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("img@sha256:layer"), "{err}");

    // Without a cache the bytes come back for the container to compile.
    let uncached = ModuleLoader::new(&engine, None);
    match uncached
        .prepare_by_digest(origin, &digest, || Ok(wasm.clone()))
        .unwrap()
    {
        DigestArtifact::Bytes(bytes) => assert_eq!(bytes, wasm),
        DigestArtifact::Precompiled(..) => panic!("no cache, no artifact"),
    }
}

/// A WASI 0.3 command from wasi-testsuite (the shared copy, as tests/common finds it).
fn wasip3_case(name: &str) -> Vec<u8> {
    let base = std::env::var_os("WASMBAY_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
        });
    let path = base
        .join("conformance/wasi-testsuite/tests/rust/testsuite/wasm32-wasip3")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set WASMBAY_SHARED_DIR to the shared directory)",
            path.display()
        )
    })
}

#[test]
fn a_wasi_0_3_command_is_told_from_its_imports_and_runs() {
    let engine = engine();
    let exit = engine
        .compile(&wasip3_case("cli-exit.wasm"), ModuleKind::Component)
        .unwrap();
    let (config, _) = captured();
    assert_eq!(
        exit.run(config, None, &StopHandle::new()).unwrap(),
        ExitStatus::Exited(1),
        "cli-exit calls wasi:cli/exit@0.3 with an error"
    );
    // Precompiled and loaded back, it is still a 0.3 command.
    let artifact = engine
        .precompile(&wasip3_case("cli-stdio.wasm"), ModuleKind::Component)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.cwasm");
    std::fs::write(&path, artifact).unwrap();
    let stdio = engine
        .load_precompiled(&path, ModuleKind::Component)
        .unwrap();
    let (config, _) = captured();
    assert_eq!(
        stdio.run(config, None, &StopHandle::new()).unwrap(),
        ExitStatus::Exited(0)
    );
}

#[test]
fn a_wasi_0_3_guest_has_no_network_unless_given_one() {
    let engine = engine();
    let module = engine
        .compile(&wasip3_case("sockets-tcp-bind.wasm"), ModuleKind::Component)
        .unwrap();
    let errors = tempfile::tempfile().unwrap();
    let config = WasiConfig {
        args: vec!["prog".into()],
        stderr: Stdio::File(errors.try_clone().unwrap()),
        ..WasiConfig::default()
    };
    let status = module.run(config, None, &StopHandle::new()).unwrap();
    assert_eq!(status.code(), 251, "{status:?}");
    assert!(read_back(errors).contains("AccessDenied"));
    let config = WasiConfig {
        args: vec!["prog".into()],
        network: true,
        ..WasiConfig::default()
    };
    assert_eq!(
        module.run(config, None, &StopHandle::new()).unwrap(),
        ExitStatus::Exited(0)
    );
}

#[test]
fn components_that_are_no_command_are_refused_naming_what_they_export() {
    let engine = engine();
    let empty = wat::parse_str("(component)").unwrap();
    let err = match engine.compile(&empty, ModuleKind::Component) {
        Err(e) => e,
        Ok(_) => panic!("a component with no export compiled to a command"),
    };
    assert_eq!(
        err.exit_code(),
        244,
        "nothing to run, as a module without _start"
    );
    let err = err.to_string();
    assert!(err.contains("exports neither"), "{err}");
    // A real handler compiles, and running it says to serve it.
    let handler = engine
        .compile(&http_handler(), ModuleKind::Component)
        .unwrap();
    assert!(handler.serves_http());
    let (config, _) = captured();
    let err = handler.run(config, None, &StopHandle::new()).unwrap_err();
    assert_eq!(err.exit_code(), 244);
    let err = err.to_string();
    assert!(
        err.contains("wasi:http/incoming-handler@0.2") && err.contains("wasmbay serve"),
        "{err}"
    );
    // And a command is not served.
    let command = compile(&engine);
    assert!(!command.serves_http());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (config, _) = captured();
    let err = command
        .serve(
            config,
            listener,
            &ServeLimits::default(),
            &StopHandle::new(),
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::NotAnHttpHandler(_)), "{err}");
}

/// The corpus's HTTP handler (conformance/programs/http, built by scripts/build-corpus.sh).
fn http_handler() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/corpus/http_handler.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (built by scripts/build-corpus.sh)", path.display()))
}

/// A running server: the module served on a loopback port from a thread, stopped by `stop`.
struct Served {
    address: std::net::SocketAddr,
    stop: StopHandle,
    thread: Option<std::thread::JoinHandle<Result<(), EngineError>>>,
}

impl Served {
    /// Compiles `wasm` (it must be a handler) and serves it with guest variables `env`, the
    /// guest's stderr (trap messages) discarded.
    fn start(wasm: &[u8], env: &[(&str, &str)], limits: ServeLimits) -> Served {
        let module = engine().compile(wasm, ModuleKind::Component).unwrap();
        assert!(module.serves_http());
        let config = WasiConfig {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stderr: Stdio::Null,
            ..WasiConfig::default()
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let stop = StopHandle::new();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || module.serve(config, listener, &limits, &stop))
        };
        Served {
            address,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the server and waits for it, at most `within`.
    fn stop(mut self, within: Duration) -> Result<(), EngineError> {
        self.stop.stop(libc_sigterm());
        let thread = self.thread.take().unwrap();
        let deadline = std::time::Instant::now() + within;
        while !thread.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not drain in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.stop(libc_sigterm());
    }
}

/// One HTTP/1.1 request on its own connection: the status and the body.
fn request(address: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_handler_is_served_an_instance_per_request_and_a_trap_answers_only_its_request() {
    let served = Served::start(
        &http_handler(),
        &[("GREETING", "hi")],
        ServeLimits::default(),
    );
    let at = served.address;
    assert_eq!(
        request(at, "GET", "/", ""),
        (200, "hello from wasm\n".into())
    );
    assert_eq!(
        request(at, "GET", "/env/GREETING", ""),
        (200, "hi\n".into())
    );
    assert_eq!(request(at, "POST", "/echo", "ping"), (200, "ping".into()));
    assert_eq!(request(at, "GET", "/trap", "").0, 500);
    assert_eq!(
        request(at, "GET", "/", "").0,
        200,
        "the server goes on after a trap"
    );
    assert_eq!(request(at, "GET", "/nowhere", "").0, 404);
    served.stop(Duration::from_secs(10)).unwrap();
}

#[test]
fn per_request_memory_and_time_limits_answer_500_and_the_next_request_succeeds() {
    let limits = ServeLimits {
        request_memory: Some(32 << 20),
        request_timeout: Duration::from_millis(500),
        max_concurrency: 4,
    };
    let served = Served::start(&http_handler(), &[], limits);
    let at = served.address;
    assert_eq!(request(at, "GET", "/alloc/8", "").0, 200);
    assert_eq!(request(at, "GET", "/alloc/64", "").0, 500, "over 32 MiB");
    assert_eq!(
        request(at, "GET", "/alloc/8", "").0,
        200,
        "a fresh instance"
    );
    // Guest code spinning is interrupted (epoch), a guest waiting in a host call is expired.
    assert_eq!(request(at, "GET", "/spin", "").0, 500);
    assert_eq!(request(at, "GET", "/sleep/5000", "").0, 500);
    assert_eq!(request(at, "GET", "/", "").0, 200);
    served.stop(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_stop_drains_the_request_in_flight_then_refuses_connections() {
    let served = Served::start(&http_handler(), &[], ServeLimits::default());
    let at = served.address;
    let slow = std::thread::spawn(move || request(at, "GET", "/sleep/700", ""));
    std::thread::sleep(Duration::from_millis(200));
    served.stop(Duration::from_secs(10)).unwrap();
    assert_eq!(slow.join().unwrap(), (200, "slept\n".into()));
    assert!(
        std::net::TcpStream::connect(at).is_err(),
        "the listener is closed once drained"
    );
}

#[test]
fn a_wasi_0_3_service_is_served() {
    let served = Served::start(
        &wasip3_case("http-service-echo.wasm"),
        &[],
        ServeLimits::default(),
    );
    let at = served.address;
    assert_eq!(
        request(at, "POST", "/echo", "hello, echo"),
        (200, "hello, echo".into())
    );
    assert_eq!(request(at, "GET", "/whatever", "").0, 404);
    served.stop(Duration::from_secs(10)).unwrap();
}
