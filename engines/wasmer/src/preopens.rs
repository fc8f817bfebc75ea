//! Preopens numbered from descriptor 3, in the order configured, with no extra ones.
//!
//! WASI guests (wasi-libc, Rust's std, the wasi-testsuite) expect what wasmtime gives: the
//! first configured preopen is descriptor 3, the next 4, and so on. wasix instead always opens
//! its own virtual root (a read-only directory listing the preopens, named `/`) as descriptor
//! 3 and reports it as a preopen, so ours would start at 4 and a guest with no preopens would
//! still find one.
//!
//! Renumbering the descriptor table alone is not enough: wasix hard-codes descriptor 3
//! (`VIRTUAL_ROOT_FD`) as "the root inode" in path resolution, `fd_prestat_*` and for absolute
//! paths, whatever the table holds. So after wasix has made its preopens (the builder's
//! `setup_fs` hook), this module makes the first configured preopen that root inode and moves
//! every preopen's descriptor down by one over wasix's root. The first preopen is mounted at
//! `/` of the mount file system (see `wasi_env`), so absolute paths wasix builds while
//! following symlinks (mount point + target) resolve from it as before.
//!
//! wasix's virtual root also made `..` at the top of a preopen lead to the root, where a name
//! fell back to the preopen mounted as `/`, so `../x` could name `x` inside the sandbox instead
//! of failing. Each preopen's parent is therefore set to an inode that no longer exists, and
//! wasix answers `..` there with `EACCES`, as WASI wants: nothing above a preopen is reachable.
//!
//! Each preopen descriptor also gets directory rights: wasix grants a writable preopen
//! `FD_WRITE` (and `FD_ALLOCATE`, `FD_FILESTAT_SET_SIZE`) in its base rights, which are rights
//! over a file's contents that a directory descriptor cannot have. Guests reopen a preopen
//! with the rights it reports (the wasi-testsuite opens `.` with them), and wasix refuses to
//! open a directory with `FD_WRITE` (`EISDIR`). Those rights stay in the inheriting set, so
//! files opened under the preopen still get them. The first preopen's rights are recorded for
//! [`crate::wrappers`], since wasix answers `fd_fdstat_get(3)` without its descriptor table.

use std::collections::HashMap;
use std::sync::RwLock;

use wasmer_wasix::fs::{InodeVal, Kind};
use wasmer_wasix::wasmer_wasix_types::wasi::{Filestat, Filetype, Rights};
use wasmer_wasix::{WasiFs, WasiInodes, VIRTUAL_ROOT_FD};

use crate::wrappers::{RootFd, RootRights};

/// Rights over a file's contents: a directory descriptor never has them itself, only passes
/// them on to the files opened under it.
const FILE_CONTENT_RIGHTS: Rights = Rights::FD_WRITE
    .union(Rights::FD_ALLOCATE)
    .union(Rights::FD_FILESTAT_SET_SIZE);

/// Inode number of the stand-in inodes made here. wasix numbers its own inodes from small
/// constants and path hashes; this one only keys a weak entry in its lookup table.
const DETACHED_INO: u64 = u64::MAX;

/// What `WasiEnvBuilder::setup_fs` takes (wasix does not export its alias).
pub(crate) type SetupFsFn = Box<dyn Fn(&WasiInodes, &mut WasiFs) -> Result<(), String> + Send>;

/// The builder's `setup_fs` hook (see the module docs); `guest_names` are the configured
/// preopens' guest names, in order; `root` receives what descriptor 3 holds.
pub(crate) fn hook(guest_names: Vec<String>, root: RootFd) -> SetupFsFn {
    Box::new(move |inodes, fs| renumber(inodes, fs, &guest_names, &root))
}

fn renumber(
    inodes: &WasiInodes,
    fs: &mut WasiFs,
    guest_names: &[String],
    root: &RootFd,
) -> Result<(), String> {
    let poisoned = |what: &str| format!("wasix {what} lock poisoned");
    // An empty directory that is not a preopen: the root when nothing is preopened, so that
    // descriptor 3 is not reported as one; otherwise dropped at the end, which leaves the
    // preopens' parent links dangling (`..` at a preopen's top is then EACCES).
    let detached = inodes.add_inode_val(InodeVal {
        stat: RwLock::new(Filestat {
            st_filetype: Filetype::Directory,
            st_ino: DETACHED_INO,
            ..Filestat::default()
        }),
        is_preopened: false,
        name: RwLock::new("".into()),
        kind: RwLock::new(Kind::Root {
            entries: HashMap::new(),
        }),
    });
    let no_parent = detached.downgrade();

    let mut fd_map = fs
        .fd_map
        .write()
        .map_err(|_| poisoned("descriptor table"))?;
    let mut preopen_fds = fs
        .preopen_fds
        .write()
        .map_err(|_| poisoned("preopen list"))?;
    // wasix made its root first (descriptor 3), then ours in the order they were added.
    let ours: Vec<_> = preopen_fds
        .iter()
        .filter(|&&fd| fd != VIRTUAL_ROOT_FD)
        .filter_map(|&fd| fd_map.remove(fd))
        .collect();
    fd_map.remove(VIRTUAL_ROOT_FD);
    preopen_fds.clear();

    let mut first = None;
    let mut root_rights = None;
    for (index, mut fd) in ours.into_iter().enumerate() {
        let number = VIRTUAL_ROOT_FD + index as u32;
        fd.inner.rights.remove(FILE_CONTENT_RIGHTS);
        if index == 0 {
            root_rights = Some(RootRights {
                flags: fd.inner.flags,
                base: fd.inner.rights,
                inheriting: fd.inner.rights_inheriting,
            });
        }
        {
            let mut kind = fd.inode.kind.write().map_err(|_| poisoned("inode"))?;
            if let Kind::Dir { parent, .. } = &mut *kind {
                *parent = no_parent.clone();
            }
        }
        // wasix names a preopen by its alias with leading `/` removed (`/` becomes ``), but
        // `fd_prestat_dir_name` must give the guest name as configured: wasi-libc matches
        // absolute paths against it.
        if let Some(name) = guest_names.get(index) {
            *fd.inode.name.write().map_err(|_| poisoned("inode name"))? = name.clone().into();
        }
        if first.is_none() {
            first = Some(fd.inode.clone());
        }
        if !fd_map.insert(true, number, fd) {
            return Err(format!(
                "descriptor {number} is taken; cannot number preopens from 3"
            ));
        }
        preopen_fds.push(number);
    }
    drop(fd_map);
    drop(preopen_fds);
    fs.root_inode = first.unwrap_or(detached);
    root.set(root_rights);
    Ok(())
}
