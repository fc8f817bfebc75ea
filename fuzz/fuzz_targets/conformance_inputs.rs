//! (e) The conformance corpus inputs: a case's JSON spec (`<case>.json`, loaded next to its
//! module) and an engine's expected-failures TOML.
//!
//! Input: the first byte picks the document; the rest is its text.
#![no_main]

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmbay_conformance::{Case, Expectations};

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("scratch directory");
        // A fixture next to the case, and a directory outside it that a `root` must not name.
        fs::create_dir_all(dir.path().join("suite/fixture.dir")).expect("fixture");
        fs::create_dir_all(dir.path().join("outside.dir")).expect("outside");
        fs::write(dir.path().join("suite/case.wat"), "(module)").expect("module");
        dir
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    if which % 2 == 0 {
        let suite = dir.join("suite");
        fs::write(suite.join("case.json"), text).expect("write case");
        if let Ok(case) = Case::load("suite", &suite.join("case.wat")) {
            assert_eq!(case.id, "suite/case");
            let _ = case.timeout_ms();
            // The `root` fixture is a directory inside the suite, never above it.
            if let Some(root) = &case.root {
                assert!(root.is_dir());
                let real = root.canonicalize().expect("fixture exists");
                let suite = suite.canonicalize().expect("suite exists");
                assert!(
                    real.starts_with(&suite) && real != suite,
                    "root {:?} resolves to {real:?}, outside {suite:?}",
                    case.spec.root
                );
            }
        }
    } else {
        fs::write(dir.join("fuzz.toml"), text).expect("write expectations");
        let _ = Expectations::load(dir, "fuzz");
    }
});
