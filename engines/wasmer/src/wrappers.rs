//! Preview 1 calls answered by wrappers around wasix's own, where wasix answers wrongly.
//!
//! *Descriptor 3.* wasix answers `fd_fdstat_get` for descriptor 3 without looking at its
//! descriptor table (`WasiFs::fdstat`): 3 is its own virtual root there, a directory with every
//! right, and the answer is the same whether 3 is open or not. Here descriptor 3 is the first
//! configured preopen (see [`crate::preopens`]) or nothing at all, and guests act on what it
//! reports: the wasi-testsuite reopens its preopen (`.`) with the preopen's reported rights,
//! and wasix refuses a directory opened with `FD_WRITE` (`EISDIR`), so "every right" failed
//! every such program. wasix keeps its descriptor table private once set up, so what descriptor
//! 3 holds is recorded when the preopens are made ([`RootFd::set`]) and kept current by
//! wrapping the calls that change it: `fd_fdstat_set_rights` narrows the rights, `fd_close` of 3
//! and `fd_renumber` from 3 leave it empty, and `fd_renumber` to 3 makes it unknown. While it
//! is known, `fd_fdstat_get(3)` answers from the record (or `EBADF` when empty); once unknown,
//! wasix's own answer stands. No other preview 1 call opens descriptor 3 without a directory to
//! open under, and every directory is a preopen.
//!
//! *Sockets.* wasix's `sock_shutdown` checks the descriptor's `SOCK_SHUTDOWN` right before
//! whether it is a socket, so a non-socket without that right (standard streams) gets `EACCES`
//! instead of `ENOTSOCK`; and an empty descriptor 3 is its virtual root to it (`WasiFs::get_fd`
//! makes one up), so it gets `ENOTSOCK` instead of `EBADF`. A WASI preview 1 guest of wasmbay
//! has no sockets at all (no network, no preopened sockets; only wasix's own `sock_open` makes
//! one), so for a module that imports nothing from wasix's namespaces an open descriptor's
//! refusal means "not a socket"; an empty descriptor 3 is `EBADF` for every module. Other
//! calls on an empty descriptor 3 still reach wasix's made-up root.
//!
//! *Errnos.* Other answers wasix gives differ from WASI preview 1's, each described at its
//! wrapper: refusals for a missing right ([`checked_call`]), seeking a directory
//! ([`FILES_ONLY`]), a short preopen name buffer, `path_readlink` truncation, `path_symlink`
//! refusals and `path_rename` errors. Wrappers that need an answer wasix only writes to guest
//! memory borrow some of it ([`with_scratch`]).

use std::sync::{Arc, Mutex, PoisonError};

use wasmer::{
    AsStoreMut, Function, FunctionEnv, FunctionEnvMut, Imports, Memory, Memory32, RuntimeError,
    StoreMut, TypedFunction, Value, WasmPtr,
};
use wasmer_wasix::wasmer_wasix_types::wasi::{Errno, Fdflags, Fdstat, Filestat, Filetype, Rights};
use wasmer_wasix::VIRTUAL_ROOT_FD;

/// The preview 1 namespaces whose calls are wrapped (`wasi_unstable` has the same layouts for
/// these calls).
const NAMESPACES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

const ROOT: i32 = VIRTUAL_ROOT_FD as i32;

/// The rights and flags of the preopen at descriptor 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RootRights {
    pub(crate) flags: Fdflags,
    pub(crate) base: Rights,
    pub(crate) inheriting: Rights,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not known here (nothing recorded yet, or another descriptor was renumbered to 3).
    Unknown,
    Empty,
    Preopen(RootRights),
}

/// What descriptor 3 holds for one run, shared by the preopen hook and the wrapped calls.
#[derive(Clone)]
pub(crate) struct RootFd(Arc<Mutex<Slot>>);

impl Default for RootFd {
    fn default() -> Self {
        RootFd(Arc::new(Mutex::new(Slot::Unknown)))
    }
}

impl RootFd {
    /// Records the preopen put at descriptor 3, or that there is none.
    pub(crate) fn set(&self, rights: Option<RootRights>) {
        *self.lock() = match rights {
            Some(rights) => Slot::Preopen(rights),
            None => Slot::Empty,
        };
    }

    fn get(&self) -> Slot {
        *self.lock()
    }

    fn replace(&self, slot: Slot) {
        *self.lock() = slot;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        // The slot is a plain value: a panic elsewhere cannot leave it half written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the wrappers of one namespace call through to, and the guest memory they write to.
#[derive(Clone)]
struct Wrapped {
    root: RootFd,
    fdstat_get: TypedFunction<(i32, i32), i32>,
    set_rights: TypedFunction<(i32, i64, i64), i32>,
    close: TypedFunction<i32, i32>,
    renumber: TypedFunction<(i32, i32), i32>,
    sock_shutdown: TypedFunction<(i32, i32), i32>,
    prestat_dir_name: TypedFunction<(i32, i32, i32), i32>,
    /// `path_filestat_get`: whether a name exists, and what it is.
    filestat_get: TypedFunction<(i32, i32, i32, i32, i32), i32>,
    readlink: TypedFunction<(i32, i32, i32, i32, i32, i32), i32>,
    symlink: TypedFunction<(i32, i32, i32, i32, i32), i32>,
    rename: TypedFunction<(i32, i32, i32, i32, i32, i32), i32>,
    /// Whether the guest can make sockets (it imports wasix's `sock_open` namespaces).
    sockets: bool,
    memory: Option<Memory>,
}

/// Makes the wrappers ready to write guest memory once the instance exists.
pub(crate) struct Installed {
    envs: Vec<FunctionEnv<Wrapped>>,
    checked: Vec<FunctionEnv<Checked>>,
}

impl Installed {
    pub(crate) fn set_memory(&self, store: &mut impl AsStoreMut, memory: &Memory) {
        for env in &self.envs {
            env.as_mut(store).memory = Some(memory.clone());
        }
        for env in &self.checked {
            env.as_mut(store).wrapped.memory = Some(memory.clone());
        }
    }
}

/// Replaces `fd_fdstat_get`, `fd_fdstat_set_rights`, `fd_close`, `fd_renumber`,
/// `sock_shutdown`, `fd_prestat_dir_name`, `path_readlink`, `path_symlink` and `path_rename` of
/// every preview 1 namespace in `imports` with wrappers around wasix's own, and wraps the other
/// calls that check a descriptor's rights (see [`RIGHTS_CHECKS`]).
pub(crate) fn install(
    store: &mut impl AsStoreMut,
    module: &wasmer::Module,
    imports: &mut Imports,
    root: &RootFd,
) -> Result<Installed, String> {
    let sockets = module
        .imports()
        .any(|import| import.module().starts_with("wasix_"));
    let mut envs = Vec::new();
    let mut checked = Vec::new();
    for namespace in NAMESPACES {
        let original = |name: &str| match imports.get_export(namespace, name) {
            Some(wasmer::Extern::Function(function)) => Some(function),
            _ => None,
        };
        let (
            Some(fdstat_get),
            Some(set_rights),
            Some(close),
            Some(renumber),
            Some(shutdown),
            Some(prestat_dir_name),
            Some(filestat_get),
            Some(readlink),
            Some(symlink),
            Some(rename),
        ) = (
            original("fd_fdstat_get"),
            original("fd_fdstat_set_rights"),
            original("fd_close"),
            original("fd_renumber"),
            original("sock_shutdown"),
            original("fd_prestat_dir_name"),
            original("path_filestat_get"),
            original("path_readlink"),
            original("path_symlink"),
            original("path_rename"),
        )
        else {
            continue;
        };
        let typed = |e: RuntimeError| format!("wasix's {namespace} has another signature: {e}");
        let wrapped = Wrapped {
            root: root.clone(),
            fdstat_get: fdstat_get.typed(store).map_err(typed)?,
            set_rights: set_rights.typed(store).map_err(typed)?,
            close: close.typed(store).map_err(typed)?,
            renumber: renumber.typed(store).map_err(typed)?,
            sock_shutdown: shutdown.typed(store).map_err(typed)?,
            prestat_dir_name: prestat_dir_name.typed(store).map_err(typed)?,
            filestat_get: filestat_get.typed(store).map_err(typed)?,
            readlink: readlink.typed(store).map_err(typed)?,
            symlink: symlink.typed(store).map_err(typed)?,
            rename: rename.typed(store).map_err(typed)?,
            sockets,
            memory: None,
        };
        for &(name, checks) in RIGHTS_CHECKS {
            let Some(wasmer::Extern::Function(original)) = imports.get_export(namespace, name)
            else {
                continue;
            };
            let ty = original.ty(store);
            let env = FunctionEnv::new(
                store,
                Checked {
                    wrapped: wrapped.clone(),
                    original,
                    checks,
                    files_only: FILES_ONLY.contains(&name),
                },
            );
            imports.define(
                namespace,
                name,
                Function::new_with_env(store, &env, ty, checked_call),
            );
            checked.push(env);
        }
        let env = FunctionEnv::new(store, wrapped);
        let mut define = |name: &str, function: Function| imports.define(namespace, name, function);
        define(
            "fd_fdstat_get",
            Function::new_typed_with_env(store, &env, fd_fdstat_get),
        );
        define(
            "fd_fdstat_set_rights",
            Function::new_typed_with_env(store, &env, fd_fdstat_set_rights),
        );
        define(
            "fd_close",
            Function::new_typed_with_env(store, &env, fd_close),
        );
        define(
            "fd_renumber",
            Function::new_typed_with_env(store, &env, fd_renumber),
        );
        define(
            "sock_shutdown",
            Function::new_typed_with_env(store, &env, sock_shutdown),
        );
        define(
            "fd_prestat_dir_name",
            Function::new_typed_with_env(store, &env, fd_prestat_dir_name),
        );
        define(
            "path_readlink",
            Function::new_typed_with_env(store, &env, path_readlink),
        );
        define(
            "path_symlink",
            Function::new_typed_with_env(store, &env, path_symlink),
        );
        define(
            "path_rename",
            Function::new_typed_with_env(store, &env, path_rename),
        );
        envs.push(env);
    }
    Ok(Installed { envs, checked })
}

fn errno(e: Errno) -> i32 {
    i32::from(u16::from(e))
}

fn fd_fdstat_get(
    mut env: FunctionEnvMut<'_, Wrapped>,
    fd: i32,
    buf: i32,
) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    let slot = if fd == ROOT {
        wrapped.root.get()
    } else {
        Slot::Unknown
    };
    let rights = match slot {
        Slot::Unknown => return wrapped.fdstat_get.call(&mut store, fd, buf),
        Slot::Empty => return Ok(errno(Errno::Badf)),
        Slot::Preopen(rights) => rights,
    };
    // wasix still writes its answer (and handles pending signals); only the rights and flags
    // it made up are replaced.
    let code = wrapped.fdstat_get.call(&mut store, fd, buf)?;
    if code != errno(Errno::Success) {
        return Ok(code);
    }
    let Some(memory) = &wrapped.memory else {
        return Ok(code);
    };
    let view = memory.view(&store);
    let ptr = WasmPtr::<Fdstat, Memory32>::new(buf as u32);
    let Ok(mut stat) = ptr.read(&view) else {
        return Ok(errno(Errno::Fault));
    };
    stat.fs_flags = rights.flags;
    stat.fs_rights_base = rights.base;
    stat.fs_rights_inheriting = rights.inheriting;
    match ptr.write(&view, stat) {
        Ok(()) => Ok(code),
        Err(_) => Ok(errno(Errno::Fault)),
    }
}

fn fd_fdstat_set_rights(
    mut env: FunctionEnvMut<'_, Wrapped>,
    fd: i32,
    base: i64,
    inheriting: i64,
) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    let code = wrapped.set_rights.call(&mut store, fd, base, inheriting)?;
    if fd == ROOT && code == errno(Errno::Success) {
        if let Slot::Preopen(rights) = wrapped.root.get() {
            // wasix accepted them, so they are a subset of what 3 had: its new rights.
            wrapped.root.replace(Slot::Preopen(RootRights {
                base: Rights::from_bits_truncate(base as u64),
                inheriting: Rights::from_bits_truncate(inheriting as u64),
                ..rights
            }));
        }
    }
    Ok(code)
}

fn fd_close(mut env: FunctionEnvMut<'_, Wrapped>, fd: i32) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    let code = wrapped.close.call(&mut store, fd)?;
    if fd == ROOT && code == errno(Errno::Success) {
        wrapped.root.replace(Slot::Empty);
    }
    Ok(code)
}

fn fd_renumber(
    mut env: FunctionEnvMut<'_, Wrapped>,
    from: i32,
    to: i32,
) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    let code = wrapped.renumber.call(&mut store, from, to)?;
    if from != to && code == errno(Errno::Success) {
        if to == ROOT {
            // Another descriptor's entry now sits at 3, and its rights cannot be read back
            // from wasix: its own answer is the best there is.
            wrapped.root.replace(Slot::Unknown);
        } else if from == ROOT {
            wrapped.root.replace(Slot::Empty);
        }
    }
    Ok(code)
}

fn sock_shutdown(
    mut env: FunctionEnvMut<'_, Wrapped>,
    fd: i32,
    how: i32,
) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    if fd == ROOT && wrapped.root.get() == Slot::Empty {
        return Ok(errno(Errno::Badf));
    }
    let code = wrapped.sock_shutdown.call(&mut store, fd, how)?;
    if code == errno(Errno::Access) && !wrapped.sockets {
        // The descriptor is open (wasix checked that first) and no descriptor is a socket.
        return Ok(errno(Errno::Notsock));
    }
    Ok(code)
}

/// The calls whose refusal for want of a right is wrapped, each with the parameters that are
/// descriptors and the right wasix checks each for. A call wrapped by name elsewhere in this
/// module does the same itself (`path_readlink`, `path_symlink`, `path_rename`).
const RIGHTS_CHECKS: &[(&str, &[(usize, Rights)])] = &[
    ("fd_read", &[(0, Rights::FD_READ)]),
    ("fd_pread", &[(0, Rights::FD_READ)]),
    ("fd_write", &[(0, Rights::FD_WRITE)]),
    ("fd_pwrite", &[(0, Rights::FD_WRITE)]),
    ("fd_seek", &[(0, Rights::FD_SEEK)]),
    ("fd_tell", &[(0, Rights::FD_TELL)]),
    ("fd_sync", &[(0, Rights::FD_SYNC)]),
    ("fd_datasync", &[(0, Rights::FD_DATASYNC)]),
    ("fd_advise", &[(0, Rights::FD_ADVISE)]),
    ("fd_allocate", &[(0, Rights::FD_ALLOCATE)]),
    ("fd_filestat_get", &[(0, Rights::FD_FILESTAT_GET)]),
    ("fd_filestat_set_size", &[(0, Rights::FD_FILESTAT_SET_SIZE)]),
    (
        "fd_filestat_set_times",
        &[(0, Rights::FD_FILESTAT_SET_TIMES)],
    ),
    ("fd_fdstat_set_flags", &[(0, Rights::FD_FDSTAT_SET_FLAGS)]),
    ("path_open", &[(0, Rights::PATH_OPEN)]),
    (
        "path_create_directory",
        &[(0, Rights::PATH_CREATE_DIRECTORY)],
    ),
    ("path_filestat_get", &[(0, Rights::PATH_FILESTAT_GET)]),
    (
        "path_filestat_set_times",
        &[(0, Rights::PATH_FILESTAT_SET_TIMES)],
    ),
    ("path_unlink_file", &[(0, Rights::PATH_UNLINK_FILE)]),
    (
        "path_link",
        &[(0, Rights::PATH_LINK_SOURCE), (4, Rights::PATH_LINK_TARGET)],
    ),
];

/// One call of [`RIGHTS_CHECKS`], wrapped.
struct Checked {
    wrapped: Wrapped,
    original: Function,
    checks: &'static [(usize, Rights)],
    /// Refuses a directory descriptor (the first parameter) with `EBADF` before wasix sees it.
    files_only: bool,
}

/// *Seeking a directory.* wasix keeps an offset for directory descriptors too and lets
/// `fd_seek` and `fd_tell` move and report it (a directory gets `FD_SEEK` and `FD_TELL` from
/// the rights wasix implies for every open). A WASI preview 1 directory has no position:
/// `fd_readdir` takes a cookie instead, and wasmtime answers both calls on a directory with
/// `EBADF`, as here.
const FILES_ONLY: &[&str] = &["fd_seek", "fd_tell"];

/// *Rights.* wasix refuses a call on a descriptor that lacks the right for it with `EACCES`,
/// which is also its answer for a host's permission error; WASI preview 1 has `ENOTCAPABLE`
/// for the former, and guests tell the two apart (the wasi-testsuite accepts `EBADF` or
/// `ENOTCAPABLE` for reading a descriptor without `FD_READ`, never `EACCES`). wasix checks
/// rights before touching anything, so when it answers `EACCES` and a descriptor does lack the
/// right, that was the cause, and the answer becomes `ENOTCAPABLE`.
fn checked_call(
    mut env: FunctionEnvMut<'_, Checked>,
    args: &[Value],
) -> Result<Vec<Value>, RuntimeError> {
    let (checked, mut store) = env.data_and_store_mut();
    if checked.files_only {
        if let Some(&Value::I32(fd)) = args.first() {
            let stat = fdstat(&checked.wrapped, &mut store, fd)?;
            if stat.is_some_and(|stat| stat.fs_filetype == Filetype::Directory) {
                return Ok(vec![Value::I32(errno(Errno::Badf))]);
            }
        }
    }
    let results = checked.original.call(&mut store, args)?;
    if results.first() != Some(&Value::I32(errno(Errno::Access))) {
        return Ok(results.into_vec());
    }
    let fds: Vec<(i32, Rights)> = checked
        .checks
        .iter()
        .filter_map(|&(index, right)| match args.get(index) {
            Some(Value::I32(fd)) => Some((*fd, right)),
            _ => None,
        })
        .collect();
    let code = refused_for_rights(&checked.wrapped, &mut store, errno(Errno::Access), &fds)?;
    Ok(vec![Value::I32(code)])
}

/// `code` as WASI preview 1 wants it: `EACCES` becomes `ENOTCAPABLE` when one of `fds` lacks
/// the right paired with it (see [`checked_call`]).
fn refused_for_rights(
    wrapped: &Wrapped,
    store: &mut StoreMut<'_>,
    code: i32,
    fds: &[(i32, Rights)],
) -> Result<i32, RuntimeError> {
    if code != errno(Errno::Access) {
        return Ok(code);
    }
    for &(fd, right) in fds {
        if let Some(rights) = base_rights(wrapped, store, fd)? {
            if !rights.contains(right) {
                return Ok(errno(Errno::Notcapable));
            }
        }
    }
    Ok(code)
}

/// The base rights of `fd`, as `fd_fdstat_get` reports them; `None` when it is not open or
/// they cannot be read.
fn base_rights(
    wrapped: &Wrapped,
    store: &mut StoreMut<'_>,
    fd: i32,
) -> Result<Option<Rights>, RuntimeError> {
    Ok(fdstat(wrapped, store, fd)?.map(|stat| stat.fs_rights_base))
}

/// What `fd_fdstat_get` reports for `fd` (through the wrapper: descriptor 3 as recorded), read
/// through scratch memory; `None` when it is not open or it cannot be read.
fn fdstat(
    wrapped: &Wrapped,
    store: &mut StoreMut<'_>,
    fd: i32,
) -> Result<Option<Fdstat>, RuntimeError> {
    let recorded = if fd == ROOT {
        wrapped.root.get()
    } else {
        Slot::Unknown
    };
    if recorded == Slot::Empty {
        return Ok(None);
    }
    let size = std::mem::size_of::<Fdstat>() as u64;
    let stat = with_scratch(wrapped, store, size, &[], |store, memory, at| {
        if wrapped.fdstat_get.call(store, fd, at as i32)? != errno(Errno::Success) {
            return Ok(None);
        }
        let view = memory.view(store);
        Ok(WasmPtr::<Fdstat, Memory32>::new(at).read(&view).ok())
    })?;
    Ok(stat.flatten().map(|mut stat| {
        if let Slot::Preopen(rights) = recorded {
            stat.fs_rights_base = rights.base;
            stat.fs_rights_inheriting = rights.inheriting;
        }
        stat
    }))
}

/// *Scratch memory.* Several wrappers need an answer that wasix only writes to guest memory
/// (a descriptor's rights, whether a name exists, a link's full contents). They lend wasix
/// `len` bytes of the guest's memory, outside the `avoid` ranges (the call's own inputs), and
/// put the guest's bytes back before returning, so the guest never sees them change. That only
/// holds for a memory no other thread reads meanwhile: a shared memory is never lent (`None`),
/// nor one too small.
fn with_scratch<T>(
    wrapped: &Wrapped,
    store: &mut StoreMut<'_>,
    len: u64,
    avoid: &[std::ops::Range<u64>],
    call: impl FnOnce(&mut StoreMut<'_>, &Memory, u32) -> Result<T, RuntimeError>,
) -> Result<Option<T>, RuntimeError> {
    let Some(memory) = &wrapped.memory else {
        return Ok(None);
    };
    if memory.ty(store).shared {
        return Ok(None);
    }
    let size = memory.view(store).data_size();
    let overlaps = |at: u64| avoid.iter().any(|r| at < r.end && r.start < at + len);
    let candidates = std::iter::once(0).chain(avoid.iter().map(|r| r.end));
    let Some(at) = candidates
        .filter(|&at| at + len <= size && u32::try_from(at).is_ok())
        .find(|&at| !overlaps(at))
    else {
        return Ok(None);
    };
    let mut saved = vec![0; len as usize];
    if memory.view(store).read(at, &mut saved).is_err() {
        return Ok(None);
    }
    let result = call(store, memory, at as u32);
    // Put back whatever happened, even when wasix ended the guest (its exit is an error here).
    let restored = memory.view(store).write(at, &saved);
    let value = result?;
    match restored {
        Ok(()) => Ok(Some(value)),
        Err(e) => Err(RuntimeError::new(format!(
            "guest memory lent to wasix cannot be restored: {e}"
        ))),
    }
}

/// What a name is (its `filetype`), by `path_filestat_get` without following a final symlink:
/// `Err(errno)` when wasix cannot say, `Ok(None)` when no scratch memory could be lent.
fn file_type(
    wrapped: &Wrapped,
    store: &mut StoreMut<'_>,
    fd: i32,
    path: (i32, i32),
    avoid: &[std::ops::Range<u64>],
) -> Result<Option<Result<Filetype, i32>>, RuntimeError> {
    let size = std::mem::size_of::<Filestat>() as u64;
    with_scratch(wrapped, store, size, avoid, |store, memory, at| {
        let code = wrapped
            .filestat_get
            .call(store, fd, 0, path.0, path.1, at as i32)?;
        if code != errno(Errno::Success) {
            return Ok(Err(code));
        }
        let view = memory.view(store);
        match WasmPtr::<Filestat, Memory32>::new(at).read(&view) {
            Ok(stat) => Ok(Ok(stat.st_filetype)),
            Err(_) => Ok(Err(errno(Errno::Fault))),
        }
    })
}

/// The guest memory `ptr..ptr + len` names (both are unsigned in WASI).
fn range(ptr: i32, len: i32) -> std::ops::Range<u64> {
    let start = u64::from(ptr as u32);
    start..start + u64::from(len as u32)
}

/// Reads `len` guest bytes at `ptr`; `None` when they are not all in memory.
fn read_bytes(wrapped: &Wrapped, store: &StoreMut<'_>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = wrapped.memory.as_ref()?;
    let view = memory.view(store);
    let r = range(ptr, len);
    if r.end > view.data_size() {
        return None;
    }
    let mut bytes = vec![0; (r.end - r.start) as usize];
    view.read(r.start, &mut bytes).ok()?;
    Some(bytes)
}

/// *Preopen names.* wasix answers a buffer too small for a preopen's name with `EOVERFLOW`;
/// WASI preview 1 (and wasi-libc, which sizes the buffer from `fd_prestat_get`) has
/// `ENAMETOOLONG` for it.
fn fd_prestat_dir_name(
    mut env: FunctionEnvMut<'_, Wrapped>,
    fd: i32,
    path: i32,
    len: i32,
) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    let code = wrapped.prestat_dir_name.call(&mut store, fd, path, len)?;
    if code == errno(Errno::Overflow) {
        return Ok(errno(Errno::Nametoolong));
    }
    Ok(code)
}

/// The longest link contents read back when the guest's buffer is too small: Linux's
/// `PATH_MAX`, the most a symlink's contents can be.
const LINK_MAX: u32 = 4096;

/// *readlink.* WASI preview 1 `path_readlink` is `readlinkat`: a buffer too small for the
/// contents gets as many bytes as fit, and `buf_used` says how many. wasix answers `EOVERFLOW`
/// instead, and also when the contents fill the buffer exactly. Then the contents are read
/// again into scratch memory large enough for any link and the guest gets what fits.
fn path_readlink(
    mut env: FunctionEnvMut<'_, Wrapped>,
    fd: i32,
    path: i32,
    path_len: i32,
    buf: i32,
    buf_len: i32,
    buf_used: i32,
) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    let code = wrapped
        .readlink
        .call(&mut store, fd, path, path_len, buf, buf_len, buf_used)?;
    if code != errno(Errno::Overflow) {
        return refused_for_rights(wrapped, &mut store, code, &[(fd, Rights::PATH_READLINK)]);
    }
    // The contents after a 4-byte count; wasix wants room for one byte more than it writes.
    let len = 4 + u64::from(LINK_MAX) + 1;
    let read = with_scratch(
        wrapped,
        &mut store,
        len,
        &[range(path, path_len)],
        |store, memory, at| {
            let code = wrapped.readlink.call(
                store,
                fd,
                path,
                path_len,
                (at + 4) as i32,
                (LINK_MAX + 1) as i32,
                at as i32,
            )?;
            if code != errno(Errno::Success) {
                return Ok(Err(code));
            }
            let view = memory.view(store);
            let mut count = [0; 4];
            if view.read(u64::from(at), &mut count).is_err() {
                return Ok(Err(errno(Errno::Fault)));
            }
            let mut contents = vec![0; u32::from_le_bytes(count).min(LINK_MAX) as usize];
            if view.read(u64::from(at) + 4, &mut contents).is_err() {
                return Ok(Err(errno(Errno::Fault)));
            }
            Ok(Ok(contents))
        },
    )?;
    let contents = match read {
        Some(Ok(contents)) => contents,
        Some(Err(code)) => return Ok(code),
        None => return Ok(code),
    };
    let Some(memory) = &wrapped.memory else {
        return Ok(code);
    };
    let fits = &contents[..contents.len().min(buf_len as u32 as usize)];
    let view = memory.view(&store);
    let used = WasmPtr::<u32, Memory32>::new(buf_used as u32);
    if view.write(u64::from(buf as u32), fits).is_err()
        || used.write(&view, fits.len() as u32).is_err()
    {
        return Ok(errno(Errno::Fault));
    }
    Ok(errno(Errno::Success))
}

/// *symlink.* Two refusals WASI preview 1 hosts make that wasix does not:
/// - An absolute target: a guest's `/` is not the host's, and the link is made in the host
///   directory, where any other program following it would leave the sandbox's tree. Refused
///   with `EPERM`, as wasmtime (cap-std) does.
/// - A link name with a trailing slash names a directory, which `symlink` never makes: wasix
///   strips the slash and makes the link. As `symlinkat` does, a name that does not exist is
///   `ENOENT`; one that exists is left to wasix (`EEXIST`).
fn path_symlink(
    mut env: FunctionEnvMut<'_, Wrapped>,
    old_path: i32,
    old_len: i32,
    fd: i32,
    new_path: i32,
    new_len: i32,
) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    if old_len != 0 && read_bytes(wrapped, &store, old_path, 1).as_deref() == Some(b"/") {
        return Ok(errno(Errno::Perm));
    }
    if let Some(name) = read_bytes(wrapped, &store, new_path, new_len) {
        let stripped = name.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        if stripped != 0 && stripped < name.len() {
            let lacking = refused_for_rights(
                wrapped,
                &mut store,
                errno(Errno::Access),
                &[(fd, Rights::PATH_SYMLINK)],
            )?;
            if lacking != errno(Errno::Access) {
                return Ok(lacking);
            }
            let avoid = [range(old_path, old_len), range(new_path, new_len)];
            let found = file_type(wrapped, &mut store, fd, (new_path, stripped as i32), &avoid)?;
            if let Some(Err(code)) = found {
                if code == errno(Errno::Noent) {
                    return Ok(code);
                }
            }
        }
    }
    let code = wrapped
        .symlink
        .call(&mut store, old_path, old_len, fd, new_path, new_len)?;
    refused_for_rights(wrapped, &mut store, code, &[(fd, Rights::PATH_SYMLINK)])
}

/// *rename.* wasix passes the host's `rename` errors through a table that has no place for
/// `ENOTEMPTY`, `EISDIR` or `ENOTDIR`, so all three arrive as `EIO`. The rename did not happen,
/// so what the two names are tells which it was, as `rename(2)` defines them: a directory onto
/// a directory that is not empty, a non-directory onto a directory, a directory onto a
/// non-directory.
fn path_rename(
    mut env: FunctionEnvMut<'_, Wrapped>,
    fd: i32,
    old_path: i32,
    old_len: i32,
    new_fd: i32,
    new_path: i32,
    new_len: i32,
) -> Result<i32, RuntimeError> {
    let (wrapped, mut store) = env.data_and_store_mut();
    let code = wrapped
        .rename
        .call(&mut store, fd, old_path, old_len, new_fd, new_path, new_len)?;
    if code != errno(Errno::Io) {
        return refused_for_rights(
            wrapped,
            &mut store,
            code,
            &[
                (fd, Rights::PATH_RENAME_SOURCE),
                (new_fd, Rights::PATH_RENAME_TARGET),
            ],
        );
    }
    let avoid = [range(old_path, old_len), range(new_path, new_len)];
    let from = file_type(wrapped, &mut store, fd, (old_path, old_len), &avoid)?;
    let to = file_type(wrapped, &mut store, new_fd, (new_path, new_len), &avoid)?;
    let (Some(Ok(from)), Some(Ok(to))) = (from, to) else {
        return Ok(code);
    };
    let dir = Filetype::Directory;
    Ok(match (from == dir, to == dir) {
        (true, true) => errno(Errno::Notempty),
        (false, true) => errno(Errno::Isdir),
        (true, false) => errno(Errno::Notdir),
        (false, false) => code,
    })
}
