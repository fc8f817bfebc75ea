//! The precompiled cache under faults, through `wasmbay run`: simultaneous first starts, a full
//! disk, an altered artifact. Each run's log says how its module was obtained.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::wasmbay;

/// A module whose compile takes long enough that twenty starts launched together overlap it:
/// `_start` prints `done` and exits 4, beside `FUNCS` functions that only cost compile time.
fn big_module() -> String {
    const FUNCS: usize = 3000;
    let mut wat = String::from(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "done\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 5))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 4)))
"#,
    );
    for n in 0..FUNCS {
        wat.push_str(&format!(
            "  (func (export \"f{n}\") (param i32) (result i32) \
             (i32.add (i32.mul (local.get 0) (i32.const {n})) (i32.const 7)))\n"
        ));
    }
    wat.push(')');
    wat
}

fn module_in(dir: &Path) -> PathBuf {
    let path = dir.join("big.wat");
    fs::write(&path, big_module()).unwrap();
    path
}

/// `wasmbay run` of `module` with the cache at `cache`, logging how the module was obtained.
fn run(cache: &Path, module: &Path) -> Command {
    let mut cmd = wasmbay(cache);
    cmd.env("RUST_LOG", "wasmbay=debug,wasmbay_shim_core=warn")
        .arg("run")
        .arg(module);
    cmd
}

/// The provenance the run logged (`CacheHit`, `CompiledAndCached`, `Compiled`).
fn provenance(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("module ready"))
        .unwrap_or_else(|| panic!("no provenance logged:\n{stderr}"));
    line.split("provenance=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no provenance in {line}"))
        .to_string()
}

fn assert_ran(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(4),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "done\n");
}

/// Cache files by suffix (`bin`, `sum`, `lock`, `tmp`), over every engine directory.
fn cache_files(cache: &Path, suffix: &str) -> Vec<PathBuf> {
    let Ok(engines) = fs::read_dir(cache) else {
        return Vec::new();
    };
    engines
        .flatten()
        .filter_map(|e| fs::read_dir(e.path()).ok())
        .flat_map(|files| files.flatten().map(|f| f.path()))
        .filter(|p| p.to_string_lossy().ends_with(&format!(".{suffix}")))
        .collect()
}

#[test]
fn twenty_simultaneous_first_starts_compile_the_module_once() {
    let dir = tempfile::tempdir().unwrap();
    let module = module_in(dir.path());
    let cache = dir.path().join("cache");
    let children: Vec<_> = (0..20)
        .map(|_| {
            run(&cache, &module)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut compiled = 0;
    let mut hits = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_ran(&output);
        match provenance(&output).as_str() {
            "CompiledAndCached" => compiled += 1,
            "CacheHit" => hits += 1,
            other => panic!("unexpected provenance {other}"),
        }
    }
    assert_eq!(
        (compiled, hits),
        (1, 19),
        "twenty first starts compiled {compiled} times"
    );
    assert_eq!(cache_files(&cache, "bin").len(), 1);
    assert!(cache_files(&cache, "tmp").is_empty());
}

#[test]
fn an_altered_artifact_is_rebuilt_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let module = module_in(dir.path());
    let cache = dir.path().join("cache");
    let first = run(&cache, &module).output().unwrap();
    assert_ran(&first);
    assert_eq!(provenance(&first), "CompiledAndCached");
    let [artifact] = &cache_files(&cache, "bin")[..] else {
        panic!("expected one artifact in {}", cache.display());
    };
    // Same length, one byte changed in place, as a bad disk or a stray writer would leave it.
    let mut bytes = fs::read(artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(artifact, &bytes).unwrap();

    let second = run(&cache, &module).output().unwrap();
    assert_ran(&second);
    assert_eq!(provenance(&second), "CompiledAndCached");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("dropping cached artifact")
            && stderr.contains(&*artifact.to_string_lossy()),
        "the check does not name the artifact:\n{stderr}"
    );
    let third = run(&cache, &module).output().unwrap();
    assert_ran(&third);
    assert_eq!(provenance(&third), "CacheHit");
}

#[test]
fn a_full_cache_disk_costs_a_compile_not_the_run() {
    if !wasmbay_testkit::require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let module = module_in(dir.path());
    let cache = dir.path().join("cache");
    fs::create_dir(&cache).unwrap();
    // 64 KiB holds the directories and the digest, not the artifact (a few MiB).
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "wasmbay-full"])
        .arg(&cache)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "cannot mount a tmpfs at {}",
        cache.display()
    );
    let output = run(&cache, &module).output();
    let leftovers: Vec<PathBuf> = ["bin", "sum", "tmp"]
        .iter()
        .flat_map(|suffix| cache_files(&cache, suffix))
        .collect();
    let unmounted = Command::new("umount").arg(&cache).status().unwrap();
    let output = output.unwrap();
    assert!(unmounted.success());
    assert_ran(&output);
    assert_eq!(provenance(&output), "Compiled");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot store precompiled module") && stderr.contains("No space left"),
        "the full disk is not reported:\n{stderr}"
    );
    assert!(
        leftovers.is_empty(),
        "partial cache files left: {leftovers:?}"
    );
}
