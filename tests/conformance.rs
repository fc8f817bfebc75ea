//! The whole corpus (the project's own and wasi-testsuite's) through the direct frontend, and
//! proof that the runner can fail.

mod common;

use std::fs;

use common::{build_corpus, repo_root, wasmbay};

fn corpus_dirs() -> Vec<std::path::PathBuf> {
    let shared = common::shared_testsuite();
    let mut dirs = vec![repo_root().join("conformance/corpus")];
    for suite in ["assemblyscript", "c", "rust"] {
        dirs.push(shared.join(suite).join("testsuite/wasm32-wasip1"));
    }
    dirs
}

fn assert_corpus_passes(frontend: &str) {
    build_corpus();
    let cache = tempfile::tempdir().unwrap();
    let json = cache.path().join("report.json");
    let output = wasmbay(cache.path())
        .args([
            "conformance",
            "--engine",
            "wasmtime",
            "--frontend",
            frontend,
            "--json",
        ])
        .arg(&json)
        .args(corpus_dirs())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        output.status.success() && failures.is_empty(),
        "{frontend}: conformance failed:\n{}\nstderr: {}",
        failures.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(json).unwrap()).unwrap();
    assert!(
        report["passed"].as_u64().unwrap() >= 71,
        "too few cases ran"
    );
    assert_eq!(report["failed"], 0);
    assert_eq!(report["frontend"], frontend);
}

#[test]
fn whole_corpus_passes_through_oci_runtime_frontend() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the oci-runtime frontend creates real containers and needs root");
        return;
    }
    assert_corpus_passes("oci-runtime");
}

#[test]
fn whole_corpus_passes_through_containerd_frontend() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the containerd frontend runs a private containerd and needs root");
        return;
    }
    if !std::path::Path::new("/usr/bin/containerd").is_file() {
        eprintln!("skipped: /usr/bin/containerd missing (Debian package containerd; scripts/setup.sh installs it)");
        return;
    }
    assert_corpus_passes("containerd");
}

#[test]
fn whole_corpus_passes_through_direct_frontend() {
    assert_corpus_passes("direct");
}

#[test]
fn wrong_expectation_makes_the_run_fail() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    fs::create_dir(&cases).unwrap();
    let module = r#"(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i32.const 42))))"#;
    fs::write(cases.join("right.wat"), module).unwrap();
    fs::write(cases.join("right.json"), r#"{"exit_code": 42}"#).unwrap();
    fs::write(cases.join("wrong.wat"), module).unwrap();
    fs::write(
        cases.join("wrong.json"),
        r#"{"exit_code": 0, "stdout": "x"}"#,
    )
    .unwrap();
    let output = wasmbay(dir.path())
        .args([
            "conformance",
            "--engine",
            "wasmtime",
            "--frontend",
            "direct",
        ])
        .arg(&cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PASS cases/right"), "{stdout}");
    assert!(
        stdout.contains("FAIL cases/wrong: exit code 42, expected 0; stdout \"\", expected \"x\""),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn case_spec_with_unknown_key_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("c.wat"), "(module)").unwrap();
    fs::write(dir.path().join("c.json"), r#"{"exitcode": 1}"#).unwrap();
    let output = wasmbay(dir.path())
        .args(["conformance", "--frontend", "direct"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("c.json") && stderr.contains("exitcode"),
        "{stderr}"
    );
}
