//! The shim daemon's own mount namespace.
//!
//! The shim mounts each container's rootfs. In the host's mount namespace those mounts pile
//! up, one or more per running container, and every container init that libcontainer starts
//! reads and parses the whole mount table (`make_parent_mount_private`): about 1 KiB of heap
//! per host mount, dirty for the container's whole life because the init runs the guest in
//! the same process. With 1,000 containers that was most of an init's private memory, and
//! each create parsed a table that grew with the node.
//!
//! So the daemon moves to a mount namespace of its own before it starts any thread, as a
//! slave of the host's: mounts the host makes later (volumes the kubelet adds) still reach
//! it, while the rootfs mounts it makes stay inside, visible to its containers only, and
//! vanish with the namespace when its last process ends. `WASMBAY_SHIM_MOUNT_NAMESPACE=host`
//! keeps the daemon in the host's namespace, for node agents that read a container's rootfs
//! through its bundle path.

use std::io;

/// Set to `host` to mount container root filesystems in the host's mount namespace.
pub const MOUNT_NAMESPACE_ENV: &str = "WASMBAY_SHIM_MOUNT_NAMESPACE";

/// Where this daemon's mounts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountPlacement {
    Host,
    Private,
}

impl MountPlacement {
    pub fn from_env() -> MountPlacement {
        MountPlacement::parse(std::env::var(MOUNT_NAMESPACE_ENV).ok().as_deref())
    }

    /// Only the exact word `host` switches; anything else keeps the default.
    fn parse(value: Option<&str>) -> MountPlacement {
        match value {
            Some("host") => MountPlacement::Host,
            _ => MountPlacement::Private,
        }
    }
}

/// Moves the calling process into a new mount namespace that receives the host's mount
/// events but sends none back. Must run before the process has a second thread: unsharing
/// the mount namespace also unshares filesystem attributes, which the kernel refuses for a
/// process whose threads share them.
pub fn enter_private() -> io::Result<()> {
    // SAFETY: unshare takes no pointers.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: static C strings; null source, type and data are allowed for a propagation change.
    let changed = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    };
    if changed != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_defaults_to_private() {
        for (value, expected) in [
            (None, MountPlacement::Private),
            (Some("host"), MountPlacement::Host),
            (Some("HOST"), MountPlacement::Private),
            (Some(""), MountPlacement::Private),
        ] {
            assert_eq!(MountPlacement::parse(value), expected, "{value:?}");
        }
    }

    /// In a forked child: the new namespace is real, and a mount made in it is invisible to
    /// the parent, which is the whole point.
    #[test]
    fn a_mount_in_the_private_namespace_stays_there() {
        if !wasmbay_testkit::require_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_str().unwrap().to_string();
        let own_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        assert!(wasmbay_testkit::holds_in_forked_child(|| {
            if enter_private().is_err()
                || std::fs::read_link("/proc/self/ns/mnt").ok().as_ref() == Some(&own_ns)
            {
                return false;
            }
            let Ok(path) = std::ffi::CString::new(target.as_str()) else {
                return false;
            };
            // SAFETY: valid C strings; a tmpfs needs no source.
            let mounted = unsafe {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    path.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            mounted == 0
        }));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&target),
            "the child's tmpfs leaked into the parent's namespace"
        );
    }
}
