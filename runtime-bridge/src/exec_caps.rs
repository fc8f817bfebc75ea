//! The capability change an `execve` would make, applied to a wasm init that never execs.
//!
//! runc sets the spec's capability sets and then execs the container's program; the kernel's
//! exec rules then recompute them. For a non-root user the program keeps only its ambient
//! capabilities: a pod's container running as uid 1000 with the default set ends with empty
//! permitted and effective sets. A wasm init runs the guest in the process libcontainer set up,
//! so without this it kept every capability in the spec's permitted and effective sets, more
//! than runc's process gets for the same spec.

use caps::{CapSet, CapsHashSet};

/// `SECBIT_NOROOT`: uid 0 gets no capabilities from exec.
const SECBIT_NOROOT: libc::c_int = 1;

/// The sets after exec, from the sets before it (no file capabilities: a wasm module has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCaps {
    pub permitted: CapsHashSet,
    pub effective: CapsHashSet,
    pub ambient: CapsHashSet,
}

/// What the process holds and the facts exec looks at.
#[derive(Debug, Clone)]
pub struct Before {
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub bounding: CapsHashSet,
    pub ambient: CapsHashSet,
    pub ruid: u32,
    pub euid: u32,
    pub no_root_privilege: bool,
}

/// The kernel's rule (`cap_bprm_creds_from_file`) for a program without file capabilities: uid
/// 0 gets bounding ∪ inheritable (all of them effective, if euid is 0), others nothing; both
/// add the ambient set. Nothing beyond the old permitted set is kept: under no_new_privs exec
/// grants nothing more, and a capset could not raise it anyway.
pub fn after_exec(before: &Before) -> ExecCaps {
    let root = !before.no_root_privilege && (before.euid == 0 || before.ruid == 0);
    let mut permitted: CapsHashSet = if root {
        before
            .bounding
            .union(&before.inheritable)
            .copied()
            .collect()
    } else {
        CapsHashSet::new()
    };
    permitted.extend(before.ambient.iter().copied());
    permitted.retain(|cap| before.permitted.contains(cap));
    let ambient: CapsHashSet = before.ambient.intersection(&permitted).copied().collect();
    let effective = if root && before.euid == 0 {
        permitted.clone()
    } else {
        ambient.clone()
    };
    ExecCaps {
        permitted,
        effective,
        ambient,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot drop capabilities as exec would: {0}")]
pub struct ExecCapsError(String);

/// Applies [`after_exec`] to this process: effective first, then permitted (the kernel keeps
/// effective within permitted, and drops ambient capabilities no longer permitted).
pub fn drop_as_exec_would() -> Result<(), ExecCapsError> {
    let err = |e: caps::errors::CapsError| ExecCapsError(e.to_string());
    // SAFETY: getuid/geteuid have no preconditions; prctl reads only this process's flags.
    let (ruid, euid, securebits) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::prctl(libc::PR_GET_SECUREBITS),
        )
    };
    let before = Before {
        permitted: caps::read(None, CapSet::Permitted).map_err(err)?,
        inheritable: caps::read(None, CapSet::Inheritable).map_err(err)?,
        bounding: caps::read(None, CapSet::Bounding).map_err(err)?,
        ambient: caps::read(None, CapSet::Ambient).map_err(err)?,
        ruid,
        euid,
        no_root_privilege: securebits >= 0 && securebits & SECBIT_NOROOT != 0,
    };
    let after = after_exec(&before);
    caps::set(None, CapSet::Effective, &after.effective).map_err(err)?;
    caps::set(None, CapSet::Permitted, &after.permitted).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use caps::Capability::{CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN};

    fn set(caps: &[caps::Capability]) -> CapsHashSet {
        caps.iter().copied().collect()
    }

    fn before(uid: u32) -> Before {
        let pod = set(&[CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE]);
        Before {
            permitted: pod.clone(),
            inheritable: CapsHashSet::new(),
            bounding: pod,
            ambient: CapsHashSet::new(),
            ruid: uid,
            euid: uid,
            no_root_privilege: false,
        }
    }

    #[test]
    fn a_non_root_user_keeps_only_ambient_capabilities() {
        let mut b = before(1000);
        assert_eq!(after_exec(&b).permitted, CapsHashSet::new());
        assert_eq!(after_exec(&b).effective, CapsHashSet::new());
        b.ambient = set(&[CAP_NET_BIND_SERVICE]);
        let after = after_exec(&b);
        assert_eq!(after.permitted, set(&[CAP_NET_BIND_SERVICE]));
        assert_eq!(after.effective, set(&[CAP_NET_BIND_SERVICE]));
    }

    #[test]
    fn root_keeps_its_bounding_set_but_never_gains() {
        let b = before(0);
        let after = after_exec(&b);
        assert_eq!(after.permitted, b.bounding);
        assert_eq!(after.effective, b.bounding);
        // A bounding capability the process was not permitted is not gained.
        let mut wider = before(0);
        wider.bounding.insert(CAP_SYS_ADMIN);
        assert!(!after_exec(&wider).permitted.contains(&CAP_SYS_ADMIN));
    }

    #[test]
    fn securebit_noroot_treats_root_as_anyone() {
        let mut b = before(0);
        b.no_root_privilege = true;
        assert_eq!(after_exec(&b).permitted, CapsHashSet::new());
    }
}
