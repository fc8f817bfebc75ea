//! containerd driving `wasmbay-runtime` through its runc shim (`ctr run --runc-binary`), on a
//! private containerd with images built by `wasmbay-oci-image`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmbay_oci_image::{ExtraFile, ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::{require_root, ContainerdConfig, PrivateContainerd};

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasm\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

const SPIN: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#;

/// Bounded waits, stretched where guests run emulated ([`wasmbay_testkit::scaled`]).
static TIMEOUT: std::sync::LazyLock<Duration> =
    std::sync::LazyLock::new(|| wasmbay_testkit::scaled(Duration::from_secs(60)));

fn runtime_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wasmbay-runtime"))
}

fn build(dir: &Path, name: &str, spec: ImageSpec) -> PathBuf {
    let image = spec.build().expect("build image");
    let path = dir.join(format!("{name}.tar"));
    image.write_to(&path).expect("write image");
    path
}

fn wasm_image(dir: &Path, name: &str, wat: &str) -> (PathBuf, String) {
    let reference = ImageRef::parse(&format!("{name}:test")).unwrap();
    let mut spec = ImageSpec::new(reference.clone(), "app.wat", wat.as_bytes().to_vec());
    spec.layout = Layout::App;
    spec.platform = Platform::parse("linux/amd64").unwrap();
    (build(dir, name, spec), reference.to_string())
}

fn busybox_image(dir: &Path, args: &[&str]) -> Option<(PathBuf, String)> {
    if !Path::new("/bin/busybox").is_file() {
        eprintln!("skipped: /bin/busybox missing (Debian package busybox-static)");
        return None;
    }
    let reference = ImageRef::parse("busybox-native:test").unwrap();
    let mut spec = ImageSpec::new(
        reference.clone(),
        "placeholder.txt",
        b"native image\n".to_vec(),
    );
    spec.platform = Platform::parse("linux/amd64").unwrap();
    spec.extra_files =
        vec![ExtraFile::from_host(Path::new("/bin/busybox"), "/bin/busybox").unwrap()];
    spec.entrypoint = Some(args.iter().map(|a| a.to_string()).collect());
    spec.env = vec!["PATH=/bin".to_string()];
    Some((build(dir, "busybox", spec), reference.to_string()))
}

fn containerd(cache: &Path) -> PrivateContainerd {
    PrivateContainerd::start_with(
        ContainerdConfig::default().with_env("WASMBAY_CACHE_DIR", cache.to_str().unwrap()),
    )
    .expect("start a private containerd")
}

#[test]
fn ctr_runs_wasm_and_busybox_through_wasmbay_runtime() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((busybox_tar, busybox_ref)) =
        busybox_image(dir.path(), &["/bin/busybox", "echo", "hello from busybox"])
    else {
        return;
    };
    let cd = containerd(&dir.path().join("cache"));
    let (wasm_tar, wasm_ref) = wasm_image(dir.path(), "hello-wasm", HELLO);
    cd.import(&wasm_tar, &[]).unwrap();
    cd.import(&busybox_tar, &[]).unwrap();

    for (image, id, expected) in [
        (&wasm_ref, "wasm-hello", "hello from wasm\n"),
        (&busybox_ref, "native-hello", "hello from busybox\n"),
    ] {
        let mut run = cd.ctr_run();
        run.arg("--rm")
            .arg("--runc-binary")
            .arg(runtime_binary())
            .arg(image)
            .arg(id);
        let out = cd.run_ok(&mut run, *TIMEOUT).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
    // Nothing is left: --rm removed both containers.
    let listed = cd
        .run_ok(cd.ctr().args(["containers", "ls", "-q"]), *TIMEOUT)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "");
}

#[test]
fn wasm_and_busybox_run_side_by_side_and_are_killed() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((busybox_tar, busybox_ref)) =
        busybox_image(dir.path(), &["/bin/busybox", "sleep", "300"])
    else {
        return;
    };
    let cd = containerd(&dir.path().join("cache"));
    let (wasm_tar, wasm_ref) = wasm_image(dir.path(), "spin-wasm", SPIN);
    cd.import(&wasm_tar, &[]).unwrap();
    cd.import(&busybox_tar, &[]).unwrap();
    for (image, id) in [(&wasm_ref, "wasm-spin"), (&busybox_ref, "native-sleep")] {
        let mut run = cd.ctr_run();
        run.arg("-d")
            .arg("--runc-binary")
            .arg(runtime_binary())
            .arg(image)
            .arg(id);
        cd.run_ok(&mut run, *TIMEOUT).unwrap();
    }
    let tasks = cd.run_ok(cd.ctr().args(["tasks", "ls"]), *TIMEOUT).unwrap();
    let tasks = String::from_utf8_lossy(&tasks.stdout).into_owned();
    for id in ["wasm-spin", "native-sleep"] {
        let line = tasks
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} missing:\n{tasks}"));
        assert!(line.contains("RUNNING"), "{line}");
    }
    for id in ["wasm-spin", "native-sleep"] {
        cd.run_ok(
            cd.ctr().args(["tasks", "kill", "--signal", "SIGTERM", id]),
            *TIMEOUT,
        )
        .unwrap();
    }
    // SIGTERM ends the wasm task (143); busybox sleep as PID 1 ignores it, as on runc.
    let mut wasm_stopped = false;
    for _ in 0..200 {
        let tasks = cd.run_ok(cd.ctr().args(["tasks", "ls"]), *TIMEOUT).unwrap();
        let tasks = String::from_utf8_lossy(&tasks.stdout).into_owned();
        if tasks
            .lines()
            .any(|l| l.starts_with("wasm-spin") && l.contains("STOPPED"))
        {
            wasm_stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(wasm_stopped, "the wasm task ignored SIGTERM");
    cd.run_ok(
        cd.ctr()
            .args(["tasks", "kill", "--signal", "SIGKILL", "native-sleep"]),
        *TIMEOUT,
    )
    .unwrap();
    for id in ["wasm-spin", "native-sleep"] {
        let mut deleted = false;
        for _ in 0..200 {
            if cd
                .ctr()
                .args(["tasks", "delete", id])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                deleted = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(deleted, "task {id} could not be deleted");
        cd.run_ok(cd.ctr().args(["containers", "delete", id]), *TIMEOUT)
            .unwrap();
    }
}
