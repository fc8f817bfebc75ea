//! Deleting a container when systemd has already dropped its scope.
//!
//! With the systemd cgroup driver a container's cgroup is a transient scope unit, which
//! systemd garbage-collects by itself once its last process exits. A delete that comes after
//! that (containerd's, or `wasmbay-runtime delete` after the container was killed) asks
//! systemd to stop a unit it no longer knows, and libcontainer gives up there, before the
//! poststop hooks and before removing the container's state: the container could then never be
//! deleted. runc takes "unit not loaded" as already stopped, and so does this.

use libcontainer::config::YoukiConfig;
use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;

/// libcontainer's delete, finished here when it failed only because systemd had already
/// removed the container's scope.
pub fn delete_container(container: &mut Container, force: bool) -> Result<(), LibcontainerError> {
    match container.delete(force) {
        Ok(()) => Ok(()),
        Err(e) if container.systemd() && scope_already_gone(&e) => {
            tracing::debug!(
                id = container.id(),
                "systemd already removed the scope; finishing the delete"
            );
            finish_delete(container)
        }
        Err(e) => Err(e),
    }
}

/// Whether `error` is systemd's answer for a unit it does not have (D-Bus
/// `org.freedesktop.systemd1.NoSuchUnit`, whose text is "Unit NAME not loaded.").
fn scope_already_gone(error: &LibcontainerError) -> bool {
    crate::zygote::chain(error).contains("not loaded")
}

/// What libcontainer's delete does after removing the cgroup: the poststop hooks, then the
/// state directory.
fn finish_delete(container: &mut Container) -> Result<(), LibcontainerError> {
    if let Ok(config) = YoukiConfig::load(&container.root) {
        if let Some(hooks) = config.hooks.as_ref() {
            libcontainer::hooks::run_hooks(
                hooks.poststop().as_ref(),
                Some(&container.state),
                None,
                None,
                None,
            )?;
        }
    }
    match std::fs::remove_dir_all(&container.root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LibcontainerError::OtherIO(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::scope_already_gone;
    use libcontainer::error::LibcontainerError;

    #[test]
    fn only_systemds_unknown_unit_answer_counts_as_gone() {
        let gone = LibcontainerError::Other(
            "failed to stop unit wbrt-x.scope: dbus error: Unit wbrt-x.scope not loaded.".into(),
        );
        assert!(scope_already_gone(&gone));
        let other = LibcontainerError::Other("failed to stop unit: access denied".into());
        assert!(!scope_already_gone(&other));
    }
}
