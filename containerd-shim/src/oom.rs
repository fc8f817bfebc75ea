//! TaskOOM: noticing that the kernel's OOM killer acted inside a container's memory cgroup.
//!
//! cgroup v1 notifies through an eventfd registered on `memory.oom_control` (written as
//! "<eventfd> <fd>" to `cgroup.event_control`); the same eventfd also fires when the cgroup is
//! removed, which ends the watch.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

/// The v1 memory cgroup directory of a container whose cgroup path is `cgroup_path`.
pub fn v1_memory_dir(cgroup_path: &Path) -> Option<PathBuf> {
    let relative = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let dir = Path::new("/sys/fs/cgroup/memory").join(relative);
    dir.join("memory.oom_control").is_file().then_some(dir)
}

/// Calls `on_oom` each time the OOM killer acts in the cgroup at `dir`, on a thread of its
/// own, until the cgroup is removed.
pub fn watch_v1(dir: PathBuf, on_oom: impl Fn() + Send + 'static) -> io::Result<()> {
    // SAFETY: eventfd takes integers only and returns a new descriptor or -1, checked below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `efd` was just created and is owned by this File from here on.
    let mut events = unsafe { File::from_raw_fd(efd) };
    let control = File::open(dir.join("memory.oom_control"))?;
    OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.event_control"))?
        .write_all(format!("{} {}", events.as_raw_fd(), control.as_raw_fd()).as_bytes())?;
    std::thread::Builder::new()
        .name("oom-watch".into())
        .spawn(move || {
            let _control = control;
            let mut count = [0u8; 8];
            while events.read_exact(&mut count).is_ok() {
                if !dir.exists() {
                    break;
                }
                on_oom();
            }
        })?;
    Ok(())
}
