//! The no-op cgroup move: this process written into the `cgroup.procs` of the cgroup it is
//! already in. Moving a process into a cgroup takes the kernel's `cgroup_threadgroup_rwsem`
//! for writing, whose first writer after a quiet spell waits for an RCU grace period (unless
//! cgroup v2 is mounted with `favordynmods`). The runtime bridge makes this move ahead of
//! libcontainer's so that the wait overlaps other work; `wasmbay bench cgroup-move` times it.

use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Moves this process into its own cgroup (nothing moves) and returns the file written.
pub fn move_into_own_cgroup() -> std::io::Result<PathBuf> {
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
