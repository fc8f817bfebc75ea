//! The containerd frontend: each case as a container of a private containerd (own root, state
//! and socket; never the system one), started by `ctr run` with the wasmbay shim, the way a
//! user or a node runs containers.
//!
//! The container gets the same OCI spec as in the oci-runtime frontend (`ctr run --config`),
//! so the guest sees exactly the case's environment and fixture; containerd's own defaults
//! (a `PATH` variable, for one) would otherwise reach the guest.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmbay_testkit::{ContainerdConfig, PrivateContainerd};

use crate::oci_runtime::write_bundle;
use crate::operations::signal_name;
use crate::suite::{
    end_child, net_namespace_of, run_checked, run_process_with_timeout, spawn_piped, Frontend,
    Invocation, Observed, Workload,
};

pub struct ContainerdFrontend {
    containerd: PrivateContainerd,
    runtime: String,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl ContainerdFrontend {
    /// Starts a private containerd whose PATH finds the shim binaries in `shim_dir`.
    /// Starts the private containerd, waiting up to `start_timeout` for it to answer.
    pub fn start(
        shim_dir: &Path,
        engine: &str,
        cache_dir: Option<PathBuf>,
        start_timeout: Duration,
    ) -> Result<Self, String> {
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut config = ContainerdConfig::default()
            .with_env("PATH", &path)
            .with_start_timeout(start_timeout);
        if let Some(cache) = &cache_dir {
            config = config.with_env("WASMBAY_CACHE_DIR", &cache.to_string_lossy());
        }
        let containerd = PrivateContainerd::start_with(config).map_err(|e| e.to_string())?;
        Ok(ContainerdFrontend {
            containerd,
            runtime: wasmbay_shim_core::names::runtime_type(engine),
        })
    }
}

impl ContainerdFrontend {
    /// Whether `ctr tasks ls` lists the task `id` as running.
    fn task_running(&self, id: &str) -> bool {
        self.containerd
            .ctr()
            .args(["tasks", "ls"])
            .output()
            .is_ok_and(|o| listed_as_running(&String::from_utf8_lossy(&o.stdout), id))
    }
}

/// In `ctr tasks ls` output (`TASK PID STATUS` rows), whether `id`'s row says RUNNING.
fn listed_as_running(listing: &str, id: &str) -> bool {
    listing.lines().any(|line| {
        let mut fields = line.split_whitespace();
        fields.next() == Some(id) && fields.nth(1) == Some("RUNNING")
    })
}

impl Frontend for ContainerdFrontend {
    fn name(&self) -> &str {
        "containerd"
    }

    fn run(&self, inv: &Invocation<'_>) -> Result<Observed, String> {
        let (id, run) = self.prepare_run(inv)?;
        // A case's timeout counts from its guest's start. A kill that came while `ctr run` was
        // still creating the task would end it before its start (ctr then exits 1 with no
        // output, as seen in a slow guest with containerd 1.6): until the task runs, the kill
        // is put off and retried.
        let kill = || {
            self.task_running(&id)
                && self
                    .containerd
                    .ctr()
                    .args(["tasks", "kill", "--signal", "SIGKILL", &id])
                    .output()
                    .is_ok_and(|o| o.status.success())
        };
        let observed = run_process_with_timeout(
            run,
            &inv.stdin,
            Some((inv.timeout, &kill)),
            inv.timeout + Duration::from_secs(30),
        );
        self.remove(&id);
        observed
    }

    fn spawn<'f>(&'f self, inv: &Invocation<'_>) -> Result<Box<dyn Workload + 'f>, String> {
        let (id, run) = self.prepare_run(inv)?;
        let child = spawn_piped(run)?;
        Ok(Box::new(TaskWorkload {
            frontend: self,
            id,
            child,
        }))
    }
}

impl ContainerdFrontend {
    /// Writes the case's bundle and returns a fresh container id and its `ctr run` command.
    fn prepare_run(&self, inv: &Invocation<'_>) -> Result<(String, std::process::Command), String> {
        let bundle = inv.scratch.join("bundle");
        write_bundle(inv, &bundle)?;
        // With `--config`, ctr takes the rootfs from the spec: it must be absolute.
        let config_path = bundle.join("config.json");
        let mut config: serde_json::Value = std::fs::read(&config_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))?;
        config["root"]["path"] = serde_json::json!(bundle.join("rootfs"));
        std::fs::write(&config_path, config.to_string()).map_err(|e| e.to_string())?;
        let id = format!(
            "wbcd-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::SeqCst)
        );
        let mut run = self.containerd.ctr_run();
        run.arg("--rm")
            .arg("--runtime")
            .arg(&self.runtime)
            .arg("--config")
            .arg(&config_path)
            .arg(&id);
        Ok((id, run))
    }

    /// `--rm` removes the container; after a failure, make sure.
    fn remove(&self, id: &str) {
        let _ = self
            .containerd
            .ctr()
            .args(["tasks", "delete", "--force", id])
            .output();
        let _ = self
            .containerd
            .ctr()
            .args(["containers", "delete", id])
            .output();
    }

    /// The task's pid from `ctr tasks ls`.
    fn task_pid(&self, id: &str) -> Option<u32> {
        let output = self.containerd.ctr().args(["tasks", "ls"]).output().ok()?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next() == Some(id))
                    .then(|| fields.next().and_then(|p| p.parse().ok()))
                    .flatten()
            })
    }
}

/// A task under `ctr run`: signalled with `ctr tasks kill`, reached in its own network
/// namespace, removed when dropped.
struct TaskWorkload<'f> {
    frontend: &'f ContainerdFrontend,
    id: String,
    child: std::process::Child,
}

impl Workload for TaskWorkload<'_> {
    fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    fn signal(&self, signal: i32) -> Result<(), String> {
        let mut kill = self.frontend.containerd.ctr();
        kill.args(["tasks", "kill", "--signal", &signal_name(signal), &self.id]);
        run_checked(kill, "ctr tasks kill").map(drop)
    }

    fn net_namespace(&self) -> Result<Option<PathBuf>, String> {
        let pid = self
            .frontend
            .task_pid(&self.id)
            .filter(|pid| *pid > 0)
            .ok_or_else(|| format!("task {} is not listed with a pid", self.id))?;
        Ok(Some(net_namespace_of(pid.into())))
    }
}

impl Drop for TaskWorkload<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.signal(libc::SIGKILL);
        }
        end_child(&mut self.child, Duration::from_secs(10));
        self.frontend.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_running_task_is_listed_as_running() {
        let listing =
            "TASK      PID     STATUS\nwbcd-1-1  4242    CREATED\nwbcd-1-2  4343    RUNNING\n";
        assert!(!listed_as_running(listing, "wbcd-1-1"));
        assert!(listed_as_running(listing, "wbcd-1-2"));
        assert!(!listed_as_running(listing, "wbcd-1"));
        assert!(!listed_as_running("", "wbcd-1-2"));
    }
}
