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
    dirs.push(shared.join("rust/testsuite/wasm32-wasip3"));
    dirs
}

/// Engines this build of `wasmbay` holds, from `wasmbay engines`.
fn compiled_in_engines(home: &std::path::Path) -> Vec<String> {
    let output = wasmbay(home).arg("engines").output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, state)| *state == "compiled in")
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Every engine compiled in × every frontend this machine can run, over the whole corpus.
/// Frontends that need root or containerd are left out with a message when those are missing.
#[test]
fn the_matrix_passes_on_every_engine_and_frontend() {
    build_corpus();
    let home = tempfile::tempdir().unwrap();
    let json = home.path().join("matrix.json");
    let markdown = home.path().join("matrix.md");
    let output = wasmbay(home.path())
        .current_dir(repo_root())
        .args(["conformance", "--matrix", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .args(corpus_dirs())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        output.status.success() && failures.is_empty(),
        "conformance matrix failed:\n{}\nstderr: {}",
        failures.join("\n"),
        String::from_utf8_lossy(&output.stderr)
    );
    let matrix: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(json).unwrap()).unwrap();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let containerd = std::path::Path::new("/usr/bin/containerd").is_file();
    let mut frontends = vec!["direct"];
    if root {
        frontends.push("oci-runtime");
    } else {
        eprintln!("skipped frontends oci-runtime and containerd: they need root");
    }
    if root && containerd {
        frontends.push("containerd");
    } else if root {
        eprintln!("skipped frontend containerd: /usr/bin/containerd missing (scripts/setup.sh installs it)");
    }
    let engines = compiled_in_engines(home.path());
    assert!(engines.contains(&"wasmtime".to_string()), "{engines:?}");
    let reports = matrix["reports"].as_array().unwrap();
    for engine in &engines {
        for frontend in &frontends {
            let report = reports
                .iter()
                .find(|r| r["engine"] == engine.as_str() && r["frontend"] == *frontend)
                .unwrap_or_else(|| panic!("no report for {engine} via {frontend}:\n{stdout}"));
            assert_eq!(report["failed"], 0, "{engine} via {frontend}");
            assert!(
                report["passed"].as_u64().unwrap() >= 71,
                "{engine} via {frontend}: too few cases ran"
            );
        }
    }
    let table = fs::read_to_string(markdown).unwrap();
    assert!(table.contains("| wasmtime |"), "{table}");
}

/// wasi-testsuite's own executor, driving `wasmbay run` through the project's adapter, reaches
/// the same verdict as wasmbay's runner on every WASI 0.3 case.
#[test]
fn the_suites_own_executor_agrees_with_the_runner() {
    let home = tempfile::tempdir().unwrap();
    let shared = common::shared_testsuite();
    let suite = shared.join("rust/testsuite/wasm32-wasip3");
    let runner = shared.join("../runner");
    let ours = home.path().join("ours.json");
    let output = wasmbay(home.path())
        .current_dir(repo_root())
        .args([
            "conformance",
            "--engine",
            "wasmtime",
            "--frontend",
            "direct",
            "--json",
        ])
        .arg(&ours)
        .arg(&suite)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let theirs = home.path().join("theirs.json");
    let executor = std::process::Command::new("python3")
        .arg(runner.join("run-suites"))
        .arg("--runtime-adapter")
        .arg(repo_root().join("conformance/adapters/wasmbay.py"))
        // Not the suite's runner/expectations/wasmtime/linux.toml: it lists http-service-uri,
        // which fails under `wasmtime serve` (no scheme or authority on the incoming request)
        // and passes under wasmbay, which sets both; the executor counts that pass against the
        // run. wasmtime-48.toml lists the upstream failures of the release wasmbay links.
        .arg("--expectations")
        .arg(repo_root().join("conformance/adapters/wasmtime-48.toml"))
        .arg("--json-output-location")
        .arg(&theirs)
        .arg(&suite)
        .env("WASMBAY", env!("CARGO_BIN_EXE_wasmbay"))
        .env("WASMBAY_CACHE_DIR", home.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        executor.status.success(),
        "the suite's executor failed:\n{}{}",
        String::from_utf8_lossy(&executor.stdout),
        String::from_utf8_lossy(&executor.stderr)
    );
    let read = |path: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    };
    let ours = read(&ours);
    let theirs = read(&theirs);
    let mut verdicts = std::collections::BTreeMap::new();
    for result in ours["results"].as_array().unwrap() {
        let name = result["id"].as_str().unwrap().rsplit('/').next().unwrap();
        verdicts.insert(
            name.to_string(),
            (
                result["status"].as_str().unwrap().to_string(),
                String::new(),
            ),
        );
    }
    let tests = theirs["results"][0]["tests"].as_array().unwrap();
    assert_eq!(tests.len(), verdicts.len(), "both ran the whole suite");
    for test in tests {
        let name = test["name"].as_str().unwrap();
        let entry = verdicts
            .get_mut(name)
            .unwrap_or_else(|| panic!("{name}: not run by wasmbay's runner"));
        entry.1 = test["outcome"].as_str().unwrap().to_string();
    }
    let disagreements: Vec<_> = verdicts
        .iter()
        .filter(|(_, (ours, theirs))| ours != theirs)
        .collect();
    assert!(
        disagreements.is_empty(),
        "ours vs the suite's executor: {disagreements:?}"
    );
    assert!(
        verdicts.values().filter(|(v, _)| v == "pass").count() >= 35,
        "{verdicts:?}"
    );
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

#[test]
fn matrix_runs_only_the_frontends_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    fs::create_dir(&cases).unwrap();
    fs::write(
        cases.join("exit3.wat"),
        r#"(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i32.const 3))))"#,
    )
    .unwrap();
    fs::write(cases.join("exit3.json"), r#"{"exit_code": 3}"#).unwrap();
    let json = dir.path().join("matrix.json");
    let output = wasmbay(dir.path())
        .args(["conformance", "--matrix", "--frontends", "direct", "--json"])
        .arg(&json)
        .arg(&cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for other in ["oci-runtime", "containerd"] {
        assert!(
            stdout.contains(&format!("frontend {other}: not run: not among --frontends")),
            "{stdout}"
        );
    }
    let matrix: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(json).unwrap()).unwrap();
    let frontends: Vec<&str> = matrix["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["frontend"].as_str().unwrap())
        .collect();
    assert!(
        !frontends.is_empty() && frontends.iter().all(|f| *f == "direct"),
        "{frontends:?}"
    );

    let output = wasmbay(dir.path())
        .args(["conformance", "--matrix", "--frontends", "direct,bogus"])
        .arg(&cases)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unknown frontend `bogus`"), "{stderr}");
}
