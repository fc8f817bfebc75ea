//! The Debian packages (scripts/deb.sh, which builds them and fails on a lintian error) on a
//! clean system: `dpkg -i` of both, a wasm container run by a containerd that finds the
//! packaged shim on its PATH from an image the packaged CLI built, then `dpkg -r`, after which
//! no file of either package is left. It changes the system, so it runs only in the throw-away
//! guests (`WASMBAY_DEB_TEST=system` and the packages in `WASMBAY_DEB_DIR`, set by
//! scripts/guest-suite.sh) and is skipped elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use wasmbay_testkit::{require_root, run_with_timeout, PrivateContainerd};

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from a packaged shim\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 27))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn run(program: &str, args: &[&str]) -> Output {
    run_with_timeout(Command::new(program).args(args), Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The files (not directories) `dpkg -L` lists for `package`.
fn files_of(package: &str) -> Vec<PathBuf> {
    ok("dpkg", &["-L", package])
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_file() || p.is_symlink())
        .collect()
}

#[test]
fn the_packages_install_run_a_wasm_container_and_remove_every_file() {
    if std::env::var("WASMBAY_DEB_TEST").as_deref() != Ok("system") {
        eprintln!(
            "skipped: installs packages onto the system; runs in the guests \
             (scripts/guest-suite.sh sets WASMBAY_DEB_TEST=system)"
        );
        return;
    }
    if !require_root() {
        return;
    }
    let dir = PathBuf::from(std::env::var("WASMBAY_DEB_DIR").expect("WASMBAY_DEB_DIR"));
    let debs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(debs.len(), 2, "{debs:?}");
    let mut install = vec!["-i"];
    install.extend(debs.iter().map(String::as_str));
    ok("dpkg", &install);
    let installed: Vec<PathBuf> = ["wasmbay", "wasmbay-runtime"]
        .iter()
        .flat_map(|p| files_of(p))
        .collect();
    for expected in [
        "/usr/bin/wasmbay",
        "/usr/bin/wasmbay-runtime",
        "/usr/bin/containerd-shim-wasmbay-wasmtime-v1",
        "/usr/share/man/man1/wasmbay.1.gz",
        "/usr/share/man/man1/wasmbay-node-install.1.gz",
        "/usr/share/man/man1/wasmbay-runtime.1.gz",
        "/usr/share/bash-completion/completions/wasmbay",
        "/usr/share/doc/wasmbay/copyright",
    ] {
        assert!(
            installed.iter().any(|p| p == Path::new(expected)),
            "{expected} not installed: {installed:?}"
        );
    }
    let version = ok("/usr/bin/wasmbay", &["--version"]);
    assert!(version.contains("engines: wasmtime"), "{version}");

    // The packaged CLI builds the image; a containerd with the default PATH finds the
    // packaged shim by its runtime type.
    let work = tempfile::tempdir().unwrap();
    let module = work.path().join("hello.wat");
    std::fs::write(&module, HELLO).unwrap();
    let archive = work.path().join("hello.tar");
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    ok(
        "/usr/bin/wasmbay",
        &[
            "image",
            "build",
            module.to_str().unwrap(),
            "--name",
            "hello:packaged",
            "--platform",
            &format!("linux/{arch}"),
            "-o",
            archive.to_str().unwrap(),
        ],
    );
    let cd = PrivateContainerd::start().unwrap();
    cd.import(&archive, &[]).unwrap();
    let ran = cd
        .run_ok(
            cd.ctr_run()
                .args(["--rm", "--runtime", "io.containerd.wasmbay-wasmtime.v1"])
                .args(["docker.io/library/hello:packaged", "packaged"]),
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()));
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "hello from a packaged shim\n"
    );
    cd.stop();

    ok("dpkg", &["-r", "wasmbay", "wasmbay-runtime"]);
    let left: Vec<&PathBuf> = installed
        .iter()
        .filter(|p| p.exists() || p.is_symlink())
        .collect();
    assert!(left.is_empty(), "left after dpkg -r: {left:?}");
    for dir in ["/usr/share/doc/wasmbay", "/usr/share/doc/wasmbay-runtime"] {
        assert!(!Path::new(dir).exists(), "{dir} left after dpkg -r");
    }
}
