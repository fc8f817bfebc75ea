//! Container inits from a parent that has exactly one thread.
//!
//! libcontainer makes a container's init by cloning the calling process, and a wasm init then
//! runs Rust (the engine, the guest) in that clone without exec. A clone of the shim would be a
//! copy of a process with a tokio runtime and a dozen threads taken at an arbitrary instant:
//! every lock another thread held then (the allocator's, stdio's, glibc's loader lock) stays
//! held forever in the init, and the cloning thread's thread-locals come along (a tokio
//! blocking thread's runtime context, whose driver descriptors the init has closed, which
//! wasmtime-wasi then uses for `poll_oneoff`). Either can hang or crash an init.
//!
//! So a frontend (the shim daemon at boot, `wasmbay-runtime` at the start of `create` and
//! `run`) forks a *zygote* first thing, before it starts any thread. The zygote never
//! starts one: it waits on a `SOCK_SEQPACKET` socket for create orders, forks a *worker* for
//! each (a copy of a single-threaded process in a known state) and goes back to waiting. The
//! worker runs libcontainer's create with the order's stdio and prepared artifact (received as
//! descriptors), answers the container's pid, and exits; the init, its grandchild, is then
//! adopted by the nearest subreaper: the shim, or a `wasmbay-runtime run` that waits for it,
//! or the runtime's caller as with runc. Everything done with the container afterwards (start,
//! kill, delete, stats) needs no clone and stays in the frontend.
//!
//! The zygote is forked, not executed anew, so it shares all its pages with its frontend and
//! costs only the few it writes. It ends when the frontend's end of its socket closes (the
//! frontend exited or was killed) and, as a second guard, on the frontend's death signal.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use serde::{Deserialize, Serialize};

use crate::fd_passing;
use crate::prepare::{PreparedArtifact, PreparedWire};
use crate::WasmExecutor;

/// How long a create may take in the worker: libcontainer's part is milliseconds, the module
/// was compiled by the shim beforehand, so this bounds only a stuck create.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the shim waits for the kernel to hand it a new init after its worker exits.
const ADOPTION_TIMEOUT: Duration = Duration::from_secs(5);

/// What the worker needs to create one container.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateOrder {
    pub id: String,
    pub bundle: PathBuf,
    pub state_root: PathBuf,
    pub engine: String,
    pub prepared: Option<PreparedWire>,
    /// Whether stdin, stdout and stderr descriptors come with the order; without them the
    /// init gets the zygote's, which are the frontend's own.
    pub stdio: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Descriptors above stderr that pass to the init (runc's `--preserve-fds`); the zygote
    /// holds them at the same numbers, having been forked before the frontend opened others.
    pub preserve_fds: i32,
    pub systemd: bool,
    pub detach: bool,
    pub no_pivot: bool,
    /// For an exec into the running container `id`: the runtime-spec `process` JSON file of
    /// the new process, which joins the container's namespaces and cgroup (libcontainer's
    /// tenant) instead of making a container.
    pub exec_process: Option<PathBuf>,
}

impl CreateOrder {
    /// An order with runc's defaults for everything but the container itself.
    pub fn new(id: &str, bundle: PathBuf, state_root: PathBuf, engine: String) -> CreateOrder {
        CreateOrder {
            id: id.to_string(),
            bundle,
            state_root,
            engine,
            prepared: None,
            stdio: false,
            pid_file: None,
            console_socket: None,
            preserve_fds: 0,
            systemd: false,
            detach: true,
            no_pivot: false,
            exec_process: None,
        }
    }
}

/// The worker's messages on the reply socket: its pid first, then the outcome.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Worker { pid: i32 },
    Created { pid: i32 },
    Failed { error: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ZygoteError {
    #[error("cannot start the shim's zygote: {0}")]
    Fork(io::Error),
    #[error("the shim's zygote is gone ({0}); restart the shim")]
    Gone(io::Error),
    #[error("the create worker failed to answer: {0}")]
    Protocol(String),
    #[error("container create did not finish within {0:?}; its worker was killed")]
    TimedOut(Duration),
    #[error("init {pid} was not adopted by the shim within {timeout:?}")]
    NotAdopted { pid: i32, timeout: Duration },
    /// libcontainer's own error, with its whole chain, from the worker.
    #[error("{0}")]
    Create(String),
}

/// The shim's handle on its zygote.
pub struct Zygote {
    control: OwnedFd,
}

impl Zygote {
    /// Forks the zygote. Must be called while the calling process has one thread: that is the
    /// whole point, and fork in a threaded process would copy the same hazards. With
    /// `release_stdio`, the zygote puts /dev/null on its stdin and stdout (a shim daemon's
    /// stdout tells containerd it is ready when it closes, so no other process may hold it);
    /// every container it creates then gets stdio of its own from the order.
    pub fn fork(release_stdio: bool) -> Result<Zygote, ZygoteError> {
        // Not refused: under qemu-user the count includes the emulator's own threads, which
        // guest code never runs on. Anywhere else more than one is a frontend's bug.
        if let Some(threads) = thread_count().filter(|&n| n != 1) {
            tracing::warn!(
                threads,
                "zygote forked from a process with more than one thread; its inits may inherit held locks"
            );
        }
        let (shim_end, zygote_end) = fd_passing::seqpacket_pair().map_err(ZygoteError::Fork)?;
        let shim_pid = std::process::id() as i32;
        // SAFETY: the process has one thread (above), so the child is a complete copy in a
        // consistent state and may run any code.
        match unsafe { libc::fork() } {
            -1 => Err(ZygoteError::Fork(io::Error::last_os_error())),
            0 => {
                drop(shim_end);
                if release_stdio {
                    null_stdio();
                }
                serve(zygote_end, shim_pid)
            }
            _ => Ok(Zygote { control: shim_end }),
        }
    }

    /// Has a worker create the container of `order`, with these stdio files (when given; the
    /// order must say so) and, when the host prepared one, the artifact's (or module bytes')
    /// descriptor. Returns the init's pid; with `adopt`, only once the init is this process's
    /// child (the caller is a subreaper and will wait for it).
    pub fn create(
        &self,
        order: &CreateOrder,
        stdio: Option<[&File; 3]>,
        code: Option<BorrowedFd<'_>>,
        adopt: bool,
    ) -> Result<i32, ZygoteError> {
        if order.stdio != stdio.is_some() || order.prepared.is_some() != code.is_some() {
            return Err(ZygoteError::Protocol(
                "create order and its descriptors disagree".into(),
            ));
        }
        let payload =
            serde_json::to_vec(order).map_err(|e| ZygoteError::Protocol(e.to_string()))?;
        let (ours, theirs) = fd_passing::seqpacket_pair().map_err(ZygoteError::Gone)?;
        let mut fds = vec![theirs.as_fd()];
        fds.extend(stdio.into_iter().flatten().map(|f| f.as_fd()));
        fds.extend(code);
        fd_passing::send(self.control.as_fd(), &payload, &fds).map_err(ZygoteError::Gone)?;
        drop(fds);
        drop(theirs);
        let deadline = Instant::now() + CREATE_TIMEOUT;
        let mut worker = None;
        loop {
            let reply = match next_reply(&ours, deadline) {
                Ok(reply) => reply,
                Err(e) => {
                    if let Some(pid) = worker {
                        // SAFETY: kill has no memory effects; the worker is the zygote's child
                        // and exists until the zygote reaps it.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    return Err(e);
                }
            };
            match reply {
                Reply::Worker { pid } => worker = Some(pid),
                Reply::Created { pid } => {
                    if adopt {
                        wait_adopted(pid)?;
                    }
                    return Ok(pid);
                }
                Reply::Failed { error } => return Err(ZygoteError::Create(error)),
            }
        }
    }
}

fn next_reply(socket: &OwnedFd, deadline: Instant) -> Result<Reply, ZygoteError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `poll` is one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) };
    if ready == 0 {
        return Err(ZygoteError::TimedOut(CREATE_TIMEOUT));
    }
    if ready < 0 {
        return Err(ZygoteError::Protocol(
            io::Error::last_os_error().to_string(),
        ));
    }
    let (payload, _) =
        fd_passing::recv(socket.as_fd()).map_err(|e| ZygoteError::Protocol(e.to_string()))?;
    if payload.is_empty() {
        return Err(ZygoteError::Protocol(
            "the worker ended without an answer".into(),
        ));
    }
    serde_json::from_slice(&payload).map_err(|e| ZygoteError::Protocol(e.to_string()))
}

/// Waits until the kernel has reparented `pid` to this process (its worker parent exited), so
/// that `waitpid` on it works.
fn wait_adopted(pid: i32) -> Result<(), ZygoteError> {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + ADOPTION_TIMEOUT;
    loop {
        match parent_of(pid) {
            Some(parent) if parent == me => return Ok(()),
            // Gone already: it was ours when it died, or waitpid reports the loss.
            None => return Ok(()),
            Some(_) if Instant::now() >= deadline => {
                return Err(ZygoteError::NotAdopted {
                    pid,
                    timeout: ADOPTION_TIMEOUT,
                })
            }
            Some(_) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

/// The parent pid of `pid` from `/proc/PID/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// /dev/null on stdin and stdout.
fn null_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in [0, 1] {
            // SAFETY: dup2 onto a standard descriptor; `null` stays open across the call.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// The zygote's process name (`/proc/PID/comm`), so that tools and tests can tell it from
/// the frontend whose command line it shares.
pub const ZYGOTE_NAME: &str = "wasmbay-zygote";

/// The name a worker takes, and so the container inits it makes until they exec.
pub const INIT_NAME: &str = "wasmbay-init";

fn set_name(name: &str) {
    if let Ok(name) = std::ffi::CString::new(name) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the
        // pointer; `name` is one and outlives the call.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
}

/// Signals the zygote ignores and each worker restores to their default before it creates a
/// container: an ignored disposition would pass to the init and survive a native exec.
const IGNORED_IN_ZYGOTE: [i32; 4] = [libc::SIGCHLD, libc::SIGINT, libc::SIGHUP, libc::SIGTERM];

/// The zygote's life: one order at a time, a worker for each.
fn serve(control: OwnedFd, shim_pid: i32) -> ! {
    set_name(ZYGOTE_NAME);
    // SAFETY: prctl and signal change only this process's attributes. Workers are reaped by
    // the kernel (SIGCHLD ignored), so the zygote keeps no zombies.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        // Stop signals meant for the shim's process group are not the zygote's to act on; the
        // shim's exit closes the socket and ends it.
        for signal in IGNORED_IN_ZYGOTE {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != shim_pid {
        // The shim died before the death signal was armed.
        // SAFETY: _exit ends this process only.
        unsafe { libc::_exit(0) }
    }
    loop {
        let (payload, fds) = match fd_passing::recv(control.as_fd()) {
            Ok(message) => message,
            // SAFETY: _exit ends this process only.
            Err(_) => unsafe { libc::_exit(1) },
        };
        if payload.is_empty() && fds.is_empty() {
            // SAFETY: as above: the shim closed its end.
            unsafe { libc::_exit(0) }
        }
        // SAFETY: the zygote has one thread, so the worker is a consistent copy.
        match unsafe { libc::fork() } {
            0 => {
                drop(control);
                work(&payload, fds)
            }
            -1 => {
                if let Some(reply) = fds.first() {
                    let error = format!("zygote cannot fork: {}", io::Error::last_os_error());
                    let _ = send_reply(reply.as_fd(), &Reply::Failed { error });
                }
            }
            _ => {}
        }
        // The worker holds its own copies; the zygote keeps nothing of the order.
        drop(fds);
        drop(payload);
    }
}

fn send_reply(socket: BorrowedFd<'_>, reply: &Reply) -> io::Result<()> {
    let payload = serde_json::to_vec(reply).map_err(io::Error::other)?;
    fd_passing::send(socket, &payload, &[])
}

/// A worker: one container's create, then exit.
fn work(payload: &[u8], fds: Vec<OwnedFd>) -> ! {
    set_name(INIT_NAME);
    for signal in IGNORED_IN_ZYGOTE {
        // SAFETY: restores a default disposition of this process (SIGCHLD's, so that
        // libcontainer can wait for its own children).
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    let mut fds = fds.into_iter();
    let Some(reply) = fds.next() else {
        // SAFETY: nobody to answer; _exit ends this process only.
        unsafe { libc::_exit(2) }
    };
    let _ = send_reply(
        reply.as_fd(),
        &Reply::Worker {
            pid: std::process::id() as i32,
        },
    );
    let answer = match create(payload, fds.collect()) {
        Ok(pid) => Reply::Created { pid },
        Err(error) => {
            reap_children(FAILED_CREATE_REAP);
            Reply::Failed { error }
        }
    };
    let _ = send_reply(reply.as_fd(), &answer);
    // SAFETY: the worker's work is done and it has no buffered output of its own to flush.
    unsafe { libc::_exit(0) }
}

/// How long a worker whose create failed waits for libcontainer's processes to end.
const FAILED_CREATE_REAP: Duration = Duration::from_secs(2);

/// Reaps the worker's children (libcontainer's intermediate and init processes of a create
/// that failed) until there are none or `limit` has passed. Left alone, they would be adopted
/// by the frontend, which waits only for the pids it was told of: zombies it never reaps,
/// and, for an exec, processes in the container's pid namespace that its init's exit then
/// waits on for ever (the kernel's pid 1 teardown waits until every member is reaped).
fn reap_children(limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only `status`, which outlives the call.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match reaped {
            r if r > 0 => continue,
            // Children remain that have not ended yet.
            0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            // ECHILD (none left), an error, or out of time.
            _ => return,
        }
    }
}

/// An error with its whole chain of causes, as one line.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn create(payload: &[u8], fds: Vec<OwnedFd>) -> Result<i32, String> {
    let order: CreateOrder =
        serde_json::from_slice(payload).map_err(|e| format!("create order: {e}"))?;
    let mut fds = fds.into_iter();
    let mut next = |what: &str| {
        fds.next()
            .ok_or_else(|| format!("create order lacks {what}"))
    };
    let stdio = if order.stdio {
        Some([next("stdin")?, next("stdout")?, next("stderr")?])
    } else {
        None
    };
    let prepared = match order.prepared {
        Some(wire) => {
            let fd = next("the prepared module")?;
            Some(
                PreparedArtifact::from_wire(wire, fd)
                    .map_err(|e| format!("prepared module: {e}"))?,
            )
        }
        None => None,
    };
    let executor = WasmExecutor::new(order.engine, prepared);
    let failed = |e: libcontainer::error::LibcontainerError| {
        format!("creating container {}: {}", order.id, chain(&e))
    };
    let mut builder = ContainerBuilder::new(order.id.clone(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(&order.state_root)
        .map_err(failed)?
        .with_pid_file(order.pid_file.as_ref())
        .map_err(failed)?
        .with_console_socket(order.console_socket.as_ref())
        .with_preserved_fds(order.preserve_fds);
    if let Some([stdin, stdout, stderr]) = stdio {
        builder = builder
            .with_stdin(stdin)
            .with_stdout(stdout)
            .with_stderr(stderr);
    }
    let builder = builder.validate_id().map_err(failed)?;
    if let Some(process) = &order.exec_process {
        let failed = |e: libcontainer::error::LibcontainerError| {
            format!("exec in container {}: {}", order.id, chain(&e))
        };
        return builder
            .as_tenant()
            .with_process(Some(process))
            .with_detach(order.detach)
            .build()
            .map(|pid| pid.as_raw())
            .map_err(failed);
    }
    let container = builder
        .as_init(&order.bundle)
        .with_systemd(order.systemd)
        .with_detach(order.detach)
        .with_no_pivot(order.no_pivot)
        .build()
        .map_err(failed)?;
    let pid = container
        .pid()
        .map(|p| p.as_raw())
        .ok_or_else(|| format!("container {} has no init pid", order.id))?;
    // The container exists now; a loopback left down is worth a warning, not undoing it.
    match crate::loopback::wants_new_netns(&order.bundle) {
        Ok(true) => {
            if let Err(e) = crate::loopback::bring_up(pid) {
                tracing::warn!(id = %order.id, error = %e, "cannot set the container's loopback up");
            }
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(id = %order.id, error = %e, "cannot read the bundle's network namespace")
        }
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::parent_of;

    #[test]
    fn parent_of_reads_past_a_command_with_parentheses() {
        assert_eq!(
            parent_of(std::process::id() as i32),
            Some(std::os::unix::process::parent_id() as i32)
        );
        assert_eq!(parent_of(i32::MAX), None);
    }
}
