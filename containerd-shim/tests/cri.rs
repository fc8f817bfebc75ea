//! The path kubelet takes with `runtimeClassName: wasmtime`: containerd's CRI service runs a
//! pod whose sandbox, wasm container and Linux sidecar all go through the shim.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{containerd_config, EXEC_TARGET, HANDLER, HOG, RUNTIME, SPIN};
use wasmbay_oci_image::{ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::cri::{api, CriClient};
use wasmbay_testkit::{processes_mentioning, require_root, CriRuntime, PrivateContainerd};

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from a wasm pod\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 22))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// What a streaming exec gave: its stdout and stderr channels and its exit code.
#[derive(Debug, Default)]
struct Streamed {
    stdout: String,
    stderr: String,
    exit_code: Option<i32>,
}

/// kubectl's side of a streaming exec: the URL the CRI's `Exec` answered, over WebSocket
/// with Kubernetes' `v4.channel.k8s.io` framing (a first byte naming the channel: 0 stdin,
/// 1 stdout, 2 stderr, 3 the status, 4 terminal sizes). Sends `size` and then `stdin`, reads
/// until the server closes, every read bounded.
fn stream_exec(url: &str, size: Option<(u16, u16)>, stdin: &[u8]) -> Streamed {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let url = url.replacen("http://", "ws://", 1);
    let mut request = url
        .as_str()
        .into_client_request()
        .expect("a WebSocket request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let authority = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host:port")
        .to_string();
    let tcp = std::net::TcpStream::connect(&authority).expect("connect to the stream server");
    tcp.set_read_timeout(Some(*TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(*TIMEOUT)).unwrap();
    let (mut ws, _) = tungstenite::client(request, tcp).expect("WebSocket handshake");
    let frame = |channel: u8, data: &[u8]| {
        let mut bytes = vec![channel];
        bytes.extend_from_slice(data);
        Message::Binary(bytes.into())
    };
    if let Some((width, height)) = size {
        let resize = format!(r#"{{"Width":{width},"Height":{height}}}"#);
        ws.send(frame(4, resize.as_bytes())).expect("send a size");
    }
    if !stdin.is_empty() {
        ws.send(frame(0, stdin)).expect("send stdin");
    }
    let mut got = Streamed::default();
    let deadline = Instant::now() + *TIMEOUT;
    while Instant::now() < deadline {
        let data = match ws.read() {
            Ok(Message::Binary(data)) => data.to_vec(),
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(e) => panic!("streaming exec: {e} after {got:?}"),
        };
        let Some((&channel, data)) = data.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(data);
        match channel {
            1 => got.stdout.push_str(&text),
            2 => got.stderr.push_str(&text),
            3 if !data.is_empty() => got.exit_code = Some(exit_code_of(&text)),
            _ => {}
        }
    }
    got
}

/// The exit code in a v4 status message: 0 on success, else the `ExitCode` cause.
fn exit_code_of(status: &str) -> i32 {
    let status: serde_json::Value =
        serde_json::from_str(status).unwrap_or_else(|e| panic!("status {status:?}: {e}"));
    if status["status"] == "Success" {
        return 0;
    }
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|cause| cause["reason"] == "ExitCode")
        .and_then(|cause| cause["message"].as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("no exit code in {status}"))
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

/// Bounded waits, stretched where guests run emulated ([`wasmbay_testkit::scaled`]).
static TIMEOUT: std::sync::LazyLock<Duration> =
    std::sync::LazyLock::new(|| wasmbay_testkit::scaled(Duration::from_secs(30)));

/// Builds an app-layout image of `name` holding `file` at `/<file_name>` and imports it into
/// the CRI's namespace.
fn import(
    cd: &PrivateContainerd,
    dir: &Path,
    name: &str,
    file_name: &str,
    contents: Vec<u8>,
    entrypoint: &[&str],
) -> String {
    let reference = ImageRef::parse(&format!("{name}:test")).unwrap();
    let mut spec = ImageSpec::new(reference.clone(), file_name, contents);
    spec.layout = Layout::App;
    spec.platform = Platform::parse("linux/amd64").unwrap();
    spec.entrypoint = Some(entrypoint.iter().map(|s| s.to_string()).collect());
    let path = dir.join(format!("{name}.tar"));
    spec.build().unwrap().write_to(&path).unwrap();
    cd.import(&path, &[]).unwrap();
    reference.to_string()
}

fn wait_exited(cri: &CriClient, id: &str) -> api::ContainerStatus {
    let deadline = Instant::now() + *TIMEOUT;
    loop {
        let status = cri!(
            cri,
            container_status,
            api::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            }
        )
        .unwrap()
        .status
        .expect("status");
        if status.state == api::ContainerState::ContainerExited as i32 {
            return status;
        }
        assert!(Instant::now() < deadline, "{id} did not exit: {status:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_log(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + *TIMEOUT;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in {}: {log}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates container `name` of `image` in pod `pod` (made from `sandbox`) with `linux` (its
/// resources and security context), and starts it; returns its id. A refusal panics with
/// containerd's log.
fn create_and_start(
    cri: &CriClient,
    cd: &PrivateContainerd,
    pod: &str,
    sandbox: &api::PodSandboxConfig,
    name: &str,
    image: &str,
    linux: api::LinuxContainerConfig,
) -> String {
    let id = cri!(
        cri,
        create_container,
        api::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                log_path: format!("{name}.log"),
                linux: Some(linux),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox.clone()),
        }
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()))
    .container_id;
    cri!(
        cri,
        start_container,
        api::StartContainerRequest {
            container_id: id.clone(),
        }
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()));
    id
}

#[test]
fn a_pod_with_a_wasm_container_and_a_busybox_sidecar() {
    if !require_root() {
        return;
    }
    let busybox = match std::fs::read("/bin/busybox") {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!(
                "skipped: /bin/busybox unreadable ({e}); scripts/setup.sh installs busybox-static"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let cd = PrivateContainerd::start_with(
        cri_config(dir.path()).with_cri_runtime(CriRuntime::new(HANDLER, RUNTIME)),
    )
    .expect("start a private containerd with CRI");
    // The pod's pause container: built here, as there is no registry to pull one from.
    let pause = import(
        &cd,
        dir.path(),
        "pause",
        "busybox",
        busybox.clone(),
        &["/busybox", "sleep", "1000000"],
    );
    assert_eq!(pause, ImageRef::parse("pause:test").unwrap().to_string());
    let app = import(
        &cd,
        dir.path(),
        "app",
        "app.wat",
        HELLO.as_bytes().to_vec(),
        &["/app.wat"],
    );
    let sidecar = import(
        &cd,
        dir.path(),
        "sidecar",
        "busybox",
        busybox,
        &[
            "/busybox",
            "sh",
            "-c",
            "echo sidecar up; exec /busybox sleep 1000",
        ],
    );

    let cri = CriClient::connect(cd.address()).unwrap();
    let logs = dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    // Host network: the test machine has no CNI plugins, and the pod needs no network.
    let sandbox_config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "wasm-pod".into(),
            uid: "wasm-pod-uid".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        // A host-network pod shares the node's UTS namespace, where no runtime may set a
        // hostname (runc refuses as well), so kubelet leaves it empty.
        hostname: String::new(),
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
            config: Some(sandbox_config.clone()),
            runtime_handler: HANDLER.into(),
        }
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()))
    .pod_sandbox_id;

    let run = |name: &str, image: &str| {
        create_and_start(
            &cri,
            &cd,
            &pod,
            &sandbox_config,
            name,
            image,
            api::LinuxContainerConfig::default(),
        )
    };
    let waiter = import(
        &cd,
        dir.path(),
        "waiter",
        "app.wat",
        EXEC_TARGET.as_bytes().to_vec(),
        &["/app.wat#wait"],
    );
    let sidecar_id = run("sidecar", &sidecar);
    let app_id = run("app", &app);

    let status = wait_exited(&cri, &app_id);
    assert_eq!(status.exit_code, 0, "{status:?}");
    let app_log = wait_for_log(&logs.join("app.log"), "hello from a wasm pod");
    assert!(
        app_log.contains(" stdout F hello from a wasm pod"),
        "CRI log format: {app_log}"
    );
    wait_for_log(&logs.join("sidecar.log"), "sidecar up");

    // One shim serves the whole pod: sandbox, wasm container and sidecar.
    // Its zygote shares its command line.
    let shims: Vec<u32> = processes_mentioning(&pod)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() != wasmbay_runtime_bridge::zygote::ZYGOTE_NAME)
        })
        .collect();
    assert_eq!(shims.len(), 1, "shim processes for pod {pod}: {shims:?}");

    // Made before the execs below: on cgroup v1, libcontainer's cgroup mount reads the host's
    // /proc at the init's pid in the pod's shared pid namespace, which fails once execs have
    // pushed that pid past the host's low pids (docs/reliability/report.md).
    let waiter_id = run("waiter", &waiter);
    // kubectl exec into the Linux sidecar: ExecSync, its output and exit code.
    let exec = |cmd: &[&str]| {
        cri!(
            cri,
            exec_sync,
            api::ExecSyncRequest {
                container_id: sidecar_id.clone(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 20,
            }
        )
        .unwrap_or_else(|e| panic!("exec {cmd:?}: {e}\n{}", cd.log_tail()))
    };
    let echoed = exec(&["/busybox", "echo", "exec-ok"]);
    assert_eq!(
        (
            echoed.exit_code,
            String::from_utf8_lossy(&echoed.stdout).trim()
        ),
        (0, "exec-ok"),
        "{echoed:?}"
    );
    let failed = exec(&["/busybox", "sh", "-c", "echo to-stderr >&2; exit 3"]);
    assert_eq!(
        (
            failed.exit_code,
            String::from_utf8_lossy(&failed.stderr).trim()
        ),
        (3, "to-stderr"),
        "{failed:?}"
    );
    // The exec'd process shares the sidecar's pid namespace: it sees the sidecar's `sleep`.
    let ps = exec(&["/busybox", "ps"]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).contains("sleep 1000"),
        "{ps:?}"
    );

    // ExecSync into a running wasm container: another WebAssembly command of its rootfs.
    let into_wasm = cri!(
        cri,
        exec_sync,
        api::ExecSyncRequest {
            container_id: waiter_id.clone(),
            cmd: vec!["/app.wat".into()],
            timeout: 20,
        }
    )
    .unwrap_or_else(|e| panic!("exec into wasm: {e}\n{}", cd.log_tail()));
    assert_eq!(
        (
            into_wasm.exit_code,
            String::from_utf8_lossy(&into_wasm.stdout).as_ref()
        ),
        (5, "from exec\n"),
        "{into_wasm:?}"
    );

    // kubectl exec's streaming path: the CRI's Exec answers a URL of containerd's stream
    // server, which makes the exec through the shim.
    let url = |container_id: &str, cmd: &[&str], tty: bool| {
        cri!(
            cri,
            exec,
            api::ExecRequest {
                container_id: container_id.to_string(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                tty,
                stdin: tty,
                stdout: true,
                stderr: !tty,
            }
        )
        .unwrap_or_else(|e| panic!("exec {cmd:?}: {e}\n{}", cd.log_tail()))
        .url
    };
    let streamed = stream_exec(&url(&waiter_id, &["/app.wat"], false), None, b"");
    assert_eq!(
        (streamed.exit_code, streamed.stdout.as_str()),
        (Some(5), "from exec\n"),
        "{streamed:?}\n{}",
        cd.log_tail()
    );
    // `kubectl exec -it` into the sidecar: a shell on a terminal that the client sized. The
    // size comes after the start, so the shell looks a few times (bounded).
    let shell = stream_exec(
        &url(&sidecar_id, &["/busybox", "sh"], true),
        Some((100, 40)),
        b"for i in 1 2 3 4 5 6 7 8 9 10; do s=$(/busybox stty size); \
          [ \"$s\" = '40 100' ] && break; /busybox sleep 0.2; done; \
          echo \"size=$s tty=$(/busybox tty)\"; exit 7\n",
    );
    assert_eq!(shell.exit_code, Some(7), "{shell:?}\n{}", cd.log_tail());
    assert!(
        shell.stdout.contains("size=40 100 tty=/dev/pts/"),
        "{shell:?}"
    );

    cri!(
        cri,
        stop_container,
        api::StopContainerRequest {
            container_id: sidecar_id.clone(),
            timeout: 1,
        }
    )
    .unwrap();
    assert_eq!(
        wait_exited(&cri, &sidecar_id).state,
        api::ContainerState::ContainerExited as i32
    );
    cri!(
        cri,
        stop_pod_sandbox,
        api::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }
    )
    .unwrap();
    for id in [&app_id, &sidecar_id, &waiter_id] {
        cri!(
            cri,
            remove_container,
            api::RemoveContainerRequest {
                container_id: id.to_string(),
            }
        )
        .unwrap();
    }
    cri!(
        cri,
        remove_pod_sandbox,
        api::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }
    )
    .unwrap();
    let left = cri!(
        cri,
        list_pod_sandbox,
        api::ListPodSandboxRequest { filter: None }
    )
    .unwrap();
    assert!(left.items.is_empty(), "{left:?}");
    let deadline = Instant::now() + *TIMEOUT;
    while !processes_mentioning(&pod).is_empty() {
        assert!(Instant::now() < deadline, "the pod's shim outlived the pod");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private containerd's configuration with the CRI on, in kubelet's namespace, with the
/// pause image the tests build (`pause:test`) as its sandbox image.
fn cri_config(dir: &Path) -> wasmbay_testkit::ContainerdConfig {
    let pause = ImageRef::parse("pause:test").unwrap().to_string();
    containerd_config(&dir.join("cache"))
        .with_namespace("k8s.io")
        .with_cri(true)
        .with_cri_sandbox_image(&pause)
}

/// The images the pod tests share: the pause image (`pause:test`, the CRI's sandbox image),
/// a spinning wasm guest and a busybox sleeper; returns the last two's references.
fn import_pod_images(cd: &PrivateContainerd, dir: &Path, busybox: Vec<u8>) -> (String, String) {
    import(
        cd,
        dir,
        "pause",
        "busybox",
        busybox.clone(),
        &["/busybox", "sleep", "1000000"],
    );
    let spin = import(cd, dir, "spin", "spin.wat", SPIN.into(), &["/spin.wat"]);
    let sleeper = import(
        cd,
        dir,
        "sleeper",
        "busybox",
        busybox,
        &["/busybox", "sleep", "1000"],
    );
    (spin, sleeper)
}

/// Stops and removes pod `pod`.
fn remove_pod(cri: &CriClient, pod: &str) {
    cri!(
        cri,
        stop_pod_sandbox,
        api::StopPodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        }
    )
    .unwrap();
    cri!(
        cri,
        remove_pod_sandbox,
        api::RemovePodSandboxRequest {
            pod_sandbox_id: pod.to_string(),
        }
    )
    .unwrap();
}

/// Whether kubelet's systemd cgroup driver can be mimicked here; prints why not.
fn systemd_node() -> bool {
    if !wasmbay_testkit::require_systemd_cgroup_v2() {
        return false;
    }
    if !Path::new("/usr/sbin/runc").exists() && !Path::new("/usr/bin/runc").exists() {
        eprintln!("skipped: runc, the placement baseline, is not installed");
        return false;
    }
    true
}

/// The pid CRI reports for a container (its verbose info).
fn pid_of(cri: &CriClient, id: &str) -> u32 {
    let status = cri!(
        cri,
        container_status,
        api::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        }
    )
    .unwrap();
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    info["pid"].as_u64().unwrap() as u32
}

/// The cgroup v2 path of `pid`.
fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string()
}

/// As kubelet with `cgroupDriver: systemd`: pods under `kubepods-besteffort-pod<uid>.slice`,
/// containerd's runtimes with `SystemdCgroup = true`. The wasm pod's containers must land in
/// the same place a runc pod's do, and the CRI must see the wasm container's OOM kill and its
/// CPU and memory.
#[test]
fn under_kubelets_systemd_driver_wasm_pods_land_where_runc_pods_do() {
    if !require_root() || !systemd_node() {
        return;
    }
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static");
    let dir = tempfile::tempdir().unwrap();
    let cd = PrivateContainerd::start_with(
        cri_config(dir.path())
            .with_cri_runtime(CriRuntime::new(HANDLER, RUNTIME).option("SystemdCgroup", true))
            .with_cri_runtime(
                CriRuntime::new("runc", "io.containerd.runc.v2").option("SystemdCgroup", true),
            ),
    )
    .expect("start a private containerd with CRI");
    let (spin, sleeper) = import_pod_images(&cd, dir.path(), busybox);
    let hog = import(&cd, dir.path(), "hog", "hog.wat", HOG.into(), &["/hog.wat"]);
    let cri = CriClient::connect(cd.address()).unwrap();
    let logs = dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = |name: &str| api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("{name}-uid"),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: logs.join(name).display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig {
            // kubelet's name for a best-effort pod's slice (dashes in the uid become `_`).
            cgroup_parent: format!("kubepods-besteffort-pod{}.slice", name.replace('-', "_")),
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
    let run_pod = |name: &str, handler: &str| {
        let config = sandbox_config(name);
        std::fs::create_dir_all(&config.log_directory).unwrap();
        let id = cri!(
            cri,
            run_pod_sandbox,
            api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()))
        .pod_sandbox_id;
        (id, config)
    };
    let run_container =
        |pod: &(String, api::PodSandboxConfig), name: &str, image: &str, memory_limit: i64| {
            let linux = api::LinuxContainerConfig {
                resources: Some(api::LinuxContainerResources {
                    memory_limit_in_bytes: memory_limit,
                    ..Default::default()
                }),
                ..Default::default()
            };
            create_and_start(&cri, &cd, &pod.0, &pod.1, name, image, linux)
        };

    let runc_pod = run_pod("runc-pod", "runc");
    let runc_sleeper = run_container(&runc_pod, "sleeper", &sleeper, 0);
    let wasm_pod = run_pod("wasm-pod", HANDLER);
    let wasm_spin = run_container(&wasm_pod, "spin", &spin, 0);
    let wasm_sleeper = run_container(&wasm_pod, "sleeper", &sleeper, 0);

    // runc's placement, with its pod's name and container's id put back as placeholders, is
    // the pattern every wasm-pod container must follow.
    let pattern = |pod: &str, id: &str, path: &str| {
        path.replace(&pod.replace('-', "_"), "<pod>")
            .replace(id, "<id>")
    };
    let runc_place = pattern(
        "runc-pod",
        &runc_sleeper,
        &cgroup_of(pid_of(&cri, &runc_sleeper)),
    );
    assert_eq!(
        runc_place,
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<pod>.slice/cri-containerd-<id>.scope",
        "runc itself placed its container unexpectedly"
    );
    for id in [&wasm_spin, &wasm_sleeper] {
        let place = cgroup_of(pid_of(&cri, id));
        assert_eq!(pattern("wasm-pod", id, &place), runc_place, "{place}");
    }

    // ContainerStats: CPU time and memory of the spinning guest.
    std::thread::sleep(Duration::from_millis(500));
    let stats = cri!(
        cri,
        container_stats,
        api::ContainerStatsRequest {
            container_id: wasm_spin.clone(),
        }
    )
    .unwrap()
    .stats
    .expect("stats");
    let cpu = stats
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value)
        .unwrap_or(0);
    let memory = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    // Nanoseconds: 0.5 s of spinning is far above a microsecond count read as nanoseconds.
    assert!(cpu > 10_000_000, "usage_core_nano_seconds {cpu}");
    assert!(memory > 0, "working_set_bytes {memory}");

    // A memory hog under a 40 MiB limit is OOM-killed, and CRI says so.
    let wasm_hog = run_container(&wasm_pod, "hog", &hog, 40 << 20);
    let status = wait_exited(&cri, &wasm_hog);
    assert_eq!(status.exit_code, 137, "{status:?}");
    assert_eq!(status.reason, "OOMKilled", "{status:?}");

    for pod in [&wasm_pod.0, &runc_pod.0] {
        remove_pod(&cri, pod);
    }
    // Every scope of both pods is gone with them.
    let slice = Path::new("/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice");
    let deadline = Instant::now() + *TIMEOUT;
    loop {
        let scopes: Vec<String> = walk_scopes(slice);
        if scopes.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {scopes:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `*.scope` directories under `dir`, at any depth.
fn walk_scopes(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.extension().is_some_and(|e| e == "scope") {
                    found.push(path.display().to_string());
                }
                found.extend(walk_scopes(&path));
            }
        }
    }
    found
}

/// The end of the shims' log (`common::containerd_config` points them at `<dir>/shim.log`).
fn shim_log(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// containerd's version as (major, minor), from `containerd --version`.
fn containerd_version() -> Option<(u32, u32)> {
    let out = std::process::Command::new("/usr/bin/containerd")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?.trim_start_matches('v');
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The CNI plugins the user-namespace pod's network needs.
const CNI_PLUGINS: [&str; 3] = ["bridge", "host-local", "loopback"];
const POD_BRIDGE: &str = "wbuserns0";

/// Deletes a network link when dropped.
struct RemoveLink(&'static str);

impl Drop for RemoveLink {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Whether Debian's CNI plugins the pod networks need are installed; says why not if not.
fn cni_plugins_present() -> bool {
    let plugins = Path::new("/usr/lib/cni");
    match CNI_PLUGINS.iter().find(|name| !plugins.join(name).exists()) {
        None => true,
        Some(missing) => {
            eprintln!(
                "skipped: no CNI {missing} plugin in {} (Debian's containernetworking-plugins, \
                 which scripts/setup.sh installs)",
                plugins.display()
            );
            false
        }
    }
}

/// Gives the CRI's pods their own network namespace: CNI's bridge plugin (an `eth0` on a
/// bridge of the test's own, addresses from host-local in `subnet`), with no route off the
/// node. The bridge is the node's, not the pod's: the returned guard removes it, however the
/// test ends.
fn pod_network(cd: &PrivateContainerd, bridge: &'static str, subnet: &str) -> RemoveLink {
    let plugins = Path::new("/usr/lib/cni");
    let cni = cd.dir().join("cni");
    std::fs::create_dir_all(cni.join("bin")).unwrap();
    std::fs::create_dir_all(cni.join("net.d")).unwrap();
    for name in CNI_PLUGINS {
        std::fs::copy(plugins.join(name), cni.join("bin").join(name)).unwrap();
    }
    let network = format!(
        r#"{{"cniVersion": "1.0.0", "name": "{bridge}-pods", "plugins": [{{
            "type": "bridge", "bridge": "{bridge}", "isGateway": false, "ipMasq": false,
            "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{subnet}"}}]],
                      "dataDir": "{}"}}}}]}}"#,
        cni.join("ipam").display()
    );
    std::fs::write(cni.join("net.d/10-test-pods.conflist"), network).unwrap();
    RemoveLink(bridge)
}

/// RunPodSandbox on the CNI network of [`pod_network`]. containerd must see the network
/// before the pod asks for one; its configuration directory is watched, so this settles
/// within moments.
fn run_pod_on_cni(
    cri: &CriClient,
    cd: &PrivateContainerd,
    dir: &Path,
    sandbox_config: &api::PodSandboxConfig,
) -> String {
    let deadline = Instant::now() + *TIMEOUT;
    loop {
        match cri!(
            cri,
            run_pod_sandbox,
            api::RunPodSandboxRequest {
                config: Some(sandbox_config.clone()),
                runtime_handler: HANDLER.into(),
            }
        ) {
            Ok(answer) => break answer.pod_sandbox_id,
            Err(e) if e.to_string().contains("cni") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{e}\n{}\nshim log:\n{}", cd.log_tail(), shim_log(dir)),
        }
    }
}

/// Where kubelet would put a `hostUsers: false` pod's ids: a 65536-wide range at a multiple
/// of 65536, far from the node's own users.
const POD_HOST_ID: u32 = 8 << 16;
const POD_ID_RANGE: u32 = 1 << 16;

/// The `/proc/<pid>/status` line `key:` as its tab-separated fields.
fn status_ids(pid: u32, key: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A pod with `hostUsers: false`, as kubelet asks for it: the CRI's user namespace of mode
/// POD with one 65536-id range, on the sandbox and on every container. The pause container,
/// the wasm container and a Linux sidecar must all run in one user namespace that is not the
/// node's, with the pod's mapping, their root being the range's first host id.
#[test]
fn a_pod_without_host_users_runs_wasm_and_sidecar_in_its_user_namespace() {
    if !require_root() {
        return;
    }
    match containerd_version() {
        Some(v) if v >= (1, 7) => {}
        other => {
            eprintln!(
                "skipped: containerd {other:?} has no CRI user namespaces (1.7 added them; \
                 scripts/guest-suite.sh debian13 runs this with 1.7)"
            );
            return;
        }
    }
    // The pod network namespace is the pod's own: kubelet refuses `hostUsers: false` with
    // host networking.
    if !cni_plugins_present() {
        return;
    }
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static");
    let dir = tempfile::tempdir().unwrap();
    let cd = PrivateContainerd::start_with(
        cri_config(dir.path()).with_cri_runtime(CriRuntime::new(HANDLER, RUNTIME)),
    )
    .expect("start a private containerd with CRI");
    let _bridge = pod_network(&cd, POD_BRIDGE, "10.231.77.0/24");
    let (spin, sleeper) = import_pod_images(&cd, dir.path(), busybox);
    let cri = CriClient::connect(cd.address()).unwrap();
    let logs = dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mapping = vec![api::IdMapping {
        host_id: POD_HOST_ID,
        container_id: 0,
        length: POD_ID_RANGE,
    }];
    let namespaces = api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        userns_options: Some(api::UserNamespace {
            mode: api::NamespaceMode::Pod as i32,
            uids: mapping.clone(),
            gids: mapping,
        }),
        ..Default::default()
    };
    let sandbox_config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "userns-pod".into(),
            uid: "userns-pod-uid".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "userns-pod".into(),
        log_directory: logs.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = run_pod_on_cni(&cri, &cd, dir.path(), &sandbox_config);
    let linux = api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            namespace_options: Some(namespaces),
            ..Default::default()
        }),
        ..Default::default()
    };
    let wasm = create_and_start(
        &cri,
        &cd,
        &pod,
        &sandbox_config,
        "spin",
        &spin,
        linux.clone(),
    );
    let sidecar = create_and_start(&cri, &cd, &pod, &sandbox_config, "sleeper", &sleeper, linux);

    let sandbox_pid = {
        let status = cri!(
            cri,
            pod_sandbox_status,
            api::PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: true,
            }
        )
        .unwrap();
        let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
        info["pid"].as_u64().unwrap() as u32
    };
    let node_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
    let pod_userns = std::fs::read_link(format!("/proc/{sandbox_pid}/ns/user")).unwrap();
    assert_ne!(
        pod_userns, node_userns,
        "the pause container is in the node's user namespace"
    );
    let expected_map = format!("0 {POD_HOST_ID} {POD_ID_RANGE}");
    for (what, pid) in [
        ("pause", sandbox_pid),
        ("wasm", pid_of(&cri, &wasm)),
        ("sidecar", pid_of(&cri, &sidecar)),
    ] {
        let userns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
        assert_eq!(
            userns, pod_userns,
            "{what} (pid {pid}) is not in the pod's user namespace"
        );
        let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        let gid_map = std::fs::read_to_string(format!("/proc/{pid}/gid_map")).unwrap();
        for (name, map) in [("uid_map", &uid_map), ("gid_map", &gid_map)] {
            let fields: Vec<&str> = map.split_whitespace().collect();
            assert_eq!(fields.join(" "), expected_map, "{what}'s {name}");
        }
        // Root in the pod is the range's first id on the node.
        for key in ["Uid:", "Gid:"] {
            let ids = status_ids(pid, key);
            assert!(
                ids.iter().all(|id| *id == POD_HOST_ID.to_string()),
                "{what}'s {key} {ids:?}, not {POD_HOST_ID}"
            );
        }
    }
    // The pod's root can act in its own namespaces: the sidecar sees itself as root.
    let id = cri!(
        cri,
        exec_sync,
        api::ExecSyncRequest {
            container_id: sidecar.clone(),
            cmd: vec!["/busybox".into(), "id".into(), "-u".into()],
            timeout: 30,
        }
    )
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), "0", "{id:?}");

    remove_pod(&cri, &pod);
}

/// The bridge of the served pod's network (see [`pod_network`]).
const HTTP_POD_BRIDGE: &str = "wbhttp0";

/// One HTTP/1.1 request from inside the network namespace `netns` (a pod's) to its loopback
/// port 8080: the status, or the I/O error. The thread that enters the namespace is this
/// request's own, so the test's other threads stay on the node's network.
fn request_in(netns: &Path, path: &str) -> Result<u16, String> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let netns = std::fs::File::open(netns).map_err(|e| e.to_string())?;
    let path = path.to_string();
    std::thread::spawn(move || {
        // SAFETY: setns on a descriptor this thread holds open; it changes only the calling
        // thread's network namespace, and the thread ends with this request.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        let mut stream =
            std::net::TcpStream::connect("127.0.0.1:8080").map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(*TIMEOUT))
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {response:?}"))
    })
    .join()
    .map_err(|_| "the request thread panicked".to_string())?
}

/// A pod whose wasm container is a `wasi:http` handler: it serves on the pod's network
/// (requests sent from inside the pod's namespace, on its loopback), a request over the
/// per-request memory limit (annotation, passed by the runtime's `container_annotations`) is
/// answered 500 and the next one 200, and StopContainer (SIGTERM) lets a slow request in
/// flight finish before the container exits 0.
#[test]
fn a_served_wasm_pod_answers_on_its_network_and_drains_on_stop() {
    if !require_root() || !cni_plugins_present() {
        return;
    }
    let handler =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpus/http_handler.wasm");
    let handler = std::fs::read(&handler).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/build-corpus.sh builds it)",
            handler.display()
        )
    });
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static");
    let dir = tempfile::tempdir().unwrap();
    let cd = PrivateContainerd::start_with(cri_config(dir.path()).with_cri_runtime(
        CriRuntime::new(HANDLER, RUNTIME).setting(
            "container_annotations",
            wasmbay_testkit::TomlValue::StrList(vec!["wasmbay.*".into()]),
        ),
    ))
    .expect("start a private containerd with CRI");
    let _bridge = pod_network(&cd, HTTP_POD_BRIDGE, "10.231.78.0/24");
    import(
        &cd,
        dir.path(),
        "pause",
        "busybox",
        busybox,
        &["/busybox", "sleep", "1000000"],
    );
    let app = import(&cd, dir.path(), "web", "web.wasm", handler, &["/web.wasm"]);
    let cri = CriClient::connect(cd.address()).unwrap();
    let logs = dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "web-pod".into(),
            uid: "web-pod-uid".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "web-pod".into(),
        log_directory: logs.display().to_string(),
        ..Default::default()
    };
    let pod = run_pod_on_cni(&cri, &cd, dir.path(), &sandbox_config);
    let web = cri!(
        cri,
        create_container,
        api::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: "web".into(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: app,
                    ..Default::default()
                }),
                log_path: "web.log".into(),
                annotations: [(
                    "wasmbay.http.request-memory-limit".to_string(),
                    (64u64 << 20).to_string(),
                )]
                .into(),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config.clone()),
        }
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()))
    .container_id;
    cri!(
        cri,
        start_container,
        api::StartContainerRequest {
            container_id: web.clone(),
        }
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()));
    wait_for_log(&logs.join("web.log"), "serving http://0.0.0.0:8080/");

    let netns = std::path::PathBuf::from(format!("/proc/{}/ns/net", pid_of(&cri, &web)));
    assert_ne!(
        std::fs::read_link(&netns).unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap(),
        "the wasm container is on the node's network, not the pod's"
    );
    assert_eq!(request_in(&netns, "/"), Ok(200));
    assert_eq!(request_in(&netns, "/alloc/128"), Ok(500), "over 64 MiB");
    assert_eq!(
        request_in(&netns, "/alloc/16"),
        Ok(200),
        "the next one fits"
    );

    // A request in flight across StopContainer (SIGTERM) still gets its answer.
    let slow = {
        let netns = netns.clone();
        std::thread::spawn(move || request_in(&netns, "/sleep/1500"))
    };
    std::thread::sleep(Duration::from_millis(300));
    let stop_started = Instant::now();
    cri!(
        cri,
        stop_container,
        api::StopContainerRequest {
            container_id: web.clone(),
            timeout: 20,
        }
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()));
    assert_eq!(
        slow.join().unwrap(),
        Ok(200),
        "the request in flight was cut"
    );
    let status = wait_exited(&cri, &web);
    assert_eq!(
        status.exit_code,
        0,
        "drained, not killed ({:?} after the stop began)",
        stop_started.elapsed()
    );
    remove_pod(&cri, &pod);
}
