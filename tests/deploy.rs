//! `deploy/`: the Kubernetes manifests hold together with the code they start. Each
//! RuntimeClass names a handler and a node label as `shim-core/src/names.rs` makes them; the
//! DaemonSets run the installer as privileged with the host root at the path they pass, under a
//! service account that may patch nodes; their arguments are accepted by this build's
//! `wasmbay node` (run against a fixture node with `--dry-run`); every manifest is in its
//! kustomization; and `kubectl kustomize` renders both, where kubectl is installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;
use wasmbay_shim_core::names;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every document of every YAML file under `dir`, with the file it came from.
fn documents(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(documents(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
                found.push((path.clone(), value));
            }
        }
    }
    found
}

fn kind<'a>(docs: &'a [(PathBuf, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| d)
        .collect()
}

fn str_of<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string in {value:?}"))
}

#[test]
fn every_manifest_is_a_named_kubernetes_object_in_its_kustomization() {
    let docs = documents(&deploy());
    assert!(docs.len() >= 9, "{} documents", docs.len());
    for (path, doc) in &docs {
        for key in ["apiVersion", "kind"] {
            assert!(doc[key].is_string(), "{}: no {key}", path.display());
        }
        if doc["kind"] != "Kustomization" {
            assert!(
                doc["metadata"]["name"].is_string(),
                "{}: no metadata.name",
                path.display()
            );
        }
    }
    // Each kustomization lists every manifest beside it (a file left out is never applied)
    // and every directory it takes in exists.
    for (path, doc) in docs.iter().filter(|(_, d)| d["kind"] == "Kustomization") {
        let dir = path.parent().unwrap();
        let listed: BTreeSet<String> = doc["resources"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        for resource in &listed {
            assert!(
                dir.join(resource).exists(),
                "{}: {resource}",
                path.display()
            );
        }
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && name != "kustomization.yaml" {
                assert!(
                    listed.contains(&name),
                    "{}: {name} not listed",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn each_engine_has_a_runtime_class_on_its_handler_scheduled_by_its_label() {
    let docs = documents(&deploy());
    let classes = kind(&docs, "RuntimeClass");
    for engine in wasmbay_engines::KNOWN {
        let handler = names::runtime_handler(engine);
        let class = classes
            .iter()
            .find(|c| c["handler"] == handler.as_str())
            .unwrap_or_else(|| panic!("no RuntimeClass with handler {handler}"));
        assert_eq!(str_of(class, &["metadata", "name"]), handler);
        assert_eq!(
            class["scheduling"]["nodeSelector"][names::node_label(engine).as_str()],
            names::LABEL_READY,
            "{handler}: its nodeSelector is not the label the installer sets"
        );
    }
    assert_eq!(classes.len(), wasmbay_engines::KNOWN.len());
}

/// The installer's and the uninstaller's DaemonSets, with the subcommand each runs.
fn daemonsets(docs: &[(PathBuf, Value)]) -> Vec<(&Value, &'static str)> {
    let sets = kind(docs, "DaemonSet");
    assert_eq!(sets.len(), 2, "an installer and an uninstaller");
    sets.into_iter()
        .map(|set| {
            let args = &set["spec"]["template"]["spec"]["containers"][0]["args"];
            let action = if args[1] == "install" {
                "install"
            } else {
                "uninstall"
            };
            (set, action)
        })
        .collect()
}

#[test]
fn the_daemonsets_run_the_installer_privileged_on_the_host_root_with_node_rights() {
    let docs = documents(&deploy());
    let accounts = kind(&docs, "ServiceAccount");
    let roles = kind(&docs, "ClusterRole");
    let bindings = kind(&docs, "ClusterRoleBinding");
    for (set, action) in daemonsets(&docs) {
        let pod = &set["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(&args[..2], ["node", action]);
        assert!(
            container["securityContext"]["privileged"] == true,
            "{action}"
        );
        // systemctl restarts containerd only from the host init's namespaces.
        assert!(pod["hostPID"] == true, "{action}: no hostPID");
        // The host root is mounted where --host-root says.
        let host_root = args
            .iter()
            .find_map(|a| a.strip_prefix("--host-root="))
            .unwrap_or_else(|| panic!("{action}: no --host-root"));
        let mount = container["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == host_root)
            .unwrap_or_else(|| panic!("{action}: nothing mounted at {host_root}"));
        let volume = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        assert_eq!(str_of(volume, &["hostPath", "path"]), "/");
        // --label-node names the pod's own node, from the downward API.
        assert!(args.contains(&"--label-node=$(NODE_NAME)"), "{action}");
        let node_name = container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "NODE_NAME")
            .unwrap();
        assert_eq!(
            str_of(node_name, &["valueFrom", "fieldRef", "fieldPath"]),
            "spec.nodeName"
        );
        // A DaemonSet's container must stay up once its work is done.
        assert!(args.contains(&"--keep-running"), "{action}");
        // Its service account may patch nodes.
        let account = str_of(pod, &["serviceAccountName"]);
        let namespace = str_of(set, &["metadata", "namespace"]);
        assert!(accounts
            .iter()
            .any(|a| a["metadata"]["name"] == account && a["metadata"]["namespace"] == namespace));
        let binding = bindings
            .iter()
            .find(|b| {
                b["subjects"].as_sequence().unwrap().iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == account
                        && s["namespace"] == namespace
                })
            })
            .unwrap_or_else(|| panic!("{action}: {account} is bound to no role"));
        let role = roles
            .iter()
            .find(|r| r["metadata"]["name"] == binding["roleRef"]["name"])
            .unwrap();
        assert!(
            role["rules"].as_sequence().unwrap().iter().any(|rule| {
                let has = |key: &str, want: &str| {
                    rule[key].as_sequence().unwrap().iter().any(|v| v == want)
                };
                has("resources", "nodes") && has("verbs", "patch") && has("apiGroups", "")
            }),
            "{action}: its role may not patch nodes"
        );
    }
}

/// The DaemonSets' arguments, as Kubernetes would pass them, run through this build's CLI
/// against a plain-containerd node tree with `--dry-run`: clap takes them, and the dry run
/// neither labels nor changes anything.
#[test]
fn the_daemonsets_arguments_are_accepted_by_this_build() {
    let docs = documents(&deploy());
    let node = tempfile::tempdir().unwrap();
    let config = node.path().join("etc/containerd/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let original = "version = 2\n# the node's own\n";
    std::fs::write(&config, original).unwrap();
    let shim = node.path().join("built-shim");
    std::fs::write(&shim, b"#!/bin/sh\n").unwrap();
    for (set, action) in daemonsets(&docs) {
        let args: Vec<String> = set["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| {
                a.as_str()
                    .unwrap()
                    .replace("$(NODE_NAME)", "node-1")
                    .replace(
                        "--host-root=/host",
                        &format!("--host-root={}", node.path().display()),
                    )
            })
            .filter(|a| a != "--keep-running")
            .collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmbay"));
        command
            .args(&args)
            .args(["--dry-run", "--containerd-version", "1.7.24"]);
        if action == "install" {
            command.arg("--shim").arg(&shim);
        }
        let output =
            wasmbay_testkit::run_with_timeout(&mut command, Duration::from_secs(60)).unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{action} {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!stdout.contains("labelled"), "{action}: {stdout}");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    }
}

#[test]
fn kubectl_renders_both_kustomizations() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("skipped: kubectl is not installed; the manifests were checked above without it");
        return;
    }
    for dir in [deploy(), deploy().join("uninstall")] {
        let output = wasmbay_testkit::run_with_timeout(
            Command::new("kubectl").arg("kustomize").arg(&dir),
            Duration::from_secs(60),
        )
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("kind: DaemonSet"), "{stdout}");
        // The image a user sets in one place reaches the DaemonSet.
        assert!(
            stdout.contains("image: localhost:5000/wasmbay/node-installer:0.1.0"),
            "{stdout}"
        );
    }
}
