//! The OCI-runtime frontend: each case as an OCI bundle run by `wasmbay-runtime run`, the way
//! containerd's runc shim, CRI-O or podman would drive it.
//!
//! The bundle's read-only rootfs holds only the module and mount points. The case's `root`
//! fixture is bind-mounted at `/data` and named the guest's `/` with the `wasmbay.wasi.root`
//! annotation, so the guest sees exactly the fixture, as in the direct frontend; without a
//! fixture the annotation is empty and the guest has no preopen. `memory_limit` goes to the
//! `wasmbay.memory.limit` annotation: a cgroup limit of a few pages would not even hold the
//! runtime.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::operations::signal_name;
use crate::suite::{
    end_child, net_namespace_of, run_checked, run_process_with_timeout, spawn_piped, Frontend,
    Invocation, Observed, Workload,
};

pub struct OciRuntimeFrontend {
    /// The `wasmbay-runtime` binary.
    pub runtime: PathBuf,
    pub engine: String,
    /// State directory for the runtime (`--root`), private to this run.
    pub state_root: PathBuf,
    /// Precompiled cache directory handed to the runtime.
    pub cache_dir: Option<PathBuf>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl OciRuntimeFrontend {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.runtime);
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        if let Some(cache) = &self.cache_dir {
            cmd.env("WASMBAY_CACHE_DIR", cache);
        }
        cmd.arg("--root")
            .arg(&self.state_root)
            .arg("--engine")
            .arg(&self.engine);
        cmd
    }
}

/// Writes the bundle for `inv` into `dir` and returns the container's argv[0].
pub fn write_bundle(inv: &Invocation<'_>, dir: &Path) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("bundle {what}: {e}");
    let rootfs = dir.join("rootfs");
    for sub in ["proc", "dev", "sys", "data", "tmp"] {
        fs::create_dir_all(rootfs.join(sub)).map_err(|e| io(sub, e))?;
    }
    let case = inv.case;
    let ext = case
        .module
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wasm".into());
    let module_name = format!("case.{ext}");
    fs::copy(&case.module, rootfs.join(&module_name)).map_err(|e| io("module", e))?;

    let mut argv0 = format!("/{module_name}");
    if let Some(func) = &case.spec.entrypoint {
        argv0 = format!("{argv0}#{func}");
    }
    let mut args = vec![argv0];
    args.extend(case.spec.args.iter().cloned());
    let env: Vec<String> = case
        .spec
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut annotations = serde_json::Map::new();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
    ];
    match &inv.root {
        Some(root) => {
            mounts.push(json!({"destination": "/data", "type": "bind",
                               "source": root, "options": ["rbind", "rw"]}));
            annotations.insert("wasmbay.wasi.root".into(), json!("/data"));
        }
        None => {
            annotations.insert("wasmbay.wasi.root".into(), json!(""));
        }
    }
    if let Some(limit) = case.spec.memory_limit {
        annotations.insert("wasmbay.memory.limit".into(), json!(limit.to_string()));
    }
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
            },
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "case",
        "mounts": mounts,
        "annotations": annotations,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"}, {"type": "network"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
    fs::write(dir.join("config.json"), text).map_err(|e| io("config.json", e))
}

impl Frontend for OciRuntimeFrontend {
    fn name(&self) -> &str {
        "oci-runtime"
    }

    fn run(&self, inv: &Invocation<'_>) -> Result<Observed, String> {
        let (id, run) = self.prepare_run(inv)?;
        // The timeout counts from the guest's start: a kill while `run` is still creating the
        // container would end it before it ran, so it waits until the state says running.
        let kill = || {
            self.command()
                .args(["state", &id])
                .output()
                .is_ok_and(|o| state_is_running(&o.stdout))
                && self
                    .command()
                    .args(["kill", &id, "KILL"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        };
        let observed = run_process_with_timeout(
            run,
            &inv.stdin,
            Some((inv.timeout, &kill)),
            inv.timeout + Duration::from_secs(20),
        );
        // `run` deletes the container when it ends; this only matters after a failure.
        let _ = self.command().args(["delete", "--force", &id]).output();
        observed
    }

    fn spawn<'f>(&'f self, inv: &Invocation<'_>) -> Result<Box<dyn Workload + 'f>, String> {
        let (id, run) = self.prepare_run(inv)?;
        let child = spawn_piped(run)?;
        Ok(Box::new(RuntimeWorkload {
            frontend: self,
            id,
            child,
        }))
    }
}

impl OciRuntimeFrontend {
    /// Writes the case's bundle and returns a fresh container id and its `run` command.
    fn prepare_run(&self, inv: &Invocation<'_>) -> Result<(String, Command), String> {
        let bundle = inv.scratch.join("bundle");
        write_bundle(inv, &bundle)?;
        let id = format!(
            "wbc-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::SeqCst)
        );
        let mut run = self.command();
        run.arg("run").arg("--bundle").arg(&bundle).arg(&id);
        Ok((id, run))
    }
}

/// A container under `wasmbay-runtime run`: signalled with `wasmbay-runtime kill`, reached in
/// its own network namespace, deleted when dropped.
struct RuntimeWorkload<'f> {
    frontend: &'f OciRuntimeFrontend,
    id: String,
    child: std::process::Child,
}

impl Workload for RuntimeWorkload<'_> {
    fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    fn signal(&self, signal: i32) -> Result<(), String> {
        let mut kill = self.frontend.command();
        kill.args(["kill", &self.id, &signal_name(signal)]);
        run_checked(kill, "wasmbay-runtime kill").map(drop)
    }

    fn net_namespace(&self) -> Result<Option<PathBuf>, String> {
        let mut state = self.frontend.command();
        state.args(["state", &self.id]);
        let state = run_checked(state, "wasmbay-runtime state")?;
        let pid = serde_json::from_slice::<serde_json::Value>(&state)
            .ok()
            .and_then(|s| s.get("pid").and_then(|p| p.as_u64()))
            .filter(|pid| *pid > 0)
            .ok_or_else(|| format!("no pid in the state of container {}", self.id))?;
        Ok(Some(net_namespace_of(pid)))
    }
}

impl Drop for RuntimeWorkload<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.signal(libc::SIGKILL);
        }
        end_child(&mut self.child, Duration::ZERO);
        let _ = self
            .frontend
            .command()
            .args(["delete", "--force", &self.id])
            .output();
    }
}

/// Whether an OCI runtime's `state` output (JSON) says `"status": "running"`.
fn state_is_running(state: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(state)
        .is_ok_and(|s| s.get("status").and_then(|v| v.as_str()) == Some("running"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_running_state_lets_the_timeout_kill() {
        assert!(state_is_running(
            br#"{"ociVersion":"1.0.2","id":"x","status":"running","pid":7}"#
        ));
        assert!(!state_is_running(
            br#"{"id":"x","status":"created","pid":7}"#
        ));
        assert!(!state_is_running(b"container x does not exist"));
    }
}
