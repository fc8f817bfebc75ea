//! Malformed input to `wasmbay run`: one line on stderr naming the cause, a distinct exit code.
//! And what `wasmbay --version` says of the build.

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::wasmbay;

#[test]
fn each_kind_of_bad_input_has_its_own_code_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("truncated.wasm"), b"\0asm\x01\0\0\0\x01\x05").unwrap();
    fs::write(d.join("magic.wasm"), b"\x7fWASM not really").unwrap();
    fs::write(d.join("nostart.wat"), "(module (func (export \"other\")))").unwrap();
    fs::write(d.join("funcs.wat"), "(module (func (export \"_start\")))").unwrap();

    let cases = [
        ("truncated.wasm", 245, "invalid module"),
        ("magic.wasm", 246, "not a wasm module"),
        ("nostart.wat", 244, "no exported function `_start`"),
        ("missing.wasm", 247, "cannot read module"),
        ("funcs.wat#nope", 243, "no exported function `nope`"),
    ];
    let mut codes = BTreeSet::new();
    for (file, code, cause) in cases {
        let output = wasmbay(d)
            .current_dir(d)
            .args(["run", file])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{file}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{file}: {stderr}");
        let file_name = file.split('#').next().unwrap();
        assert!(
            stderr.contains(cause) && stderr.contains(file_name),
            "{file}: {stderr}"
        );
        codes.insert(code);
    }
    assert_eq!(codes.len(), cases.len());
}

/// A component with nothing to run is bad input like a module without `_start`: 244, one line
/// naming the file and what the component exports instead.
#[test]
fn a_component_that_is_no_command_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("neither.wat"), "(component)").unwrap();
    let output = wasmbay(dir.path())
        .current_dir(dir.path())
        .args(["run", "neither.wat"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(244), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("neither.wat")
            && stderr.contains("not a wasi:cli command")
            && stderr.contains("exports neither"),
        "{stderr}"
    );
}

#[test]
fn elf_is_reported_as_not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let output = wasmbay(dir.path())
        .args(["run", "/bin/sh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(246));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ELF"));
}

#[test]
fn unknown_engine_is_an_error_not_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("m.wat"),
        "(module (func (export \"_start\")))",
    )
    .unwrap();
    // Which engines are missing depends on the features this binary was built with.
    let listing = wasmbay(dir.path()).arg("engines").output().unwrap();
    let missing = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, state)| *state != "compiled in")
        .map(|(name, _)| name.to_string());
    let mut cases = vec![("nope".to_string(), "unknown engine `nope`")];
    match missing {
        Some(engine) => cases.push((engine, "not compiled into this binary")),
        None => eprintln!("skipped: every engine is compiled in, none to ask for missing"),
    }
    for (engine, message) in cases {
        let output = wasmbay(dir.path())
            .args(["run", "--engine", &engine])
            .arg(dir.path().join("m.wat"))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{engine}: {stderr}");
    }
}

/// `--version` names each engine built in with its release, as bug reports need.
#[test]
fn version_names_the_engines_built_in() {
    let dir = tempfile::tempdir().unwrap();
    let output = wasmbay_testkit::run_with_timeout(
        wasmbay(dir.path()).arg("--version"),
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!(
        "wasmbay {}\n",
        wasmbay_engines::version_line(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(stdout, expected);
    for name in wasmbay_engines::compiled_in() {
        assert!(
            stdout.contains(&format!(" {name} ")),
            "{name} missing: {stdout}"
        );
    }
}
