//! Deleting a container when systemd has already dropped its scope.
//!
//! With the systemd cgroup driver a container's cgroup is a transient scope unit, which
//! systemd garbage-collects by itself once its last process exits. A delete that comes after
//! that (containerd's, or `wasmbay-runtime delete` after the container was killed) asks
//! systemd to stop a unit it no longer knows, and libcontainer gives up there, before the
//! poststop hooks and before removing the container's state: the container could then never be
//! deleted. runc takes "unit not loaded" as already stopped, and so does this.
//!
//! The state directory's removal can also race a `kill` of the same container: the signal
//! ends the guest, the foreground `run` deletes, and the kill's save of the new status writes
//! `state.json` into the directory being removed ("Directory not empty"). Everything else of
//! the delete is done by then, so the removal alone is tried again, a bounded few times.

use libcontainer::config::YoukiConfig;
use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;

/// libcontainer's delete, finished here when it failed only because systemd had already
/// removed the container's scope.
pub fn delete_container(container: &mut Container, force: bool) -> Result<(), LibcontainerError> {
    delete_state(container, force)?;
    if let Some(state_root) = container.root.parent() {
        crate::userns_bundle::remove_bundle(state_root, container.id());
    }
    Ok(())
}

fn delete_state(container: &mut Container, force: bool) -> Result<(), LibcontainerError> {
    match container.delete(force) {
        Ok(()) => Ok(()),
        Err(e) if container.systemd() && scope_already_gone(&e) => {
            tracing::debug!(
                id = container.id(),
                "systemd already removed the scope; finishing the delete"
            );
            finish_delete(container)
        }
        Err(LibcontainerError::OtherIO(e)) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            tracing::debug!(
                id = container.id(),
                "the state directory filled while being removed (a concurrent save); again"
            );
            remove_state_dir(container)
        }
        Err(e) => Err(e),
    }
}

/// How often the state directory's removal is tried after a concurrent save refilled it.
const REMOVE_ATTEMPTS: u32 = 5;

fn remove_state_dir(container: &Container) -> Result<(), LibcontainerError> {
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir_all(&container.root) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && attempt < REMOVE_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(LibcontainerError::OtherIO(e)),
        }
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
    remove_state_dir(container)
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
