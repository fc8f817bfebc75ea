//! Starting the kernel's wait for a cgroup move before libcontainer's move needs it.
//!
//! Moving a process into a cgroup takes the kernel's `cgroup_threadgroup_rwsem` for writing.
//! Unless the host mounts cgroup v2 with `favordynmods`, the first such writer after a quiet spell
//! waits for a whole RCU grace period (7.6 ms on an idle benchmark machine, 17 ms while
//! containerd is busy: two thirds of a container's creation), and writers that arrive while it
//! is pending, or within a grace period after the last one left, share it. libcontainer moves a
//! container's intermediate process into its cgroups a few milliseconds into a create, after
//! the bundle, the module and the builder are ready. So a frontend first makes a move that
//! changes nothing (its own process into the cgroup it is already in) on a short-lived thread:
//! the grace period then runs while the create does its other work, and libcontainer's move
//! finds it over or nearly so. The hierarchy does not matter, as the lock is one for all of
//! them. A failure only loses the head start, so it is logged at debug level and nothing more.

use std::time::Instant;

use wasmbay_shim_core::cgroup_move::move_into_own_cgroup;

/// Set to `0` to make no warm-up move: for comparing start times with and without it, and as
/// a way out should a host's cgroup layout make the move misbehave.
pub const DISABLE_ENV: &str = "WASMBAY_CGROUP_WARMUP";

/// Makes the no-op move on a new thread and returns at once.
pub fn begin() {
    if std::env::var_os(DISABLE_ENV).is_some_and(|v| v == "0") {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("cgroup-warmup".into())
        .spawn(|| {
            let started = Instant::now();
            match move_into_own_cgroup() {
                Ok(procs) => tracing::debug!(
                    procs = %procs.display(),
                    waited_us = started.elapsed().as_micros() as u64,
                    "cgroup move warm-up done"
                ),
                Err(e) => tracing::debug!(error = %e, "cgroup move warm-up not made"),
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cgroup move warm-up thread not started");
    }
}
