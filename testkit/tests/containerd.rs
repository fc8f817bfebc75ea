//! A private containerd imports images built by `wasmbay-oci-image` and runs a native one with
//! runc; afterwards nothing of it is left: no process, no mount, no directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmbay_oci_image::{ExtraFile, ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::{
    mounts_under, processes_mentioning, processes_rooted_under, require_command, require_root,
    shim_socket_path, ContainerdConfig, PrivateContainerd, TestkitError,
};

const WAT: &[u8] = b"(module (func (export \"_start\")))\n";
const BUSYBOX: &str = "/bin/busybox";

fn containerd_available() -> bool {
    require_root() && require_command("/usr/bin/containerd") && require_command("/usr/bin/ctr")
}

/// runc, and a static busybox to put in native images (Debian's `busybox-static`).
fn native_images_available() -> bool {
    if !require_command("runc") || !require_command(BUSYBOX) {
        return false;
    }
    let head = std::fs::read(BUSYBOX).unwrap_or_default();
    let head = &head[..head.len().min(4096)];
    if head.windows(3).any(|w| w == b"ld-") {
        eprintln!("skipped: {BUSYBOX} is dynamically linked; install busybox-static");
        return false;
    }
    true
}

/// An image of the host platform running `/bin/busybox ARGS…`.
fn busybox_image(reference: &str, args: &[&str]) -> ImageSpec {
    let mut spec = ImageSpec::new(
        ImageRef::parse(reference).expect("ref"),
        "module.wat",
        WAT.to_vec(),
    );
    spec.platform = Platform::parse("linux/amd64").expect("platform");
    spec.extra_files
        .push(ExtraFile::from_host(Path::new(BUSYBOX), "/bin/busybox").expect("busybox"));
    let mut entrypoint = vec!["/bin/busybox".to_string()];
    entrypoint.extend(args.iter().map(|a| a.to_string()));
    spec.entrypoint = Some(entrypoint);
    spec
}

fn write_image(dir: &Path, file: &str, spec: &ImageSpec) -> PathBuf {
    let image = spec.build().expect("image builds");
    let path = dir.join(file);
    image.write_to(&path).expect("image written");
    path
}

fn assert_gone(dir: &Path, socket: &Path) {
    let socket = socket.to_string_lossy();
    assert!(
        processes_mentioning(&socket).is_empty(),
        "processes still serve {socket}"
    );
    assert!(
        mounts_under(dir).is_empty(),
        "still mounted: {:?}",
        mounts_under(dir)
    );
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn imports_and_runs_images_then_leaves_nothing() {
    if !containerd_available() || !native_images_available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let containerd = PrivateContainerd::start().expect("containerd starts");
    let dir = containerd.dir().to_path_buf();
    let socket = containerd.address().to_path_buf();
    let pid = containerd.pid().expect("running");

    // A native image: busybox for the host platform, run by runc.
    let native = busybox_image("busybox-echo:v1", &["echo", "hello"]);
    let archive = write_image(work.path(), "busybox.tar", &native);
    containerd
        .import(&archive, &[])
        .expect("import native image");
    let names = containerd.image_names().expect("images ls");
    assert!(
        names.contains(&"docker.io/library/busybox-echo:v1".to_string()),
        "{names:?}"
    );
    let mut run = containerd.ctr_run();
    run.args(["--rm", "docker.io/library/busybox-echo:v1", "echo-1"]);
    let output = containerd
        .run_ok(&mut run, Duration::from_secs(120))
        .expect("ctr run");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello\n");

    // A wasm app image (wasip1/wasm): refused for the host platform, imported with
    // --all-platforms.
    let mut wasm = ImageSpec::new(
        ImageRef::parse("hello-wasm:latest").expect("ref"),
        "hello.wat",
        WAT.to_vec(),
    );
    let archive = write_image(work.path(), "hello.tar", &wasm);
    let refused = containerd.import(&archive, &[]);
    assert!(refused.is_err(), "host-platform import of wasip1/wasm");
    containerd
        .import(&archive, &["--all-platforms"])
        .expect("import wasm image");

    // Naming the platform works as well.
    wasm.reference = ImageRef::parse("hello-wasm:platform").expect("ref");
    let archive = write_image(work.path(), "platform.tar", &wasm);
    containerd
        .import(&archive, &["--platform", "wasip1/wasm"])
        .expect("import wasm image with --platform");

    // The artifact layout cannot be unpacked: --no-unpack.
    wasm.reference = ImageRef::parse("hello-wasm:artifact").expect("ref");
    wasm.layout = Layout::Artifact;
    let archive = write_image(work.path(), "artifact.tar", &wasm);
    containerd
        .import(&archive, &["--all-platforms", "--no-unpack"])
        .expect("import artifact");

    let names = containerd.image_names().expect("images ls");
    for expected in [
        "docker.io/library/hello-wasm:latest",
        "docker.io/library/hello-wasm:artifact",
        "docker.io/library/hello-wasm:platform",
    ] {
        assert!(names.contains(&expected.to_string()), "{names:?}");
    }
    let mut ls = containerd.ctr();
    ls.args(["images", "ls"]);
    let listing = containerd
        .run_ok(&mut ls, Duration::from_secs(30))
        .expect("images ls");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.contains("hello-wasm:latest") && l.contains("wasip1/wasm")),
        "{listing}"
    );

    drop(containerd);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "containerd {pid} still running"
    );
    assert_gone(&dir, &socket);
}

#[test]
fn teardown_after_a_running_task() {
    if !containerd_available() || !native_images_available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let containerd = PrivateContainerd::start().expect("containerd starts");
    let dir = containerd.dir().to_path_buf();
    let socket = containerd.address().to_path_buf();

    let spec = busybox_image("sleeper:1", &["sleep", "600"]);
    let archive = write_image(work.path(), "sleeper.tar", &spec);
    containerd.import(&archive, &[]).expect("import");
    let mut run = containerd.ctr_run();
    run.args(["--detach", "docker.io/library/sleeper:1", "sleeper"]);
    containerd
        .run_ok(&mut run, Duration::from_secs(120))
        .expect("ctr run --detach");
    let mut tasks = containerd.ctr();
    tasks.args(["tasks", "ls"]);
    let listing = containerd
        .run_ok(&mut tasks, Duration::from_secs(30))
        .expect("tasks ls");
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("RUNNING"),
        "{}",
        String::from_utf8_lossy(&listing.stdout)
    );
    assert!(
        !mounts_under(&dir).is_empty(),
        "a running task has its rootfs mounted"
    );

    // As if the test had failed here: the drop must clean up the running task.
    drop(containerd);
    assert_gone(&dir, &socket);
}

#[test]
fn teardown_after_containerd_died() {
    if !containerd_available() || !native_images_available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let containerd = PrivateContainerd::start().expect("containerd starts");
    let dir = containerd.dir().to_path_buf();
    let socket = containerd.address().to_path_buf();
    let archive = write_image(
        work.path(),
        "sleeper.tar",
        &busybox_image("sleeper:2", &["sleep", "600"]),
    );
    containerd.import(&archive, &[]).expect("import");
    let mut run = containerd.ctr_run();
    run.args(["--detach", "docker.io/library/sleeper:2", "orphan"]);
    containerd
        .run_ok(&mut run, Duration::from_secs(120))
        .expect("ctr run --detach");
    assert!(!processes_rooted_under(&dir).is_empty(), "sleeper runs");

    // containerd dies: the teardown cannot ask it to kill tasks, so the shim and the container
    // are orphans it must find by itself.
    let pid = libc::pid_t::try_from(containerd.pid().expect("running")).expect("pid");
    // SAFETY: kill(2) on the test's own containerd child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let shim_socket = shim_socket_path(&socket, containerd.namespace(), "orphan");
    assert!(shim_socket.exists(), "{}", shim_socket.display());
    drop(containerd);
    assert!(!shim_socket.exists(), "{} left", shim_socket.display());
    assert!(
        processes_rooted_under(&dir).is_empty(),
        "container process left"
    );
    assert_gone(&dir, &socket);
}

#[test]
fn cri_can_be_switched_on() {
    if !containerd_available() {
        return;
    }
    let containerd =
        PrivateContainerd::start_with(ContainerdConfig::default().with_cri(true)).expect("start");
    let mut plugins = containerd.ctr();
    plugins.args(["plugins", "ls"]);
    let output = containerd
        .run_ok(&mut plugins, Duration::from_secs(30))
        .expect("plugins ls");
    let listing = String::from_utf8_lossy(&output.stdout);
    let cri = listing
        .lines()
        .find(|l| l.contains("io.containerd.grpc.v1") && l.contains(" cri "))
        .unwrap_or_else(|| panic!("no cri plugin listed:\n{listing}"));
    assert!(cri.trim_end().ends_with("ok"), "{cri}");
    drop(containerd);

    let containerd = PrivateContainerd::start().expect("start");
    let mut plugins = containerd.ctr();
    plugins.args(["plugins", "ls"]);
    let output = containerd
        .run_ok(&mut plugins, Duration::from_secs(30))
        .expect("plugins ls");
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(
        listing
            .lines()
            .filter(|l| l.contains(" cri "))
            .all(|l| !l.trim_end().ends_with("ok")),
        "{listing}"
    );
}

#[test]
fn start_failure_is_reported_and_cleaned_up() {
    if !containerd_available() {
        return;
    }
    let config = ContainerdConfig {
        containerd: PathBuf::from("/bin/false"),
        start_timeout: Duration::from_secs(5),
        ..ContainerdConfig::default()
    };
    match PrivateContainerd::start_with(config) {
        Err(TestkitError::Exited { log_path, .. }) => {
            let dir = log_path.parent().expect("log in a directory");
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
        Err(other) => panic!("expected an early exit, got: {other}"),
        Ok(_) => panic!("/bin/false answered as containerd"),
    }
}
