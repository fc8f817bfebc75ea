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

use std::path::{Path, PathBuf};
use std::time::Instant;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

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

fn move_into_own_cgroup() -> std::io::Result<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/cgroup")?;
    let procs = own_procs_file(Path::new(CGROUP_ROOT), &table).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no cgroup of this process in /proc/self/cgroup",
        )
    })?;
    // Writing the process id moves the whole process; it is already there, so nothing moves.
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", procs.display())))?;
    Ok(procs)
}

/// The `cgroup.procs` file of this process's cgroup in one hierarchy mounted under `root`,
/// from the text of `/proc/self/cgroup`: a v1 controller's hierarchy where there is one (on a
/// hybrid host the unified one is not at `root`), otherwise the unified hierarchy's.
fn own_procs_file(root: &Path, table: &str) -> Option<PathBuf> {
    let mut unified = None;
    for line in table.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.is_empty() {
            unified = Some(root.join(relative).join("cgroup.procs"));
        } else if !controllers.starts_with("name=") {
            return Some(root.join(controllers).join(relative).join("cgroup.procs"));
        }
    }
    unified
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_controller_hierarchy_is_preferred_on_a_hybrid_host() {
        let table = "12:name=systemd:/system.slice/containerd.service\n\
                     11:cpu,cpuacct:/system.slice/containerd.service\n\
                     0::/system.slice/containerd.service\n";
        assert_eq!(
            own_procs_file(Path::new("/sys/fs/cgroup"), table),
            Some(PathBuf::from(
                "/sys/fs/cgroup/cpu,cpuacct/system.slice/containerd.service/cgroup.procs"
            ))
        );
    }

    #[test]
    fn the_unified_hierarchy_serves_a_v2_host() {
        assert_eq!(
            own_procs_file(Path::new("/sys/fs/cgroup"), "0::/user.slice/x.scope\n"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/user.slice/x.scope/cgroup.procs"
            ))
        );
        assert_eq!(
            own_procs_file(Path::new("/sys/fs/cgroup"), "0::/\n"),
            Some(PathBuf::from("/sys/fs/cgroup/cgroup.procs"))
        );
    }

    #[test]
    fn malformed_or_named_only_tables_give_nothing() {
        assert_eq!(own_procs_file(Path::new("/r"), ""), None);
        assert_eq!(
            own_procs_file(Path::new("/r"), "garbage\n1:name=x:/\n"),
            None
        );
    }

    #[test]
    fn the_warm_up_move_leaves_the_process_where_it_was() {
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        match move_into_own_cgroup() {
            Ok(procs) => assert!(procs.ends_with("cgroup.procs")),
            // Unprivileged test runs cannot write cgroup files; the move is then not made.
            Err(e) => {
                eprintln!("skipped: the warm-up move itself: {e}");
                return;
            }
        }
        assert_eq!(
            std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            before
        );
    }
}
