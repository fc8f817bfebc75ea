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
//! refusal means "not a socket"; an empty descriptor 3 is `EBADF` for every module. Other calls on an empty descriptor 3 still
//! reach wasix's made-up root.

use std::sync::{Arc, Mutex, PoisonError};

use wasmer::{
    AsStoreMut, Function, FunctionEnv, FunctionEnvMut, Imports, Memory, Memory32, RuntimeError,
    TypedFunction, WasmPtr,
};
use wasmer_wasix::wasmer_wasix_types::wasi::{Errno, Fdflags, Fdstat, Rights};
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
struct Wrapped {
    root: RootFd,
    fdstat_get: TypedFunction<(i32, i32), i32>,
    set_rights: TypedFunction<(i32, i64, i64), i32>,
    close: TypedFunction<i32, i32>,
    renumber: TypedFunction<(i32, i32), i32>,
    sock_shutdown: TypedFunction<(i32, i32), i32>,
    /// Whether the guest can make sockets (it imports wasix's `sock_open` namespaces).
    sockets: bool,
    memory: Option<Memory>,
}

/// Makes the wrappers ready to write guest memory once the instance exists.
pub(crate) struct Installed {
    envs: Vec<FunctionEnv<Wrapped>>,
}

impl Installed {
    pub(crate) fn set_memory(&self, store: &mut impl AsStoreMut, memory: &Memory) {
        for env in &self.envs {
            env.as_mut(store).memory = Some(memory.clone());
        }
    }
}

/// Replaces `fd_fdstat_get`, `fd_fdstat_set_rights`, `fd_close`, `fd_renumber` and
/// `sock_shutdown` of every preview 1 namespace in `imports` with wrappers around wasix's own.
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
    for namespace in NAMESPACES {
        let original = |name: &str| match imports.get_export(namespace, name) {
            Some(wasmer::Extern::Function(function)) => Some(function),
            _ => None,
        };
        let (Some(fdstat_get), Some(set_rights), Some(close), Some(renumber), Some(shutdown)) = (
            original("fd_fdstat_get"),
            original("fd_fdstat_set_rights"),
            original("fd_close"),
            original("fd_renumber"),
            original("sock_shutdown"),
        ) else {
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
            sockets,
            memory: None,
        };
        let env = FunctionEnv::new(store, wrapped);
        imports.define(
            namespace,
            "fd_fdstat_get",
            Function::new_typed_with_env(store, &env, fd_fdstat_get),
        );
        imports.define(
            namespace,
            "fd_fdstat_set_rights",
            Function::new_typed_with_env(store, &env, fd_fdstat_set_rights),
        );
        imports.define(
            namespace,
            "fd_close",
            Function::new_typed_with_env(store, &env, fd_close),
        );
        imports.define(
            namespace,
            "fd_renumber",
            Function::new_typed_with_env(store, &env, fd_renumber),
        );
        imports.define(
            namespace,
            "sock_shutdown",
            Function::new_typed_with_env(store, &env, sock_shutdown),
        );
        envs.push(env);
    }
    Ok(Installed { envs })
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
