//! `wasmbay image push` to a real registry (Debian's docker-registry on loopback), and back:
//! wasm images of both layouts pulled by containerd's CRI `PullImage`, as kubelet pulls them,
//! and the node installer's multi-platform image by `ctr images pull --all-platforms`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use wasmbay_testkit::cri::CriClient;
use wasmbay_testkit::{
    require_command, require_root, ContainerdConfig, LoopbackRegistry, PrivateContainerd,
    REGISTRY_BINARY,
};

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from the registry\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 24))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

fn wasmbay(args: &[&str]) -> Output {
    wasmbay_testkit::run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_wasmbay")).args(args),
        Duration::from_secs(120),
    )
    .unwrap()
}

fn ok(output: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The digest `wasmbay image build|installer` printed for the image (`REF DIGEST`).
fn printed_digest(stdout: &str) -> String {
    stdout
        .lines()
        .last()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_string()
}

/// The manifest digest the registry serves for `repository:tag`.
fn served_digest(registry: &LoopbackRegistry, repository: &str, tag: &str) -> String {
    let (status, response) = registry
        .get(&format!("/v2/{repository}/manifests/{tag}"))
        .expect("the registry answers");
    assert_eq!(status, 200, "{response}");
    response
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("docker-content-digest:")
                .map(|d| d.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no digest header: {response}"))
}

/// containerd at or after `major.minor.patch`.
fn containerd_at_least(wanted: (u32, u32, u32)) -> bool {
    let output = Command::new("containerd")
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().nth(2).unwrap_or_default();
    let numbers: Vec<u32> = version
        .trim_start_matches('v')
        .split(['.', '~', '-', '+'])
        .take(3)
        .filter_map(|n| n.parse().ok())
        .collect();
    numbers.len() == 3 && (numbers[0], numbers[1], numbers[2]) >= wanted
}

#[test]
fn pushed_images_are_pulled_back_by_containerd() {
    if !require_root() || !require_command(REGISTRY_BINARY) {
        return;
    }
    let registry = LoopbackRegistry::start().unwrap();
    let host = registry.address().to_string();
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("hello.wat");
    std::fs::write(&module, HELLO).unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();

    // A wasm image of each layout: pushed, served under its tag with the digest it was built
    // with; a second push finds every blob there already.
    let mut pushed = Vec::new();
    for layout in ["app", "artifact"] {
        let reference = format!("{host}/hello:{layout}");
        let archive = path(&format!("{layout}.tar"));
        let built = ok(
            wasmbay(&[
                "image",
                "build",
                module.to_str().unwrap(),
                "--name",
                &reference,
                "--layout",
                layout,
                "-o",
                &archive,
            ]),
            "build",
        );
        let digest = printed_digest(&built);
        let first = ok(
            wasmbay(&["image", "push", &archive, &reference, "--plain-http"]),
            "push",
        );
        assert!(
            first.ends_with(&format!("{reference}: {digest}\n")),
            "{first}"
        );
        assert_eq!(served_digest(&registry, "hello", layout), digest);
        let again = ok(
            wasmbay(&["image", "push", &archive, &reference, "--plain-http"]),
            "second push",
        );
        assert!(again.contains("already there"), "{again}");
        assert!(!again.contains(": pushed"), "{again}");
        pushed.push((layout, reference, digest));
    }

    // The node installer's image: a static busybox stands in for amd64's binaries and a bare
    // static ELF header for arm64's; pushing sends both platforms under one index.
    let amd64 = dir.path().join("amd64");
    let arm64 = dir.path().join("arm64");
    for d in [&amd64, &arm64] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut header = vec![0u8; 64];
    header[..6].copy_from_slice(b"\x7fELF\x02\x01");
    header[18..20].copy_from_slice(&183u16.to_le_bytes());
    for name in ["wasmbay", "containerd-shim-wasmbay-wasmtime-v1"] {
        std::fs::copy("/bin/busybox", amd64.join(name)).unwrap();
        std::fs::write(arm64.join(name), &header).unwrap();
    }
    let installer_ref = format!("{host}/wasmbay/node-installer:test");
    let installer = path("installer.tar");
    let built = ok(
        wasmbay(&[
            "image",
            "installer",
            "--binaries",
            &format!("amd64={}", amd64.display()),
            "--binaries",
            &format!("arm64={}", arm64.display()),
            "--name",
            &installer_ref,
            "-o",
            &installer,
        ]),
        "installer build",
    );
    let installer_digest = printed_digest(&built);
    ok(
        wasmbay(&["image", "push", &installer, &installer_ref, "--plain-http"]),
        "installer push",
    );
    assert_eq!(
        served_digest(&registry, "wasmbay/node-installer", "test"),
        installer_digest
    );

    // Back through containerd: the CRI finds the registry through a hosts.toml, as a node's
    // containerd is pointed at a mirror.
    let hosts = dir.path().join("hosts").join(&host);
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!("server = \"http://{host}\"\n\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
    )
    .unwrap();
    let cd = PrivateContainerd::start_with(
        ContainerdConfig::default()
            .with_namespace("k8s.io")
            .with_cri(true)
            .with_cri_registry_hosts(&dir.path().join("hosts")),
    )
    .unwrap();
    let cri = CriClient::connect(cd.address()).unwrap();
    // containerd before 1.6.25 and 1.7.7 cannot unpack a layer that is not a file system.
    let artifacts_unpack = containerd_at_least((1, 6, 25))
        && (containerd_at_least((1, 7, 7)) || !containerd_at_least((1, 7, 0)));
    for (layout, reference, digest) in &pushed {
        if *layout == "artifact" && !artifacts_unpack {
            eprintln!("skipped: the CRI pull of the artifact image: this containerd cannot unpack a wasm layer (1.6.25 and 1.7.7 can)");
            continue;
        }
        let image_ref = cri
            .pull_image(reference)
            .unwrap_or_else(|e| panic!("{e}\n{}", cd.log_tail()));
        assert!(image_ref.starts_with("sha256:"), "{image_ref}");
        let line = cd
            .image_line(reference)
            .unwrap()
            .unwrap_or_else(|| panic!("{reference} not pulled"));
        assert!(line.contains(digest.as_str()), "{line}");
    }
    let pulled = cd
        .run_ok(
            cd.ctr().args([
                "images",
                "pull",
                "--plain-http",
                "--all-platforms",
                &installer_ref,
            ]),
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    drop(pulled);
    let line = cd
        .image_line(&installer_ref)
        .unwrap()
        .unwrap_or_else(|| panic!("{installer_ref} not pulled"));
    assert!(line.contains(&installer_digest), "{line}");
    assert!(
        line.contains("linux/amd64") && line.contains("linux/arm64"),
        "{line}"
    );
    drop(cri);
    cd.stop();
    assert!(Path::new(registry.dir()).exists());
}

#[test]
fn a_push_needs_plain_http_for_now_and_a_readable_archive() {
    let dir = tempfile::tempdir().unwrap();
    let not_tar = dir.path().join("not.tar");
    std::fs::write(&not_tar, "not an archive").unwrap();
    let missing = dir.path().join("missing.tar").display().to_string();
    let not_tar = not_tar.display().to_string();
    for (args, message) in [
        (vec!["nowhere.tar", "127.0.0.1:9/x:y"], "--plain-http"),
        (
            vec![&missing, "127.0.0.1:9/x:y", "--plain-http"],
            "missing.tar",
        ),
        (vec![&not_tar, "127.0.0.1:9/x:y", "--plain-http"], "not.tar"),
    ] {
        let mut all = vec!["image", "push"];
        all.extend(args.iter().map(|a| &**a));
        let output = wasmbay(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
