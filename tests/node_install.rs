//! `wasmbay node install | uninstall | status` on node trees: a real containerd (Debian's, on a
//! private socket, its directory standing for the node's root as `--host-root`), restarted by
//! the installer through a command this test answers; and fixture trees of k3s, rke2,
//! microk8s and k0s, edited with `--no-restart`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wasmbay_testkit::{require_root, ContainerdConfig, PrivateContainerd};

fn node(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmbay"));
    command
        .arg("node")
        .args(args)
        .arg("--host-root")
        .arg(root)
        .env_remove("RUST_LOG");
    command
}

/// A stand-in shim: the installer copies bytes, and nothing here starts a pod.
fn fake_shim(dir: &Path) -> PathBuf {
    let shim = dir.join("built-shim");
    std::fs::write(&shim, b"#!/bin/sh\nexit 0\n").unwrap();
    shim
}

/// Runs an installer command whose `--restart-command` asks this test to restart containerd:
/// it makes a request file and waits until the test has removed it. `on_restart(n, cd)` acts
/// on the n-th request (from 1). Returns the output and the number of restarts.
fn run_with_restarts(
    cd: &mut PrivateContainerd,
    mut command: Command,
    on_restart: &mut dyn FnMut(usize, &mut PrivateContainerd),
) -> (Output, usize) {
    let request = cd.dir().join("restart-request");
    let line = format!(
        "touch {r}; i=0; while [ -e {r} ]; do sleep 0.05; i=$((i+1)); [ $i -le 2400 ] || exit 9; done",
        r = request.display()
    );
    let mut child = command
        .arg("--restart-command")
        .arg(&line)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut restarts = 0;
    loop {
        if request.exists() {
            restarts += 1;
            on_restart(restarts, cd);
            std::fs::remove_file(&request).unwrap();
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("the installer did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), restarts)
}

fn restart_normally(_: usize, cd: &mut PrivateContainerd) {
    cd.crash_and_restart(Duration::ZERO)
        .unwrap_or_else(|e| panic!("containerd did not start again: {e}"));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn private_cri_containerd() -> Option<PrivateContainerd> {
    if !require_root() || !wasmbay_testkit::require_command("containerd") {
        return None;
    }
    Some(PrivateContainerd::start_with(ContainerdConfig::default().with_cri(true)).unwrap())
}

fn change_args<'a>(verb: &'a str, shim: &'a str, timeout: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        verb,
        "--config",
        "/config.toml",
        "--socket",
        "/c.sock",
        "--distribution",
        "containerd",
        "--timeout",
        timeout,
    ];
    if verb == "install" {
        args.extend(["--engine", "wasmtime", "--engine", "wasmer", "--shim", shim]);
    }
    args
}

#[test]
fn install_restarts_once_a_second_changes_nothing_and_uninstall_restores_every_byte() {
    let Some(mut cd) = private_cri_containerd() else {
        return;
    };
    let root = cd.dir().to_path_buf();
    let shim = fake_shim(&root);
    let shim = shim.to_str().unwrap();
    let config = cd.config_path();
    let original = std::fs::read(&config).unwrap();

    let dry = node(&root, &change_args("install", shim, "30"))
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let shown = text(&dry.stdout);
    assert!(
        shown.contains(
            "+[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbay-wasmtime]"
        ),
        "{shown}"
    );
    assert_eq!(
        std::fs::read(&config).unwrap(),
        original,
        "a dry run writes nothing"
    );
    assert!(!root.join("usr").exists());

    let (out, restarts) = run_with_restarts(
        &mut cd,
        node(&root, &change_args("install", shim, "30")),
        &mut restart_normally,
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(restarts, 1);
    let installed = std::fs::read(&config).unwrap();
    let installed_text = text(&installed);
    assert!(
        installed_text.starts_with(&text(&original)[..40]),
        "{installed_text}"
    );
    assert!(installed_text
        .contains("runtime_path = \"/usr/local/bin/containerd-shim-wasmbay-wasmer-v1\""));
    let bin = root.join("usr/local/bin");
    assert_eq!(
        std::fs::read(bin.join("containerd-shim-wasmbay-wasmer-v1")).unwrap(),
        b"#!/bin/sh\nexit 0\n"
    );
    let status = node(&root, &["status", "--socket", "/c.sock"])
        .output()
        .unwrap();
    let said = text(&status.stdout);
    assert!(status.status.success(), "{said}{}", text(&status.stderr));
    assert!(
        said.contains("handler wasmbay-wasmer: served by containerd"),
        "{said}"
    );

    let (again, restarts) = run_with_restarts(
        &mut cd,
        node(&root, &change_args("install", shim, "30")),
        &mut restart_normally,
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(restarts, 0, "nothing changed, so no restart");
    assert_eq!(
        std::fs::read(&config).unwrap(),
        installed,
        "a second install changes no byte"
    );

    let (out, restarts) = run_with_restarts(
        &mut cd,
        node(&root, &change_args("uninstall", shim, "30")),
        &mut restart_normally,
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(restarts, 1);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        original,
        "uninstall restores every byte"
    );
    assert!(
        !root.join("usr").exists(),
        "the shims and the directories made for them are gone"
    );
    assert!(
        !root.join("var/lib/wasmbay").exists(),
        "the install record is gone"
    );
    let status = node(&root, &["status", "--socket", "/c.sock"])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(3), "{}", text(&status.stdout));
}

#[test]
fn a_configuration_containerd_does_not_come_back_with_is_rolled_back() {
    let Some(mut cd) = private_cri_containerd() else {
        return;
    };
    let root = cd.dir().to_path_buf();
    let shim = fake_shim(&root);
    let config = cd.config_path();
    let original = std::fs::read(&config).unwrap();
    // The first restart meets a file containerd refuses (as a bad edit would be) and
    // containerd stays down; the second, after the rollback, starts it as usual.
    let mut on_restart = |n: usize, cd: &mut PrivateContainerd| {
        if n == 1 {
            let mut bad = std::fs::read(cd.config_path()).unwrap();
            bad.extend_from_slice(b"\n[[[ not toml\n");
            std::fs::write(cd.config_path(), bad).unwrap();
            assert!(cd.crash_and_restart(Duration::ZERO).is_err());
        } else {
            restart_normally(n, cd);
        }
    };
    let install = node(&root, &change_args("install", shim.to_str().unwrap(), "10"));
    let (out, restarts) = run_with_restarts(&mut cd, install, &mut on_restart);
    let said = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(restarts, 2, "{said}");
    assert!(
        said.contains("is back in place and containerd answers with it"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&config).unwrap(),
        original,
        "the previous file is back"
    );
    assert!(
        !root.join("usr").exists(),
        "the shims placed by the failed install are gone"
    );
    assert!(!root.join("var/lib/wasmbay").exists(), "no install record");
    let status = node(&root, &["status", "--socket", "/c.sock"])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(3));
}

/// Every file under `dir` with its bytes, to show that a run changed nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.push((path.clone(), Vec::new()));
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, body) in files {
        let path = dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    dir
}

/// Installs with `--no-restart` into a fixture tree, checks the file `edited` (the node's path)
/// with `check`, then uninstalls and compares every file with the tree before.
fn install_and_uninstall(dir: &Path, edited: &str, check: impl Fn(&str)) {
    let before = snapshot(dir);
    let shim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(shim.path(), b"shim").unwrap();
    let install = node(
        dir,
        &[
            "install",
            "--no-restart",
            "--engine",
            "wasmtime",
            "--shim",
            shim.path().to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(install.status.success(), "{}", text(&install.stderr));
    let written = std::fs::read_to_string(dir.join(edited.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{edited}: {e}\n{}", text(&install.stdout)));
    check(&written);
    let again = node(
        dir,
        &[
            "install",
            "--no-restart",
            "--engine",
            "wasmtime",
            "--shim",
            shim.path().to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(again.status.success());
    assert!(text(&again.stdout).contains("unchanged; containerd not restarted"));
    let uninstall = node(dir, &["uninstall", "--no-restart"]).output().unwrap();
    assert!(uninstall.status.success(), "{}", text(&uninstall.stderr));
    assert_eq!(snapshot(dir), before, "uninstall left the tree as it was");
}

#[test]
fn k3s_gets_a_template_rendered_from_its_base() {
    let generated = "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n";
    let dir = tree(&[(
        "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
        generated,
    )]);
    install_and_uninstall(
        dir.path(),
        "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
        |t| {
            assert!(t.starts_with("{{ template \"base\" . }}\n"), "{t}");
            assert!(
                t.contains(
                    "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbay-wasmtime]"
                ),
                "{t}"
            );
        },
    );
    // k3s' own file is never touched: k3s rewrites it at every start.
    assert_eq!(
        std::fs::read_to_string(
            dir.path()
                .join("var/lib/rancher/k3s/agent/etc/containerd/config.toml")
        )
        .unwrap(),
        generated
    );
}

#[test]
fn rke2_with_containerd_2_and_a_template_of_its_own() {
    let template = "{{ template \"base\" . }}\n\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/rke2/certs.d\"\n";
    let dir = tree(&[
        (
            "/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
            "version = 3\n",
        ),
        (
            "/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.tmpl",
            template,
        ),
    ]);
    install_and_uninstall(
        dir.path(),
        "/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.tmpl",
        |t| {
            assert!(t.starts_with(template), "{t}");
            assert!(t.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.wasmbay-wasmtime]"), "{t}");
        },
    );
}

#[test]
fn microk8s_template_and_k0s_drop_in() {
    let microk8s = "version = 2\n# microk8s renders ${SNAP_DATA} at start\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.7\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n    default_runtime_name = \"runc\"\n";
    let dir = tree(&[(
        "/var/snap/microk8s/current/args/containerd-template.toml",
        microk8s,
    )]);
    install_and_uninstall(
        dir.path(),
        "/var/snap/microk8s/current/args/containerd-template.toml",
        |t| {
            assert!(
                t.starts_with("version = 2\n# microk8s renders ${SNAP_DATA}"),
                "{t}"
            );
            assert!(t.contains("runtimes.wasmbay-wasmtime]"), "{t}");
        },
    );

    let dir = tree(&[(
        "/etc/k0s/k0s.yaml",
        "apiVersion: k0s.k0sproject.io/v1beta1\n",
    )]);
    install_and_uninstall(dir.path(), "/etc/k0s/containerd.d/wasmbay.toml", |t| {
        assert!(t.starts_with("version = 2\n"), "{t}");
        assert!(
            t.contains(
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmbay-wasmtime]"
            ),
            "{t}"
        );
    });
}

#[test]
fn a_tree_without_containerd_is_a_clear_error_and_nothing_changes() {
    let dir = tree(&[("/etc/hostname", "node-1\n")]);
    let before = snapshot(dir.path());
    let out = node(
        dir.path(),
        &["install", "--no-restart", "--engine", "wasmtime"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("no containerd configuration found under"),
        "{said}"
    );
    assert!(said.contains("k3s"), "{said}");
    assert_eq!(snapshot(dir.path()), before);

    // A containerd whose CRI does not answer now: nothing is changed, as a restart could not
    // show whether the new file is good.
    let dir = tree(&[("/etc/containerd/config.toml", "version = 2\n")]);
    let shim = fake_shim(dir.path());
    let before = snapshot(dir.path());
    let out = node(
        dir.path(),
        &[
            "install",
            "--restart-command",
            "true",
            "--engine",
            "wasmtime",
            "--shim",
            shim.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("does not answer before any change"), "{said}");
    assert_eq!(snapshot(dir.path()), before);

    // A configuration that is not TOML is named, and nothing is written either.
    let dir = tree(&[("/etc/containerd/config.toml", "version = 2\n[plugins\n")]);
    let before = snapshot(dir.path());
    let shim = fake_shim(dir.path());
    let before_with_shim = {
        let mut b = before.clone();
        b.push((shim.clone(), std::fs::read(&shim).unwrap()));
        b.sort();
        b
    };
    let out = node(
        dir.path(),
        &[
            "install",
            "--no-restart",
            "--engine",
            "wasmtime",
            "--shim",
            shim.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("/etc/containerd/config.toml"), "{said}");
    assert!(said.contains("not valid TOML"), "{said}");
    assert_eq!(snapshot(dir.path()), before_with_shim);
}
