//! The WasmEdge engine through the `Engine` trait only, as frontends use it. These tests exist
//! only with the `wasmedge` feature (they need libwasmedge); `scripts/test-wasmedge.sh` runs
//! them where the library is installed.
#![cfg(feature = "wasmedge")]

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmbay_engine_wasmedge::WasmEdgeEngine;
use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::runner::{ModuleLoader, Provenance};
use wasmbay_shim_core::{
    CompiledModule, Engine, EngineError, ExitStatus, ModuleKind, Preopen, Stdio, StopHandle,
    WasiConfig,
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
  (func (export "exit255") (call $exit (i32.const 255)))
  (func (export "seven") (result i32) (i32.const 7))
  (func (export "needs_param") (param i32))
  (func (export "trap") unreachable))"#;

/// WASI calls whose results come back as exit codes, so tests need no output parsing.
const WASI_PROBE: &str = r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $envs (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "made.txt")
  (func (export "argc") (result i32)
    (drop (call $args (i32.const 0) (i32.const 4)))
    (i32.load (i32.const 0)))
  (func (export "envc") (result i32)
    (drop (call $envs (i32.const 0) (i32.const 4)))
    (i32.load (i32.const 0)))
  ;; Creates made.txt in the first preopen (fd 3) with write rights; returns the errno.
  (func (export "create") (result i32)
    (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 8)
      (i32.const 1) (i64.const 64) (i64.const 64) (i32.const 0) (i32.const 0)))
  ;; Copies up to 64 bytes from stdin to stdout; returns the byte count.
  (func (export "echo") (result i32)
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
    (i32.load (i32.const 8))))"#;

fn engine() -> WasmEdgeEngine {
    WasmEdgeEngine::new().unwrap()
}

fn compile_wat(engine: &WasmEdgeEngine, text: &str) -> Arc<dyn CompiledModule> {
    let wasm = wat::parse_str(text).unwrap();
    engine.compile(&wasm, ModuleKind::Core).unwrap()
}

fn compile(engine: &WasmEdgeEngine) -> Arc<dyn CompiledModule> {
    compile_wat(engine, PRINT_AND_EXIT)
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

fn run(module: &Arc<dyn CompiledModule>, config: WasiConfig, entry: &str) -> ExitStatus {
    module.run(config, Some(entry), &StopHandle::new()).unwrap()
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
fn runs_on_several_threads_share_one_module() {
    let engine = engine();
    let module = compile(&engine);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let module = module.clone();
            std::thread::spawn(move || {
                let (config, out) = captured();
                let status = module.run(config, None, &StopHandle::new()).unwrap();
                (status, read_back(out))
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(
            thread.join().unwrap(),
            (ExitStatus::Exited(3), "out\n".into())
        );
    }
}

#[test]
fn precompile_is_refused_and_the_loader_compiles_instead() {
    let engine = engine();
    let wasm = wat::parse_str(PRINT_AND_EXIT).unwrap();
    let err = engine.precompile(&wasm, ModuleKind::Core).unwrap_err();
    assert!(matches!(
        err,
        EngineError::NoPrecompile { engine: "wasmedge" }
    ));

    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::new(dir.path().join("cache"), 1 << 30);
    let module_path = dir.path().join("m.wat");
    std::fs::write(&module_path, PRINT_AND_EXIT).unwrap();
    let loader = ModuleLoader::new(&engine, Some(cache));
    for _ in 0..2 {
        let (module, provenance) = loader.load_file(&module_path).unwrap();
        assert_eq!(provenance, Provenance::Compiled);
        let (config, out) = captured();
        assert_eq!(
            module.run(config, None, &StopHandle::new()).unwrap(),
            ExitStatus::Exited(3)
        );
        assert_eq!(read_back(out), "out\n");
    }
}

#[test]
fn any_artifact_is_refused_with_its_path() {
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
fn components_are_unsupported() {
    let engine = engine();
    assert!(engine.supports(ModuleKind::Core));
    assert!(!engine.supports(ModuleKind::Component));
    let err = engine
        .compile(b"\0asm\x0d\0\x01\0", ModuleKind::Component)
        .err()
        .unwrap();
    assert!(matches!(err, EngineError::Unsupported { .. }), "{err}");
    assert_eq!(err.exit_code(), 242);
}

#[test]
fn malformed_module_is_invalid() {
    let engine = engine();
    let mut wasm = wat::parse_str(PRINT_AND_EXIT).unwrap();
    wasm.truncate(wasm.len() / 2);
    let err = engine.compile(&wasm, ModuleKind::Core).err().unwrap();
    assert!(matches!(err, EngineError::InvalidModule(_)), "{err}");
    assert_eq!(err.exit_code(), 245);
}

#[test]
fn stop_from_another_thread_ends_a_tight_loop_within_milliseconds() {
    let engine = engine();
    let module = compile(&engine);
    let stop = StopHandle::new();
    let stopper = stop.clone();
    let stopped_at = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stopper.stop(libc_sigterm());
        Instant::now()
    });
    let (config, _) = captured();
    let status = module.run(config, Some("spin"), &stop).unwrap();
    let ended = Instant::now();
    let stopped_at = stopped_at.join().unwrap();
    assert_eq!(status, ExitStatus::Killed(libc_sigterm()));
    assert_eq!(status.code(), 143);
    let latency = ended.saturating_duration_since(stopped_at);
    assert!(latency < Duration::from_millis(100), "took {latency:?}");
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

#[test]
fn memory_limit_refuses_growth_past_it() {
    let engine = engine();
    let module = compile(&engine);
    let (mut config, _) = captured();
    // One page is there from the start; the limit allows ten in total.
    config.memory_limit = Some(10 * 65536);
    assert_eq!(run(&module, config, "grow"), ExitStatus::Exited(9));
}

#[test]
fn trap_is_reported_with_its_message() {
    let engine = engine();
    let module = compile(&engine);
    let (config, _) = captured();
    let status = run(&module, config, "trap");
    match &status {
        ExitStatus::Trapped(message) => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(status.code(), 251);
}

#[test]
fn proc_exit_codes_pass_through_and_entry_results_are_exit_codes() {
    let engine = engine();
    let module = compile(&engine);
    let (config, _) = captured();
    assert_eq!(run(&module, config, "exit255"), ExitStatus::Exited(255));
    let (config, _) = captured();
    assert_eq!(run(&module, config, "seven"), ExitStatus::Exited(7));
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
fn module_without_start_reports_missing_start() {
    let engine = engine();
    let module = compile_wat(&engine, WASI_PROBE);
    let (config, _) = captured();
    let err = module.run(config, None, &StopHandle::new()).unwrap_err();
    assert!(matches!(err, EngineError::MissingExport { ref name } if name == "_start"));
    assert_eq!(err.exit_code(), 244);
}

#[test]
fn entry_with_parameters_is_refused() {
    let engine = engine();
    let module = compile(&engine);
    let (config, _) = captured();
    let err = module
        .run(config, Some("needs_param"), &StopHandle::new())
        .unwrap_err();
    assert!(matches!(err, EngineError::Instantiate(_)), "{err}");
}

#[test]
fn args_and_env_are_exactly_the_configured_ones() {
    let engine = engine();
    let module = compile_wat(&engine, WASI_PROBE);
    let config = WasiConfig {
        args: vec!["prog".into(), "a".into(), "b c".into()],
        env: vec![("A".into(), "1".into()), ("B".into(), "x=y".into())],
        ..WasiConfig::default()
    };
    assert_eq!(run(&module, config, "argc"), ExitStatus::Exited(3));
    let config = WasiConfig {
        args: vec!["prog".into()],
        env: vec![("A".into(), "1".into()), ("B".into(), "x=y".into())],
        ..WasiConfig::default()
    };
    assert_eq!(run(&module, config, "envc"), ExitStatus::Exited(2));
}

#[test]
fn nul_in_an_argument_is_a_setup_error() {
    let engine = engine();
    let module = compile_wat(&engine, WASI_PROBE);
    let config = WasiConfig {
        args: vec!["prog".into(), "a\0b".into()],
        ..WasiConfig::default()
    };
    let err = module
        .run(config, Some("argc"), &StopHandle::new())
        .unwrap_err();
    assert!(matches!(err, EngineError::WasiSetup(_)), "{err}");
}

fn preopen_config(dir: &std::path::Path, read_only: bool) -> WasiConfig {
    WasiConfig {
        args: vec!["prog".into()],
        preopens: vec![Preopen {
            host: dir.to_path_buf(),
            guest: "/".into(),
            read_only,
        }],
        ..WasiConfig::default()
    }
}

#[test]
fn writable_preopen_lets_the_guest_create_files() {
    let engine = engine();
    let module = compile_wat(&engine, WASI_PROBE);
    let dir = tempfile::tempdir().unwrap();
    let status = run(&module, preopen_config(dir.path(), false), "create");
    assert_eq!(status, ExitStatus::Exited(0));
    assert!(dir.path().join("made.txt").is_file());
}

#[test]
fn read_only_preopen_refuses_creating_files() {
    let engine = engine();
    let module = compile_wat(&engine, WASI_PROBE);
    let dir = tempfile::tempdir().unwrap();
    let status = run(&module, preopen_config(dir.path(), true), "create");
    // 76 is WASI's ENOTCAPABLE: the directory lacks the rights to create.
    assert_eq!(status, ExitStatus::Exited(76));
    assert!(!dir.path().join("made.txt").exists());
}

#[test]
fn preopen_that_is_not_a_directory_is_a_setup_error() {
    let engine = engine();
    let module = compile_wat(&engine, WASI_PROBE);
    let dir = tempfile::tempdir().unwrap();
    let config = preopen_config(&dir.path().join("absent"), false);
    let err = module
        .run(config, Some("create"), &StopHandle::new())
        .unwrap_err();
    assert!(matches!(err, EngineError::WasiSetup(_)), "{err}");
}

#[test]
fn stdin_and_stdout_files_are_the_guests_streams() {
    let engine = engine();
    let module = compile_wat(&engine, WASI_PROBE);
    let mut input = tempfile::tempfile().unwrap();
    input.write_all(b"hello").unwrap();
    input.rewind().unwrap();
    let (mut config, out) = captured();
    config.stdin = Stdio::File(input);
    assert_eq!(run(&module, config, "echo"), ExitStatus::Exited(5));
    assert_eq!(read_back(out), "hello");
}

#[test]
fn null_stdio_reads_nothing_and_discards_output() {
    let engine = engine();
    let module = compile_wat(&engine, WASI_PROBE);
    let config = WasiConfig {
        args: vec!["prog".into()],
        stdin: Stdio::Null,
        stdout: Stdio::Null,
        stderr: Stdio::Null,
        ..WasiConfig::default()
    };
    assert_eq!(run(&module, config, "echo"), ExitStatus::Exited(0));
}

#[test]
fn fingerprint_names_the_library_version() {
    let a = engine().fingerprint();
    assert_eq!(a, engine().fingerprint());
    assert!(a.starts_with("0.17."), "{a}");
}

fn libc_sigterm() -> i32 {
    15
}
