//! Making a rootfs without its own `/dev` mount acceptable to libcontainer, as it is to runc.
//!
//! When the spec mounts nothing at `/dev`, libcontainer writes its default device nodes and
//! `/dev` symlinks (`fd`, `stdin`, `stdout`, `stderr`, `kcore`) straight into the rootfs. It
//! neither creates a missing `/dev` nor tolerates what an earlier run of the same bundle left
//! there, so a rootfs without `/dev` fails with ENOENT and any second run with EEXIST. runc
//! creates the directory and takes an existing node or link as done. This module does the same
//! on the host before libcontainer starts: it creates `/dev` and removes only the entries that
//! libcontainer is about to recreate with the same meaning (its default links, and device nodes
//! or bind placeholders at the device paths), never anything else.
//!
//! Every step works through descriptors opened with `O_NOFOLLOW` below the rootfs, so a
//! symlinked `/dev` in an image cannot send the cleanup to a host directory.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use wasmbay_shim_core::oci_spec::runtime::Spec;

/// The links libcontainer writes into `/dev` when the rootfs has no `/dev` mount.
const DEFAULT_LINKS: [&str; 5] = ["fd", "stdin", "stdout", "stderr", "kcore"];

/// Device nodes libcontainer (like runc) creates in every container.
const DEFAULT_DEVICES: [&str; 6] = ["null", "zero", "full", "tty", "urandom", "random"];

/// What went wrong, naming the rootfs path at fault.
#[derive(Debug, thiserror::Error)]
#[error("rootfs {path}: {source}")]
pub struct DevSetupError {
    path: String,
    #[source]
    source: io::Error,
}

fn fail(path: &Path, what: &str, source: io::Error) -> DevSetupError {
    DevSetupError {
        path: format!("{}{what}", path.display()),
        source,
    }
}

/// Whether the spec mounts something at `/dev`: then libcontainer works inside that mount and
/// the rootfs's own `/dev` is not touched.
fn mounts_dev(spec: &Spec) -> bool {
    spec.mounts().as_ref().is_some_and(|mounts| {
        mounts
            .iter()
            .any(|m| normalised(m.destination()) == Path::new("/dev"))
    })
}

fn normalised(path: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn cstring(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn open_dir_at(dir: Option<&OwnedFd>, name: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(name.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is a NUL-terminated path that outlives the call; openat has no other
    // preconditions, and a non-negative result is a new descriptor we own.
    let fd = unsafe {
        libc::openat(
            at,
            c.as_ptr(),
            libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_RDONLY,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The file type of `name` in `dir`, without following a link; None if it does not exist.
fn kind_at(dir: &OwnedFd, name: &str) -> io::Result<Option<(libc::mode_t, i64)>> {
    let c = cstring(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `c` is NUL-terminated, `st` is writable storage for one stat.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: fstatat succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(Some((st.st_mode & libc::S_IFMT, st.st_size)))
}

fn unlink_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: `c` is NUL-terminated; unlinkat of a non-directory entry.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The names of the device nodes libcontainer will create directly in `/dev`: the defaults
/// and the spec's `linux.devices` one level below `/dev`. Deeper ones get their directories
/// from libcontainer itself and are left as they are.
fn device_names(spec: &Spec) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_DEVICES.iter().map(|s| s.to_string()).collect();
    if let Some(devices) = spec.linux().as_ref().and_then(|l| l.devices().as_ref()) {
        for device in devices {
            let path = normalised(device.path());
            if let Ok(rest) = path.strip_prefix("/dev") {
                let mut parts = rest.components();
                if let (Some(Component::Normal(name)), None) = (parts.next(), parts.next()) {
                    names.push(name.to_string_lossy().into_owned());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// [`prepare_dev`] for the root filesystem that `spec` names in `bundle`.
pub fn prepare_bundle_dev(bundle: &Path, spec: &Spec) -> Result<usize, DevSetupError> {
    match crate::prepare::rootfs_of(bundle, spec) {
        Some(rootfs) => prepare_dev(&rootfs, spec),
        None => Ok(0),
    }
}

/// Prepares `rootfs/dev` for libcontainer as described in the module documentation. Returns
/// how many stale entries were removed. Does nothing when the spec mounts `/dev`.
pub fn prepare_dev(rootfs: &Path, spec: &Spec) -> Result<usize, DevSetupError> {
    if mounts_dev(spec) {
        return Ok(0);
    }
    let root = open_dir_at(None, rootfs).map_err(|e| fail(rootfs, "", e))?;
    let dev_name = cstring("dev").map_err(|e| fail(rootfs, "/dev", e))?;
    // SAFETY: `dev_name` is NUL-terminated and `root` an open directory.
    if unsafe { libc::mkdirat(root.as_raw_fd(), dev_name.as_ptr(), 0o755) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(fail(rootfs, "/dev", e));
        }
    }
    if let Some((libc::S_IFLNK, _)) = kind_at(&root, "dev").map_err(|e| fail(rootfs, "/dev", e))? {
        return Err(fail(
            rootfs,
            "/dev",
            io::Error::other("is a symbolic link; refusing to prepare devices through it"),
        ));
    }
    let dev = open_dir_at(Some(&root), Path::new("dev")).map_err(|e| fail(rootfs, "/dev", e))?;
    let mut removed = 0;
    for name in DEFAULT_LINKS {
        let at = |e| fail(rootfs, &format!("/dev/{name}"), e);
        if let Some((libc::S_IFLNK, _)) = kind_at(&dev, name).map_err(at)? {
            unlink_at(&dev, name).map_err(at)?;
            removed += 1;
        }
    }
    for name in device_names(spec) {
        let at = |e| fail(rootfs, &format!("/dev/{name}"), e);
        let stale = match kind_at(&dev, &name).map_err(at)? {
            Some((libc::S_IFCHR | libc::S_IFBLK, _)) => true,
            // An empty file is the mount point a bind-mounted device left behind.
            Some((libc::S_IFREG, 0)) => true,
            _ => false,
        };
        if stale {
            unlink_at(&dev, &name).map_err(at)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmbay_shim_core::oci_spec::runtime::{MountBuilder, SpecBuilder};

    fn spec_without_dev_mount() -> Spec {
        SpecBuilder::default().mounts(vec![]).build().unwrap()
    }

    #[test]
    fn creates_a_missing_dev_and_removes_only_default_links_and_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path();
        assert_eq!(prepare_dev(rootfs, &spec_without_dev_mount()).unwrap(), 0);
        assert!(rootfs.join("dev").is_dir());

        let dev = rootfs.join("dev");
        std::os::unix::fs::symlink("/proc/self/fd", dev.join("fd")).unwrap();
        std::os::unix::fs::symlink("/proc/self/fd/1", dev.join("stdout")).unwrap();
        std::fs::write(dev.join("null"), b"").unwrap();
        std::fs::write(dev.join("zero"), b"not a placeholder").unwrap();
        std::fs::write(dev.join("keepme"), b"").unwrap();
        std::os::unix::fs::symlink("elsewhere", dev.join("mine")).unwrap();

        assert_eq!(prepare_dev(rootfs, &spec_without_dev_mount()).unwrap(), 3);
        assert!(dev.join("fd").symlink_metadata().is_err());
        assert!(dev.join("stdout").symlink_metadata().is_err());
        assert!(!dev.join("null").exists());
        assert_eq!(
            std::fs::read(dev.join("zero")).unwrap(),
            b"not a placeholder"
        );
        assert!(dev.join("keepme").exists());
        assert!(dev.join("mine").symlink_metadata().is_ok());
    }

    #[test]
    fn a_dev_mount_leaves_the_rootfs_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mount = MountBuilder::default()
            .destination("/dev/")
            .typ("tmpfs")
            .source("tmpfs")
            .build()
            .unwrap();
        let spec = SpecBuilder::default().mounts(vec![mount]).build().unwrap();
        assert_eq!(prepare_dev(dir.path(), &spec).unwrap(), 0);
        assert!(!dir.path().join("dev").exists());
    }

    #[test]
    fn a_symlinked_dev_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/proc/self/fd", outside.path().join("fd")).unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        std::os::unix::fs::symlink(outside.path(), rootfs.join("dev")).unwrap();
        let err = prepare_dev(&rootfs, &spec_without_dev_mount()).unwrap_err();
        assert!(err.to_string().contains("/dev"), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(outside.path().join("fd").symlink_metadata().is_ok());
    }
}
