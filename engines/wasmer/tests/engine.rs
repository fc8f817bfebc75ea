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

/// Preview 1 calls whose wasix answers are corrected by the engine's wrappers. Each export
/// returns the errno of the call it is named for (100 + errno when a step before it failed,
/// 99 when guest memory the host borrowed for the answer was not put back). Address 0..64
/// holds a pattern that must survive every call.
const ERRNOS: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $prestat_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_readlink"
    (func $readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename"
    (func $rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_tell" (func $tell (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "link")
  (data (i32.const 1040) "target")
  (data (i32.const 1056) "/etc")
  (data (i32.const 1072) "abs")
  (data (i32.const 1088) "nolink/")
  (data (i32.const 1104) "dir2/")
  (data (i32.const 1120) "empty_src")
  (data (i32.const 1136) "full")
  (data (i32.const 1152) "file")
  (data (i32.const 1168) "dir2")
  (data (i32.const 1184) ".")
  (func $fill
    (local $at i32)
    (loop $l
      (i64.store (local.get $at) (i64.const 0x0123456789abcdef))
      (local.set $at (i32.add (local.get $at) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $at) (i32.const 64)))))
  (func $intact (result i32)
    (local $at i32)
    (loop $l
      (if (i64.ne (i64.load (local.get $at)) (i64.const 0x0123456789abcdef))
        (then (return (i32.const 0))))
      (local.set $at (i32.add (local.get $at) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $at) (i32.const 64))))
    (i32.const 1))
  ;; Reads `link` into a buffer of $len bytes and prints what it got.
  (func $readlink_into (param $len i32) (result i32)
    (local $e i32)
    (call $fill)
    (local.set $e (call $readlink (i32.const 3) (i32.const 1024) (i32.const 4)
      (i32.const 2048) (local.get $len) (i32.const 2100)))
    (if (local.get $e) (then (return (local.get $e))))
    (if (i32.eqz (call $intact)) (then (return (i32.const 99))))
    (i32.store (i32.const 2200) (i32.const 2048))
    (i32.store (i32.const 2204) (i32.load (i32.const 2100)))
    (drop (call $write (i32.const 1) (i32.const 2200) (i32.const 1) (i32.const 2208)))
    (i32.const 0))
  ;; Opens $path under the preopen with $oflags and $base rights; the descriptor is at 2400.
  (func $open_at (param $path i32) (param $len i32) (param $oflags i32) (param $base i64)
    (result i32)
    (call $open (i32.const 3) (i32.const 0) (local.get $path) (local.get $len)
      (local.get $oflags) (local.get $base) (i64.const 0) (i32.const 0) (i32.const 2400)))
  (func $read_file (param $base i64) (result i32)
    (local $e i32)
    (local.set $e (call $open_at (i32.const 1152) (i32.const 4) (i32.const 0) (local.get $base)))
    (if (local.get $e) (then (return (i32.add (local.get $e) (i32.const 100)))))
    (call $fill)
    (i32.store (i32.const 2500) (i32.const 2600))
    (i32.store (i32.const 2504) (i32.const 16))
    (local.set $e (call $read (i32.load (i32.const 2400)) (i32.const 2500) (i32.const 1)
      (i32.const 2508)))
    (if (i32.eqz (call $intact)) (then (return (i32.const 99))))
    (local.get $e))
  (func $open_dir (result i32)
    ;; O_DIRECTORY, with FD_SEEK | FD_TELL | FD_READDIR asked for.
    (call $open_at (i32.const 1184) (i32.const 1) (i32.const 2) (i64.const 0x4024)))
  (func (export "prestat_short") (result i32)
    (call $prestat_name (i32.const 3) (i32.const 2048) (i32.const 0)))
  (func (export "prestat_exact") (result i32)
    (call $prestat_name (i32.const 3) (i32.const 2048) (i32.const 1)))
  (func (export "readlink_short") (result i32) (call $readlink_into (i32.const 4)))
  (func (export "readlink_exact") (result i32) (call $readlink_into (i32.const 6)))
  (func (export "symlink_absolute") (result i32)
    (call $symlink (i32.const 1056) (i32.const 4) (i32.const 3) (i32.const 1072) (i32.const 3)))
  (func (export "symlink_slash_new") (result i32)
    (call $symlink (i32.const 1040) (i32.const 6) (i32.const 3) (i32.const 1088) (i32.const 7)))
  (func (export "symlink_slash_existing") (result i32)
    (call $symlink (i32.const 1040) (i32.const 6) (i32.const 3) (i32.const 1104) (i32.const 5)))
  (func (export "rename_onto_full_dir") (result i32)
    (call $rename (i32.const 3) (i32.const 1120) (i32.const 9) (i32.const 3) (i32.const 1136)
      (i32.const 4)))
  (func (export "rename_file_onto_dir") (result i32)
    (call $rename (i32.const 3) (i32.const 1152) (i32.const 4) (i32.const 3) (i32.const 1168)
      (i32.const 4)))
  (func (export "rename_dir_onto_file") (result i32)
    (call $rename (i32.const 3) (i32.const 1120) (i32.const 9) (i32.const 3) (i32.const 1152)
      (i32.const 4)))
  ;; FD_SEEK only, then FD_READ.
  (func (export "read_without_right") (result i32) (call $read_file (i64.const 4)))
  (func (export "read_with_right") (result i32) (call $read_file (i64.const 2)))
  (func (export "seek_dir") (result i32)
    (local $e i32)
    (local.set $e (call $open_dir))
    (if (local.get $e) (then (return (i32.add (local.get $e) (i32.const 100)))))
    (call $fill)
    (local.set $e (call $seek (i32.load (i32.const 2400)) (i64.const 0) (i32.const 1)
      (i32.const 2408)))
    (if (i32.eqz (call $intact)) (then (return (i32.const 99))))
    (local.get $e))
  (func (export "tell_dir") (result i32)
    (local $e i32)
    (local.set $e (call $open_dir))
    (if (local.get $e) (then (return (i32.add (local.get $e) (i32.const 100)))))
    (call $tell (i32.load (i32.const 2400)) (i32.const 2408)))
  (func (export "seek_file") (result i32)
    (local $e i32)
    (local.set $e (call $open_at (i32.const 1152) (i32.const 4) (i32.const 0) (i64.const 4)))
    (if (local.get $e) (then (return (i32.add (local.get $e) (i32.const 100)))))
    (call $seek (i32.load (i32.const 2400)) (i64.const 2) (i32.const 0) (i32.const 2408))))"#;

const EEXIST: i32 = 20;
const EISDIR: i32 = 31;
const ENAMETOOLONG: i32 = 37;
const ENOENT: i32 = 44;
const ENOTDIR: i32 = 54;
const ENOTEMPTY: i32 = 55;
const EPERM: i32 = 63;
const ENOTCAPABLE: i32 = 76;

/// A preopened directory with what the `ERRNOS` exports act on.
fn errno_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(path.join("file"), "hello").unwrap();
    std::os::unix::fs::symlink("target", path.join("link")).unwrap();
    std::fs::create_dir(path.join("empty_src")).unwrap();
    std::fs::create_dir(path.join("full")).unwrap();
    std::fs::write(path.join("full/f"), "").unwrap();
    std::fs::create_dir(path.join("dir2")).unwrap();
    dir
}

/// Runs `entry` of `ERRNOS` with `dir` preopened as `/`: its exit status and stdout.
fn run_errnos(
    module: &Arc<dyn CompiledModule>,
    dir: &std::path::Path,
    entry: &str,
) -> (ExitStatus, String) {
    let file = tempfile::tempfile().unwrap();
    let mut config = with_preopen(dir, false);
    config.stdout = Stdio::File(file.try_clone().unwrap());
    let status = module.run(config, Some(entry), &StopHandle::new()).unwrap();
    (status, read_back(file))
}

#[test]
fn preopen_name_buffer_too_small_is_enametoolong() {
    let engine = engine();
    let module = compile(&engine, ERRNOS);
    let dir = errno_fixture();
    let run = |entry| run_errnos(&module, dir.path(), entry).0;
    assert_eq!(run("prestat_short"), ExitStatus::Exited(ENAMETOOLONG));
    assert_eq!(run("prestat_exact"), ExitStatus::Exited(0));
}

#[test]
fn readlink_truncates_to_the_buffer_and_leaves_other_memory_alone() {
    let engine = engine();
    let module = compile(&engine, ERRNOS);
    let dir = errno_fixture();
    assert_eq!(
        run_errnos(&module, dir.path(), "readlink_short"),
        (ExitStatus::Exited(0), "targ".to_string())
    );
    // Contents that fill the buffer exactly are not an overflow either.
    assert_eq!(
        run_errnos(&module, dir.path(), "readlink_exact"),
        (ExitStatus::Exited(0), "target".to_string())
    );
}

#[test]
fn symlink_to_an_absolute_path_or_onto_a_trailing_slash_is_refused() {
    let engine = engine();
    let module = compile(&engine, ERRNOS);
    let dir = errno_fixture();
    let run = |entry| run_errnos(&module, dir.path(), entry).0;
    assert_eq!(run("symlink_absolute"), ExitStatus::Exited(EPERM));
    assert!(std::fs::symlink_metadata(dir.path().join("abs")).is_err());
    assert_eq!(run("symlink_slash_new"), ExitStatus::Exited(ENOENT));
    assert!(std::fs::symlink_metadata(dir.path().join("nolink")).is_err());
    assert_eq!(run("symlink_slash_existing"), ExitStatus::Exited(EEXIST));
    assert!(dir.path().join("dir2").is_dir());
}

#[test]
fn failed_renames_say_why_as_rename_does() {
    let engine = engine();
    let module = compile(&engine, ERRNOS);
    let dir = errno_fixture();
    let run = |entry| run_errnos(&module, dir.path(), entry).0;
    assert_eq!(run("rename_onto_full_dir"), ExitStatus::Exited(ENOTEMPTY));
    assert_eq!(run("rename_file_onto_dir"), ExitStatus::Exited(EISDIR));
    assert_eq!(run("rename_dir_onto_file"), ExitStatus::Exited(ENOTDIR));
    // Nothing moved.
    assert!(dir.path().join("empty_src").is_dir());
    assert!(dir.path().join("full/f").is_file());
    assert_eq!(std::fs::read(dir.path().join("file")).unwrap(), b"hello");
}

#[test]
fn a_call_without_its_right_is_enotcapable() {
    let engine = engine();
    let module = compile(&engine, ERRNOS);
    let dir = errno_fixture();
    let run = |entry| run_errnos(&module, dir.path(), entry).0;
    assert_eq!(run("read_without_right"), ExitStatus::Exited(ENOTCAPABLE));
    assert_eq!(run("read_with_right"), ExitStatus::Exited(0));
}

#[test]
fn a_directory_cannot_be_seeked_or_told() {
    let engine = engine();
    let module = compile(&engine, ERRNOS);
    let dir = errno_fixture();
    let run = |entry| run_errnos(&module, dir.path(), entry).0;
    assert_eq!(run("seek_dir"), ExitStatus::Exited(EBADF));
    assert_eq!(run("tell_dir"), ExitStatus::Exited(EBADF));
    assert_eq!(run("seek_file"), ExitStatus::Exited(0));
}
