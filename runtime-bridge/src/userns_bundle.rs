//! The bundle libcontainer reads for a container in a user namespace, made to work as runc's
//! does on the same spec.
//!
//! Two things runc does for such a container that libcontainer does not:
//! - **Bind sources the container's root cannot reach.** libcontainer resolves a bind mount's
//!   source inside the new user namespace, as the container's root, which on the host is an
//!   unprivileged id: the CRI's bind sources for a `hostUsers: false` pod (its `/dev/shm`,
//!   `/etc/hosts`, `/etc/resolv.conf`, below containerd's private state directories) fail
//!   with EACCES and so does the whole rootfs. runc opens them before it enters the
//!   namespace. Here each bind source is bound, on the host and before the container is made,
//!   to a staging point in this container's own directory (traversable by anyone, listable by
//!   none), and the spec names that instead; the staging mounts go again once the container
//!   holds its own mounts ([`UsernsBundle`]'s drop).
//! - **sysfs without a network namespace of its own.** Mounting sysfs needs `CAP_SYS_ADMIN`
//!   over the user namespace that owns the network namespace, so with a user namespace and a
//!   joined or host network namespace it fails with EPERM; that mount becomes a recursive bind
//!   of the host's `/sys`, read-only when the mount asked for it.
//!
//! libcontainer reads the spec from the bundle, so the rewritten spec goes into a bundle of its
//! own (`<root>/<id>.bundle/config.json`, its rootfs path made absolute), which
//! [`remove_bundle`] deletes with the container. A spec without a user namespace is untouched.

use std::ffi::CString;
use std::fs::Permissions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use wasmbay_shim_core::oci_spec::runtime::{
    LinuxNamespace, LinuxNamespaceType, Mount, MountBuilder, Spec,
};

/// What went wrong, naming the file or mount at fault.
#[derive(Debug, thiserror::Error)]
pub enum UsernsBundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Spec { path: PathBuf, message: String },
}

fn namespaces(spec: &Spec) -> &[LinuxNamespace] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
}

/// Whether the container has a user namespace, new or joined.
pub fn has_user_namespace(spec: &Spec) -> bool {
    namespaces(spec)
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::User)
}

/// Whether the spec mounts sysfs where the kernel will refuse it: it has a user namespace
/// (new or joined) and no new network namespace of its own.
pub fn needs_host_sysfs(spec: &Spec) -> bool {
    let new_netns = namespaces(spec)
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::Network && ns.path().is_none());
    has_user_namespace(spec) && !new_netns && spec.mounts().iter().flatten().any(is_sysfs)
}

fn is_sysfs(mount: &Mount) -> bool {
    mount.typ().as_deref() == Some("sysfs")
}

fn is_bind(mount: &Mount) -> bool {
    mount.typ().as_deref() == Some("bind")
        || mount
            .options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// The bind of the host's `/sys` that replaces a sysfs mount: recursive (the host's cgroup
/// and other mounts below `/sys` come along, as with runc), read-only if the mount was, and
/// never with devices, setuid or exec.
fn host_sysfs(mount: &Mount) -> Result<Mount, String> {
    let read_only = mount
        .options()
        .iter()
        .flatten()
        .any(|option| option == "ro");
    let mut options = vec![
        "rbind".to_string(),
        "nosuid".to_string(),
        "noexec".to_string(),
        "nodev".to_string(),
    ];
    if read_only {
        options.push("ro".to_string());
    }
    MountBuilder::default()
        .destination(mount.destination().clone())
        .typ("bind")
        .source("/sys")
        .options(options)
        .build()
        .map_err(|e| e.to_string())
}

/// Where a container's rewritten bundle lives.
fn bundle_dir(state_root: &Path, id: &str) -> PathBuf {
    state_root.join(format!("{id}.bundle"))
}

/// The bundle libcontainer reads for one container, and the staging mounts it names, which
/// are detached when this is dropped (after the create: the container has its own copies).
#[derive(Debug)]
pub struct UsernsBundle {
    dir: PathBuf,
    staged: Vec<PathBuf>,
}

impl UsernsBundle {
    /// `bundle` itself when the spec has no user namespace, else a bundle of its own under
    /// `state_root` with bind sources staged and sysfs bound from the host where needed.
    pub fn prepare(
        bundle: &Path,
        spec: &Spec,
        state_root: &Path,
        id: &str,
    ) -> Result<UsernsBundle, UsernsBundleError> {
        let mut this = UsernsBundle {
            dir: bundle.to_path_buf(),
            staged: Vec::new(),
        };
        if !has_user_namespace(spec) {
            return Ok(this);
        }
        let config = bundle.join("config.json");
        let dir = bundle_dir(state_root, id);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| UsernsBundleError::Io { path, source }
        };
        std::fs::create_dir_all(dir.join("mounts")).map_err(io(&dir))?;
        for path in [&dir, &dir.join("mounts")] {
            std::fs::set_permissions(path, Permissions::from_mode(0o711)).map_err(io(path))?;
        }
        this.dir = dir.clone();
        let host_sysfs_needed = needs_host_sysfs(spec);
        let mut spec = spec.clone();
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for (index, mount) in mounts.iter_mut().enumerate() {
            let at = |message: String| UsernsBundleError::Spec {
                path: config.clone(),
                message: format!("mount at {}: {message}", mount.destination().display()),
            };
            if host_sysfs_needed && is_sysfs(mount) {
                *mount = host_sysfs(mount).map_err(at)?;
                continue;
            }
            if !is_bind(mount) {
                continue;
            }
            let Some(source) = mount.source().clone() else {
                continue;
            };
            let staged = dir.join("mounts").join(index.to_string());
            stage(&source, &staged)
                .map_err(|e| at(format!("staging {}: {e}", source.display())))?;
            this.staged.push(staged.clone());
            mount.set_source(Some(staged));
        }
        spec.set_mounts(Some(mounts));
        // The rootfs path is relative to the bundle it came from.
        if let Some(mut root) = spec.root().clone() {
            if root.path().is_relative() {
                root.set_path(bundle.join(root.path()));
            }
            spec.set_root(Some(root));
        }
        let written = dir.join("config.json");
        spec.save(&written).map_err(|e| UsernsBundleError::Spec {
            path: written.clone(),
            message: e.to_string(),
        })?;
        tracing::debug!(
            id,
            bundle = %dir.display(),
            staged = this.staged.len(),
            host_sysfs = host_sysfs_needed,
            "user namespace: bundle rewritten"
        );
        Ok(this)
    }

    /// The bundle to give libcontainer.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// Binds `source` (a directory or a file, resolved here with the host's privileges) at
/// `staged`, a new empty entry of the same kind.
fn stage(source: &Path, staged: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(source)?;
    if meta.is_dir() {
        std::fs::create_dir(staged)?;
    } else {
        std::fs::File::create(staged)?;
    }
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (src, dst) = (c(source)?, c(staged)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call; a recursive bind
    // changes only this mount namespace.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for UsernsBundle {
    fn drop(&mut self) {
        for staged in &self.staged {
            let Ok(path) = CString::new(staged.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: a NUL-terminated path that outlives the call. Detached: the
            // container's own mount namespace keeps its copy.
            if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
                tracing::warn!(
                    staged = %staged.display(),
                    "detaching a staging mount: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Removes container `id`'s rewritten bundle, if it has one.
pub fn remove_bundle(state_root: &Path, id: &str) {
    let dir = bundle_dir(state_root, id);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(bundle = %dir.display(), "removing: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion": "1.0.2", "root": {{"path": "rootfs", "readonly": true}},
                "mounts": [
                    {{"destination": "/proc", "type": "proc", "source": "proc"}},
                    {{"destination": "/sys", "type": "sysfs", "source": "sysfs",
                      "options": ["nosuid", "noexec", "nodev", "ro"]}}
                ],
                "linux": {{"namespaces": [{namespaces}]}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn only_a_user_namespace_without_a_new_network_namespace_needs_the_host_sysfs() {
        let user = r#"{"type": "user"}"#;
        let joined_user = r#"{"type": "user", "path": "/proc/1/ns/user"}"#;
        let net = r#"{"type": "network"}"#;
        let joined_net = r#"{"type": "network", "path": "/var/run/netns/pod"}"#;
        let mount = r#"{"type": "mount"}"#;
        assert!(!needs_host_sysfs(&spec(mount)));
        assert!(!needs_host_sysfs(&spec(&format!("{mount}, {net}"))));
        assert!(!needs_host_sysfs(&spec(&format!("{user}, {net}"))));
        assert!(needs_host_sysfs(&spec(&format!("{user}, {joined_net}"))));
        assert!(needs_host_sysfs(&spec(&format!(
            "{joined_user}, {joined_net}"
        ))));
        assert!(needs_host_sysfs(&spec(&format!("{user}, {mount}"))));
    }

    #[test]
    fn the_rewritten_bundle_binds_sys_read_only_and_keeps_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        let state = dir.path().join("state");
        let original = spec(r#"{"type": "user"}, {"type": "network", "path": "/run/netns/x"}"#);
        let prepared = UsernsBundle::prepare(&bundle, &original, &state, "c1").unwrap();
        let used = prepared.path().to_path_buf();
        assert_eq!(used, state.join("c1.bundle"));
        let written = Spec::load(used.join("config.json")).unwrap();
        assert_eq!(
            written.root().as_ref().unwrap().path(),
            &bundle.join("rootfs")
        );
        let mounts = written.mounts().as_ref().unwrap();
        assert_eq!(mounts[0], original.mounts().as_ref().unwrap()[0]);
        let sys = &mounts[1];
        assert_eq!(sys.typ().as_deref(), Some("bind"));
        assert_eq!(sys.source().as_deref(), Some(Path::new("/sys")));
        let options = sys.options().as_ref().unwrap();
        assert!(options.iter().any(|o| o == "rbind") && options.iter().any(|o| o == "ro"));
        drop(prepared);
        remove_bundle(&state, "c1");
        assert!(!used.exists());
    }

    #[test]
    fn a_spec_without_a_user_namespace_keeps_its_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let original = spec(r#"{"type": "mount"}, {"type": "network", "path": "/run/netns/x"}"#);
        let prepared =
            UsernsBundle::prepare(dir.path(), &original, &dir.path().join("state"), "c2").unwrap();
        assert_eq!(prepared.path(), dir.path());
        assert!(!dir.path().join("state").exists());
    }
}
