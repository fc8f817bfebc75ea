//! `wasmbay node install` on a whole node: the system's own containerd (Debian's package,
//! under systemd, its configuration in /etc/containerd), restarted by the installer through
//! systemctl, then a CRI pod with `runtimeClassName`'s handler `wasmbay-wasmtime`, then
//! `wasmbay node uninstall`. It changes the system, so it runs only in the throw-away guests
//! (`WASMBAY_NODE_TEST=system`, set by scripts/guest-suite.sh) and is skipped elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{shim_dir, HANDLER};
use wasmbay_oci_image::{ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::cri::{api, CriClient};
use wasmbay_testkit::{require_root, run_with_timeout, scaled};

const SOCKET: &str = "/run/containerd/containerd.sock";
const CONFIG: &str = "/etc/containerd/config.toml";

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from an installed node\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 28))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Runs `program args` to its end within `limit` (testkit's bounded run), panicking with the
/// command on a hang or a start failure.
fn run(program: &str, args: &[&str], limit: Duration) -> Output {
    run_with_timeout(Command::new(program).args(args), limit)
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stops the system's containerd when the test ends, however it ends, so later tests in the
/// guest find the machine as it booted.
struct StopContainerd;

impl Drop for StopContainerd {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["stop", "containerd.service"])
            .status();
    }
}

/// Builds an app-layout image `reference` holding `file` and imports it into the system
/// containerd's CRI namespace.
fn import(dir: &Path, reference: &str, file_name: &str, contents: Vec<u8>, entrypoint: &[&str]) {
    let image = ImageRef::parse(reference).unwrap();
    let mut spec = ImageSpec::new(image, file_name, contents);
    spec.layout = Layout::App;
    spec.platform = Platform::parse(&format!("linux/{}", common::oci_arch())).unwrap();
    spec.entrypoint = Some(entrypoint.iter().map(|s| s.to_string()).collect());
    let archive = dir.join(format!("{file_name}.tar"));
    spec.build().unwrap().write_to(&archive).unwrap();
    let out = run(
        "ctr",
        &[
            "-a",
            SOCKET,
            "-n",
            "k8s.io",
            "images",
            "import",
            archive.to_str().unwrap(),
        ],
        scaled(Duration::from_secs(60)),
    );
    assert!(
        out.status.success(),
        "import {reference}: {}",
        text(&out.stderr)
    );
}

/// One CRI runtime-service call, named by its method in errors.
macro_rules! cri {
    ($client:expr, $method:ident, $request:expr) => {{
        let request = $request;
        $client.call(stringify!($method), move |mut c| async move {
            c.$method(request).await
        })
    }};
}

fn wasmbay(args: &[&str]) -> Output {
    let binary: PathBuf = shim_dir().join("wasmbay");
    assert!(binary.is_file(), "{} not built", binary.display());
    let mut all = vec!["node"];
    all.extend_from_slice(args);
    run(
        binary.to_str().unwrap(),
        &all,
        scaled(Duration::from_secs(300)),
    )
}

#[test]
fn the_installer_configures_the_systems_containerd_and_a_pod_runs_on_the_handler() {
    if std::env::var("WASMBAY_NODE_TEST").as_deref() != Ok("system") {
        eprintln!(
            "skipped: changes the system's containerd; runs in the guests \
             (scripts/guest-suite.sh sets WASMBAY_NODE_TEST=system)"
        );
        return;
    }
    if !require_root() {
        return;
    }
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    // The guests mask the system's containerd (the other tests start private ones).
    let masked = Path::new("/etc/systemd/system/containerd.service");
    if std::fs::read_link(masked).is_ok_and(|t| t == Path::new("/dev/null")) {
        std::fs::remove_file(masked).unwrap();
        run(
            "systemctl",
            &["daemon-reload"],
            scaled(Duration::from_secs(60)),
        );
    }
    let _stop = StopContainerd;
    let started = run(
        "systemctl",
        &["start", "containerd.service"],
        scaled(Duration::from_secs(120)),
    );
    assert!(started.status.success(), "{}", text(&started.stderr));
    let original = std::fs::read(CONFIG).ok();

    let install = wasmbay(&[
        "install",
        "--engine",
        "wasmtime",
        "--engine",
        "wasmer",
        "--shim",
        shim_dir()
            .join("containerd-shim-wasmbay-wasmtime-v1")
            .to_str()
            .unwrap(),
    ]);
    let said = text(&install.stdout);
    assert!(install.status.success(), "{said}{}", text(&install.stderr));
    assert!(said.contains("node: containerd"), "{said}");
    assert!(
        said.contains("containerd restarted and serves wasmbay-wasmtime, wasmbay-wasmer"),
        "{said}"
    );
    let installed = std::fs::read(CONFIG).unwrap();
    let again = wasmbay(&["install", "--engine", "wasmtime", "--engine", "wasmer"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("unchanged; containerd not restarted"));
    assert_eq!(
        std::fs::read(CONFIG).unwrap(),
        installed,
        "a second install changes no byte"
    );
    let status = wasmbay(&["status"]);
    assert!(status.status.success(), "{}", text(&status.stdout));

    // A pod on the handler, with the images the node would have pulled.
    let cri = CriClient::connect(Path::new(SOCKET)).unwrap();
    let info = cri!(cri, status, api::StatusRequest { verbose: true }).unwrap();
    let config: serde_json::Value = serde_json::from_str(&info.info["config"]).unwrap();
    let sandbox_image = config["sandboxImage"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    import(
        dir.path(),
        &sandbox_image,
        "busybox",
        busybox,
        &["/busybox", "sleep", "1000000"],
    );
    import(
        dir.path(),
        "hello-node:test",
        "hello.wat",
        HELLO.into(),
        &["/hello.wat"],
    );
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "installed".into(),
            uid: "installed-uid".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: logs.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = cri!(
        cri,
        run_pod_sandbox,
        api::RunPodSandboxRequest {
            config: Some(sandbox.clone()),
            runtime_handler: HANDLER.into(),
        }
    )
    .unwrap()
    .pod_sandbox_id;
    let app = cri!(
        cri,
        create_container,
        api::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: ImageRef::parse("hello-node:test").unwrap().to_string(),
                    ..Default::default()
                }),
                log_path: "app.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox.clone()),
        }
    )
    .unwrap()
    .container_id;
    cri!(
        cri,
        start_container,
        api::StartContainerRequest {
            container_id: app.clone(),
        }
    )
    .unwrap();
    let deadline = Instant::now() + scaled(Duration::from_secs(60));
    let status = loop {
        let status = cri!(
            cri,
            container_status,
            api::ContainerStatusRequest {
                container_id: app.clone(),
                verbose: false,
            }
        )
        .unwrap()
        .status
        .unwrap();
        if status.state == api::ContainerState::ContainerExited as i32 {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the wasm container did not exit: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.exit_code, 0, "{status:?}");
    let log = std::fs::read_to_string(logs.join("app.log")).unwrap();
    assert!(log.contains("hello from an installed node"), "{log}");
    cri!(
        cri,
        stop_pod_sandbox,
        api::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }
    )
    .unwrap();
    cri!(
        cri,
        remove_pod_sandbox,
        api::RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        }
    )
    .unwrap();

    let uninstall = wasmbay(&["uninstall"]);
    assert!(
        uninstall.status.success(),
        "{}{}",
        text(&uninstall.stdout),
        text(&uninstall.stderr)
    );
    assert_eq!(
        std::fs::read(CONFIG).ok(),
        original,
        "uninstall restores every byte"
    );
    assert!(!Path::new("/usr/local/bin/containerd-shim-wasmbay-wasmtime-v1").exists());
    assert!(!Path::new("/usr/local/bin/containerd-shim-wasmbay-wasmer-v1").exists());
    // containerd was restarted: a new connection.
    let cri = CriClient::connect(Path::new(SOCKET)).unwrap();
    let after = cri!(cri, status, api::StatusRequest { verbose: true }).unwrap();
    assert!(
        !after.info["config"].contains("wasmbay-wasmtime"),
        "the handler is gone"
    );
}
