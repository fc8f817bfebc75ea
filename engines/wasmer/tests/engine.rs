//! The wasmer engine through the `Engine` trait only, as frontends use it.
#![cfg(feature = "wasmer")]

use std::fs::File;
use std::io::{Read, Seek};
use std::sync::Arc;
use std::time::Duration;

use wasmbay_engine_wasmer::{Settings, WasmerEngine};
use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::runner::{ModuleLoader, Provenance};
use wasmbay_shim_core::{
    CompiledModule, Engine, EngineError, ExitStatus, ModuleKind, Preopen, Stdio, StopHandle,
    WasiConfig,
};

const PRINT_AND_EXIT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "out\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 3)))
  (func (export "exit200") (call $exit (i32.const 200)))
  (func (export "spin") (loop (br 0)))
  (func (export "sleep")
    ;; One clock subscription of an hour (relative, monotonic): the guest blocks in the host.
    (i64.store (i32.const 256) (i64.const 0))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 3600000000000))
    (i64.store (i32.const 288) (i64.const 0))
    (i32.store16 (i32.const 296) (i32.const 0))
    (drop (call $poll (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600))))
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

/// Prints its arguments and environment, one per line, then copies `in.txt` of the first
/// preopen to `out.txt` in it.
const ARGS_ENV_FILES: &str = r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $asz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $esz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 900) "in.txt")
  (data (i32.const 910) "out.txt")
  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $n))
  (func $puts (param $p i32)
    ;; Writes the string at $p followed by a newline (the newline lives at 1000).
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (call $strlen (local.get $p)))
    (i32.store (i32.const 8) (i32.const 1000))
    (i32.store (i32.const 12) (i32.const 1))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 16))))
  (func $print_list (param $count i32) (param $ptrs i32)
    (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (call $puts (i32.load (i32.add (local.get $ptrs) (i32.mul (local.get $i) (i32.const 4)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
  (func (export "_start")
    (local $fd i32)
    (i32.store8 (i32.const 1000) (i32.const 10))
    (drop (call $asz (i32.const 20) (i32.const 24)))
    (drop (call $args (i32.const 2000) (i32.const 3000)))
    (call $print_list (i32.load (i32.const 20)) (i32.const 2000))
    (drop (call $esz (i32.const 20) (i32.const 24)))
    (drop (call $env (i32.const 4000) (i32.const 5000)))
    (call $print_list (i32.load (i32.const 20)) (i32.const 4000))
    ;; in.txt from the first preopen (fd 3, as in wasmtime), read rights only.
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 900) (i32.const 6) (i32.const 0)
          (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 40))
      (then (call $exit (i32.const 10))))
    (local.set $fd (i32.load (i32.const 40)))
    (i32.store (i32.const 48) (i32.const 6000))
    (i32.store (i32.const 52) (i32.const 100))
    (drop (call $r (local.get $fd) (i32.const 48) (i32.const 1) (i32.const 56)))
    ;; out.txt, created and truncated, write rights.
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 910) (i32.const 7) (i32.const 9)
          (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 40))
      (then (call $exit (i32.const 11))))
    (i32.store (i32.const 48) (i32.const 6000))
    (i32.store (i32.const 52) (i32.load (i32.const 56)))
    (if (call $w (i32.load (i32.const 40)) (i32.const 48) (i32.const 1) (i32.const 56))
      (then (call $exit (i32.const 12))))))"#;

fn engine() -> WasmerEngine {
    WasmerEngine::new(&Settings::default()).unwrap()
}

fn compile(engine: &WasmerEngine, wat: &str) -> Arc<dyn CompiledModule> {
    let wasm = wat::parse_str(wat).unwrap();
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
    let module = compile(&engine, PRINT_AND_EXIT);
    for _ in 0..10 {
        let (config, out) = captured();
        let status = module.run(config, None, &StopHandle::new()).unwrap();
        assert_eq!(status, ExitStatus::Exited(3));
        assert_eq!(read_back(out), "out\n");
    }
}

#[test]
fn exit_codes_of_126_and_above_pass_through() {
    let engine = engine();
    let module = compile(&engine, PRINT_AND_EXIT);
    let (config, _) = captured();
    let status = module
        .run(config, Some("exit200"), &StopHandle::new())
        .unwrap();
    assert_eq!(status, ExitStatus::Exited(200));
    assert_eq!(status.code(), 200);
}

#[test]
fn args_env_and_preopened_files_reach_the_guest() {
    let engine = engine();
    let module = compile(&engine, ARGS_ENV_FILES);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "payload").unwrap();
    let (mut config, out) = captured();
    config.args = vec!["prog".into(), "first arg".into(), "--flag".into()];
    config.env = vec![
        ("GREETING".into(), "hello=world".into()),
        ("EMPTY".into(), String::new()),
    ];
    config.preopens = vec![Preopen {
        host: dir.path().to_path_buf(),
        guest: "/data".into(),
        read_only: false,
    }];
    let status = module.run(config, None, &StopHandle::new()).unwrap();
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(
        read_back(out),
        "prog\nfirst arg\n--flag\nGREETING=hello=world\nEMPTY=\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "payload"
    );
}

#[test]
fn read_only_preopen_refuses_writes() {
    let engine = engine();
    let module = compile(&engine, ARGS_ENV_FILES);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "payload").unwrap();
    let (mut config, _) = captured();
    config.preopens = vec![Preopen {
        host: dir.path().to_path_buf(),
        guest: "/data".into(),
        read_only: true,
    }];
    let status = module.run(config, None, &StopHandle::new()).unwrap();
    // Reading works; creating out.txt is refused, which the guest reports with exit 11.
    assert_eq!(status, ExitStatus::Exited(11));
    assert!(!dir.path().join("out.txt").exists());
}

#[test]
fn null_stdout_discards_output() {
    let engine = engine();
    let module = compile(&engine, PRINT_AND_EXIT);
    let config = WasiConfig {
        args: vec!["prog".into()],
        stdout: Stdio::Null,
        ..WasiConfig::default()
    };
    assert_eq!(
        module.run(config, None, &StopHandle::new()).unwrap(),
        ExitStatus::Exited(3)
    );
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

    // The same artifact through an open descriptor, as container frontends load it.
    let file = File::open(&path).unwrap();
    let module = engine
        .load_precompiled_file(file, &path, ModuleKind::Core)
        .unwrap();
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
fn loader_uses_the_cache_on_the_second_load() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::new(dir.path().join("cache"), 1 << 30);
    let module_path = dir.path().join("m.wat");
    std::fs::write(&module_path, PRINT_AND_EXIT).unwrap();
    let loader = ModuleLoader::new(&engine, Some(cache));
    let (_, first) = loader.load_file(&module_path).unwrap();
    assert_eq!(first, Provenance::CompiledAndCached);
    let (module, second) = loader.load_file(&module_path).unwrap();
    assert_eq!(second, Provenance::CacheHit);
    let (config, out) = captured();
    assert_eq!(
        module.run(config, None, &StopHandle::new()).unwrap(),
        ExitStatus::Exited(3)
    );
    assert_eq!(read_back(out), "out\n");
}

#[test]
fn stop_from_another_thread_ends_a_tight_loop() {
    let engine = engine();
    let module = compile(&engine, PRINT_AND_EXIT);
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
fn stop_wakes_a_guest_blocked_in_a_host_call() {
    let engine = engine();
    let module = compile(&engine, PRINT_AND_EXIT);
    let stop = StopHandle::new();
    let stopper = stop.clone();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stopper.stop(9);
    });
    let (config, _) = captured();
    // Without the stop this sleeps for an hour.
    let status = module.run(config, Some("sleep"), &stop).unwrap();
    thread.join().unwrap();
    assert_eq!(status, ExitStatus::Killed(9));
}

#[test]
fn stop_before_run_never_runs_guest_code() {
    let engine = engine();
    let module = compile(&engine, PRINT_AND_EXIT);
    let stop = StopHandle::new();
    stop.stop(9);
    let (config, out) = captured();
    let status = module.run(config, None, &stop).unwrap();
    assert_eq!(status, ExitStatus::Killed(9));
    assert_eq!(read_back(out), "");
}

#[test]
fn memory_limit_refuses_growth_past_it() {
    let engine = engine();
    let module = compile(&engine, PRINT_AND_EXIT);
    let (mut config, _) = captured();
    // One page is there from the start; the limit allows ten in total.
    config.memory_limit = Some(10 * 65536);
    let status = module
        .run(config, Some("grow"), &StopHandle::new())
        .unwrap();
    assert_eq!(status, ExitStatus::Exited(9));

    // The limit belongs to that run only: the next run without one grows further.
    let (config, _) = captured();
    let mut config = config;
    config.memory_limit = Some(20 * 65536);
    let status = module
        .run(config, Some("grow"), &StopHandle::new())
        .unwrap();
    assert_eq!(status, ExitStatus::Exited(19));
}

#[test]
fn trap_is_reported_with_its_message() {
    let engine = engine();
    let module = compile(&engine, PRINT_AND_EXIT);
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
    let module = compile(&engine, PRINT_AND_EXIT);
    let (config, out) = captured();
    let err = module
        .run(config, Some("absent"), &StopHandle::new())
        .unwrap_err();
    assert!(matches!(err, EngineError::MissingExport { ref name } if name == "absent"));
    assert_eq!(read_back(out), "");
}

#[test]
fn module_without_start_reports_missing_start() {
    let engine = engine();
    let module = compile(&engine, r#"(module (memory (export "memory") 1))"#);
    let (config, _) = captured();
    let err = module.run(config, None, &StopHandle::new()).unwrap_err();
    assert!(matches!(err, EngineError::MissingExport { ref name } if name == "_start"));
    assert_eq!(err.exit_code(), 244);
}

#[test]
fn components_are_refused_plainly() {
    let engine = engine();
    assert!(engine.supports(ModuleKind::Core));
    assert!(!engine.supports(ModuleKind::Component));
    let err = engine
        .compile(b"\0asm\x0d\0\x01\0", ModuleKind::Component)
        .err()
        .unwrap();
    assert!(matches!(
        err,
        EngineError::Unsupported {
            engine: "wasmer",
            ..
        }
    ));
}

#[test]
fn fingerprint_is_stable_and_changes_with_settings() {
    let a = engine().fingerprint();
    assert_eq!(a, engine().fingerprint());
    assert!(a.contains("wasmer-7."), "{a}");
    let unoptimized = WasmerEngine::new(&Settings { optimize: false }).unwrap();
    assert_ne!(a, unoptimized.fingerprint());
}

fn libc_sigterm() -> i32 {
    15
}

/// Prints the name of every preopen from descriptor 3 up, one per line, and exits with the
/// errno of the first descriptor that is not one. `dotdot` returns the errno of opening `..`
/// from descriptor 3.
const PREOPEN_NAMES: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $pget (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $pname (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 900) "..")
  (data (i32.const 910) "\n")
  (func $print (param $p i32) (param $n i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (result i32)
    (local $fd i32) (local $err i32)
    (local.set $fd (i32.const 3))
    (block $done
      (loop $next
        (local.set $err (call $pget (local.get $fd) (i32.const 16)))
        (br_if $done (local.get $err))
        ;; A prestat is a tag (u8 at 16) and the name's length (u32 at 20).
        (drop (call $pname (local.get $fd) (i32.const 1000) (i32.load (i32.const 20))))
        (call $print (i32.const 1000) (i32.load (i32.const 20)))
        (call $print (i32.const 910) (i32.const 1))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br $next)))
    (local.get $err))
  (func (export "dotdot") (result i32)
    (call $open (i32.const 3) (i32.const 0) (i32.const 900) (i32.const 2) (i32.const 2)
      (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 40))))"#;

/// EBADF in WASI preview 1.
const EBADF: i32 = 8;

#[test]
fn preopens_are_numbered_from_3_in_order_with_no_extra_root() {
    let engine = engine();
    let module = compile(&engine, PREOPEN_NAMES);
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let (mut config, out) = captured();
    config.preopens = vec![
        Preopen {
            host: first.path().to_path_buf(),
            guest: "/data".into(),
            read_only: false,
        },
        Preopen {
            host: second.path().to_path_buf(),
            guest: ".".into(),
            read_only: true,
        },
    ];
    let status = module.run(config, None, &StopHandle::new()).unwrap();
    assert_eq!(status, ExitStatus::Exited(EBADF));
    assert_eq!(read_back(out), "/data\n.\n");
}

#[test]
fn no_preopens_means_descriptor_3_is_not_one() {
    let engine = engine();
    let module = compile(&engine, PREOPEN_NAMES);
    let (config, out) = captured();
    let status = module.run(config, None, &StopHandle::new()).unwrap();
    assert_eq!(status, ExitStatus::Exited(EBADF));
    assert_eq!(read_back(out), "");
}

#[test]
fn nothing_above_a_preopen_is_reachable() {
    let engine = engine();
    let module = compile(&engine, PREOPEN_NAMES);
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _) = captured();
    config.preopens = vec![Preopen {
        host: dir.path().to_path_buf(),
        guest: "/".into(),
        read_only: false,
    }];
    let status = module
        .run(config, Some("dotdot"), &StopHandle::new())
        .unwrap();
    assert_ne!(
        status,
        ExitStatus::Exited(0),
        "opening `..` of fd 3 must fail"
    );
}

/// `_start` reopens descriptor 3 (`.`, as a directory) with the rights `fd_fdstat_get(3)`
/// reports and exits with that errno (or with the fdstat errno + 100); `base` exits with 1 when
/// the reported base rights hold `FD_WRITE` (bit 6), else 0; `closed` closes 3 and exits with
/// the errno of `fd_fdstat_get(3)` then; `shutdown` exits with `sock_shutdown(fd)`'s errno for
/// fd 1 (`out`) and fd 3 (`three`).
const REOPEN_PREOPEN: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $stat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_shutdown" (func $shut (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 900) ".")
  (func (export "_start") (result i32)
    (local $err i32)
    (local.set $err (call $stat (i32.const 3) (i32.const 64)))
    (if (local.get $err) (then (return (i32.add (local.get $err) (i32.const 100)))))
    ;; Fdstat: filetype u8 at 0, flags u16 at 2, base rights u64 at 8, inheriting u64 at 16.
    (call $open (i32.const 3) (i32.const 0) (i32.const 900) (i32.const 1) (i32.const 2)
      (i64.load (i32.const 72)) (i64.load (i32.const 80)) (i32.const 0) (i32.const 40)))
  (func (export "base") (result i32)
    (drop (call $stat (i32.const 3) (i32.const 64)))
    (i32.wrap_i64 (i64.and (i64.shr_u (i64.load (i32.const 72)) (i64.const 6)) (i64.const 1))))
  (func (export "closed") (result i32)
    (drop (call $close (i32.const 3)))
    (call $stat (i32.const 3) (i32.const 64)))
  (func (export "out") (result i32) (call $shut (i32.const 1) (i32.const 1)))
  (func (export "three") (result i32) (call $shut (i32.const 3) (i32.const 1))))"#;

/// ENOTSOCK in WASI preview 1.
const ENOTSOCK: i32 = 57;

fn with_preopen(dir: &std::path::Path, read_only: bool) -> WasiConfig {
    let (mut config, _) = captured();
    config.preopens = vec![Preopen {
        host: dir.to_path_buf(),
        guest: "/".into(),
        read_only,
    }];
    config
}

#[test]
fn a_preopen_reopened_with_its_reported_rights_opens() {
    let engine = engine();
    let module = compile(&engine, REOPEN_PREOPEN);
    let dir = tempfile::tempdir().unwrap();
    for read_only in [false, true] {
        let run = |entry| {
            module
                .run(
                    with_preopen(dir.path(), read_only),
                    entry,
                    &StopHandle::new(),
                )
                .unwrap()
        };
        assert_eq!(run(None), ExitStatus::Exited(0), "read_only: {read_only}");
        // A directory descriptor cannot be written; wasix reported every right here.
        assert_eq!(
            run(Some("base")),
            ExitStatus::Exited(0),
            "read_only: {read_only}"
        );
    }
}

#[test]
fn descriptor_3_closed_or_absent_is_ebadf() {
    let engine = engine();
    let module = compile(&engine, REOPEN_PREOPEN);
    let dir = tempfile::tempdir().unwrap();
    let status = module
        .run(
            with_preopen(dir.path(), false),
            Some("closed"),
            &StopHandle::new(),
        )
        .unwrap();
    assert_eq!(status, ExitStatus::Exited(EBADF));
    let (config, _) = captured();
    let status = module.run(config, None, &StopHandle::new()).unwrap();
    assert_eq!(status, ExitStatus::Exited(EBADF + 100));
}

#[test]
fn sock_shutdown_of_a_non_socket_is_enotsock_and_of_nothing_ebadf() {
    let engine = engine();
    let module = compile(&engine, REOPEN_PREOPEN);
    let (config, _) = captured();
    let status = module.run(config, Some("out"), &StopHandle::new()).unwrap();
    assert_eq!(status, ExitStatus::Exited(ENOTSOCK));
    let (config, _) = captured();
    let status = module
        .run(config, Some("three"), &StopHandle::new())
        .unwrap();
    assert_eq!(status, ExitStatus::Exited(EBADF));
}
