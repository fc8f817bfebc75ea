//! Removing a container whose shim died: what the `delete` action does when containerd sees a
//! shim gone while its container may still run, reparented away from it.

use std::time::{Duration, Instant};

use libcgroups::common::{CgroupManager, FreezerState};
use wasmbay_runtime_bridge::libcontainer::container::Container;

/// How long the cleanup waits for the kernel to take killed processes out of the cgroup.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Kills every process of `container`, waits until its cgroup is empty, then deletes it
/// (cgroup and state). libcontainer's own forced delete kills and removes the cgroup at once,
/// retrying for about 100 ms: less than tearing down a large guest's address space can take,
/// so on a busy node the cgroup and state directory were left behind.
pub fn remove(mut container: Container) -> Result<(), String> {
    drain(&container);
    wasmbay_runtime_bridge::delete::delete_container(&mut container, true)
        .map_err(|e| e.to_string())
}

/// SIGKILLs what is in the container's cgroup until nothing is (bounded). A frozen cgroup is
/// thawed, or the signal would never be acted on.
fn drain(container: &Container) {
    let manager = match crate::cgroup_manager::cgroup_of(container) {
        Ok(manager) => manager,
        Err(e) => {
            tracing::warn!(id = container.id(), error = %e, "no cgroup to drain");
            return;
        }
    };
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let pids = manager.get_all_pids().unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        for pid in &pids {
            // SAFETY: kill(2) on pids read from the container's own cgroup just now.
            unsafe { libc::kill(pid.as_raw(), libc::SIGKILL) };
        }
        let _ = manager.freeze(FreezerState::Thawed);
        if Instant::now() >= deadline {
            tracing::warn!(
                id = container.id(),
                left = pids.len(),
                "processes still in the cgroup after SIGKILL"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
