//! The shim's task service: containers of one pod (or one container outside Kubernetes) in
//! one shim process, created through libcontainer with the runtime-bridge executor.

use std::collections::HashMap;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use containerd_shim::api;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{EnumOrUnknown, Message, MessageField};
use containerd_shim::protos::topics;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags, StartOpts, TtrpcResult};
use wasmbay_runtime_bridge::libcontainer::container::Container;
use wasmbay_runtime_bridge::libcontainer::signal::Signal;
use wasmbay_runtime_bridge::prepare::{
    entrypoint_in_rootfs, prepare, prepare_layer, LayerModule, PreparedArtifact,
};
use wasmbay_runtime_bridge::ENGINE_ANNOTATION;
use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::oci_spec::runtime::Spec;

use crate::console::Console;
use crate::content::ContentStore;
use crate::events::EventSink;
use crate::exec::{ExecPhase, ExecProc};
use crate::grouping::{Grouping, LINGER_ENV, SANDBOX_ANNOTATION};
use crate::stdio::open_stdio;
use wasmbay_runtime_bridge::zygote::{CreateOrder, Zygote};

/// `containerd-shim-wasmtime-v1` → `wasmtime`.
/// Set by the shim's `start` for the daemon it spawns: the engine named by containerd's runtime.
pub const ENGINE_ENV: &str = "WASMBAY_SHIM_ENGINE";

pub fn engine_from_binary_name(argv0: &str) -> Option<String> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    let engine = name.strip_prefix("containerd-shim-")?.strip_suffix("-v1")?;
    (!engine.is_empty()).then(|| engine.to_string())
}

fn rpc_error(
    code: containerd_shim::protos::ttrpc::Code,
    message: String,
) -> containerd_shim::protos::ttrpc::Error {
    containerd_shim::protos::ttrpc::Error::RpcStatus(containerd_shim::protos::ttrpc::get_status(
        code, message,
    ))
}

fn internal(e: impl std::fmt::Display) -> containerd_shim::protos::ttrpc::Error {
    rpc_error(
        containerd_shim::protos::ttrpc::Code::INTERNAL,
        format!("{e:#}"),
    )
}

/// UNIMPLEMENTED rather than the generated NOT_FOUND default, which containerd would read as
/// "no such process".
fn unsupported(what: &str) -> containerd_shim::protos::ttrpc::Error {
    rpc_error(
        containerd_shim::protos::ttrpc::Code::UNIMPLEMENTED,
        format!("wasmbay shim: {what} is not supported"),
    )
}

fn invalid_argument(message: String) -> containerd_shim::protos::ttrpc::Error {
    rpc_error(
        containerd_shim::protos::ttrpc::Code::INVALID_ARGUMENT,
        message,
    )
}

fn not_found(id: &str) -> containerd_shim::protos::ttrpc::Error {
    rpc_error(
        containerd_shim::protos::ttrpc::Code::NOT_FOUND,
        format!("task {id} not found"),
    )
}

/// FAILED_PRECONDITION for a request the task's state does not allow (containerd maps it to
/// its "failed precondition" error, as for runc's shim).
fn failed_precondition(
    id: &str,
    task: &Task,
    action: &str,
    needed: &str,
) -> containerd_shim::protos::ttrpc::Error {
    rpc_error(
        containerd_shim::protos::ttrpc::Code::FAILED_PRECONDITION,
        format!(
            "cannot {action} task {id}: it is {:?}, not {needed}",
            status_of(task)
        ),
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    /// Frozen by `pause` (the cgroup freezer), until `resume`.
    Paused,
    Stopped,
}

struct Task {
    container: Container,
    bundle: String,
    rootfs_mounted: Option<PathBuf>,
    stdin: String,
    stdout: String,
    stderr: String,
    pid: u32,
    phase: Phase,
    exit: Option<(u32, Timestamp)>,
    /// On cgroup v2, the container's cgroup directory as its init saw it at create; it
    /// outlives the init, so statistics stay readable until delete.
    cgroup_v2: Option<PathBuf>,
    /// The engine the init runs on, which an exec'd WebAssembly command runs on too.
    engine: String,
    /// Processes exec'd into the task, by exec id.
    execs: HashMap<String, ExecProc>,
    /// The init's terminal, when it was made with one.
    console: Option<Console>,
    /// The cgroup v2 OOM watcher, which ends when this is dropped with the task.
    oom_watch: Option<crate::cgroup_v2::OomWatch>,
}

struct Inner {
    namespace: String,
    /// containerd's gRPC socket, for reading image layers from its content store.
    containerd_address: String,
    /// The `-id` containerd started this shim process with.
    shim_id: String,
    engine: String,
    state_root: PathBuf,
    exit: Arc<ExitSignal>,
    tasks: Mutex<HashMap<String, Task>>,
    exited: Condvar,
    publisher: Mutex<Option<EventSink>>,
    /// This shim's socket, removed before an idle shim exits so no new container is sent to it.
    socket: PathBuf,
    /// How long the shim outlives its last container.
    linger: std::time::Duration,
    /// Counts creates, so an idle shim knows whether a container came while it lingered.
    creates: std::sync::atomic::AtomicU64,
    /// The linger timer: the latest idle moment, and whether its thread runs.
    idle: Mutex<IdleTimer>,
    /// Where container inits come from (`zygote.rs`); set once by the daemon at boot.
    zygote: std::sync::OnceLock<Zygote>,
}

/// When the shim last went idle (and the create count then), for the one linger timer.
#[derive(Default)]
struct IdleTimer {
    latest: Option<(std::time::Instant, u64)>,
    running: bool,
}

#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

/// Container state of the shims of one containerd (told apart by its socket address, so that
/// two containerd instances never share state) and one namespace.
fn state_root(containerd_address: &str, namespace: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    containerd_address.hash(&mut hasher);
    PathBuf::from("/run/wasmbay-shim")
        .join(format!("{:016x}", hasher.finish()))
        .join(namespace)
}

/// libcontainer binds and connects a container's notify socket by a relative name after
/// changing the process's working directory (unix socket paths are short), so two containers
/// started at once by threads of one shim would each chdir under the other. Held around
/// `start`; a create runs in a zygote worker, a process of its own.
static CWD_LOCK: Mutex<()> = Mutex::new(());

fn cwd_lock() -> std::sync::MutexGuard<'static, ()> {
    CWD_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long an idle shim still serves connections after removing its socket.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// An exclusive `flock` on `start.lock` in the state directory of one containerd namespace,
/// held while a `start` looks for its group's shim and spawns it if none answers.
struct StartLock {
    /// Held only for its lock, which closing it releases.
    _file: std::fs::File,
}

impl StartLock {
    fn acquire(state_root: &Path) -> std::io::Result<StartLock> {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(state_root)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(state_root.join("start.lock"))?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(StartLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

fn engine_of_runtime(runtime_id: &str) -> String {
    runtime_id
        .strip_prefix("io.containerd.")
        .and_then(|r| r.strip_suffix(".v1"))
        .unwrap_or("wasmtime")
        .to_string()
}

impl Service {
    /// The single-threaded process that creates this shim's containers.
    pub(crate) fn set_zygote(&self, zygote: Zygote) {
        let _ = self.inner.zygote.set(zygote);
    }

    /// Where this shim's task events go from now on.
    pub(crate) fn set_events(&self, sink: EventSink) {
        *self
            .inner
            .publisher
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    fn publish<E: Message>(&self, topic: &str, event: E) {
        let publisher = self
            .inner
            .publisher
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(publisher) = publisher.as_ref() {
            if let Err(e) = publisher.publish(topic, &self.inner.namespace, &event) {
                tracing::warn!(topic, error = %e, "cannot publish event");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Task>> {
        self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the init process of `id` (or its exec `exec_id`) in a thread of its own and
    /// records its exit.
    fn watch(&self, id: String, exec_id: Option<String>, pid: i32) {
        let service = self.clone();
        std::thread::spawn(move || {
            let code = loop {
                let mut status = 0;
                // SAFETY: waitpid writes only `status`, which outlives the call.
                let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
                if reaped == pid {
                    if libc::WIFEXITED(status) {
                        break libc::WEXITSTATUS(status);
                    }
                    if libc::WIFSIGNALED(status) {
                        break 128 + libc::WTERMSIG(status);
                    }
                    continue;
                }
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // Not our child (already reaped elsewhere): the status is lost.
                tracing::warn!(pid, error = %err, "cannot wait for task");
                break 255;
            };
            // A terminal's last output reaches its fifo before the exit is told.
            let drained = {
                let mut tasks = service.lock();
                tasks.get_mut(&id).and_then(|task| {
                    let console = match &exec_id {
                        None => task.console.as_mut(),
                        Some(exec_id) => {
                            task.execs.get_mut(exec_id).and_then(|e| e.console.as_mut())
                        }
                    };
                    console.and_then(Console::take_output_done)
                })
            };
            if let Some(done) = drained {
                if let Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    done.recv_timeout(crate::console::DRAIN_TIMEOUT)
                {
                    tracing::debug!(id, "terminal output still open at exit (a child keeps it)");
                }
            }
            let exited_at = Timestamp::now();
            {
                let mut tasks = service.lock();
                let exit = Some((code as u32, exited_at.clone()));
                match (tasks.get_mut(&id), &exec_id) {
                    (Some(task), None) => {
                        task.phase = Phase::Stopped;
                        task.exit = exit;
                    }
                    (Some(task), Some(exec_id)) => {
                        if let Some(exec) = task.execs.get_mut(exec_id) {
                            exec.phase = ExecPhase::Stopped;
                            exec.exit = exit;
                        }
                    }
                    (None, _) => {}
                }
            }
            service.inner.exited.notify_all();
            let event = TaskExit {
                container_id: id.clone(),
                id: exec_id.unwrap_or_else(|| id.clone()),
                pid: pid as u32,
                exit_status: code as u32,
                exited_at: MessageField::some(exited_at),
                ..Default::default()
            };
            service.publish(topics::TASK_EXIT_EVENT_TOPIC, event);
        });
    }

    /// Exits now, or after the linger time if no container has come meanwhile. The socket goes
    /// first, under the task lock, so a `start` that still finds it reaches a live shim.
    ///
    /// One timer thread serves every idle moment: a shim that goes idle after each of many
    /// short-lived containers (a namespace shim under churn) pushes the deadline of the
    /// running timer rather than leaving a sleeping thread per lifecycle.
    fn exit_when_idle(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.linger.is_zero() {
            self.inner.exit.signal();
            return;
        }
        let seen = self.inner.creates.load(Ordering::SeqCst);
        {
            let mut idle = self.idle_timer();
            idle.latest = Some((std::time::Instant::now(), seen));
            if idle.running {
                return;
            }
            idle.running = true;
        }
        let service = self.clone();
        std::thread::spawn(move || service.run_idle_timer());
    }

    fn idle_timer(&self) -> std::sync::MutexGuard<'_, IdleTimer> {
        self.inner.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until the linger time after the latest idle moment has passed, then exits if
    /// no container came since.
    fn run_idle_timer(&self) {
        use std::sync::atomic::Ordering;
        let seen = loop {
            let Some((since, seen)) = self.idle_timer().latest else {
                self.idle_timer().running = false;
                return;
            };
            let due = since + self.inner.linger;
            let now = std::time::Instant::now();
            if now < due {
                std::thread::sleep(due - now);
                continue;
            }
            let mut idle = self.idle_timer();
            if idle.latest == Some((since, seen)) {
                idle.latest = None;
                idle.running = false;
                break seen;
            }
        };
        {
            // Under the start lock, so no `start` is between finding the socket and answering
            // containerd; one that already answered has its create reach this shim during the
            // grace period below.
            let _lock = StartLock::acquire(&self.inner.state_root).ok();
            let tasks = self.lock();
            if !tasks.is_empty() || self.inner.creates.load(Ordering::SeqCst) != seen {
                return;
            }
            let _ = std::fs::remove_file(&self.inner.socket);
        }
        std::thread::sleep(EXIT_GRACE);
        if self.lock().is_empty() && self.inner.creates.load(Ordering::SeqCst) == seen {
            self.inner.exit.signal();
        }
    }

    /// Publishes TaskOOM when the kernel OOM-kills inside the container's memory cgroup:
    /// through `memory.events` on cgroup v2, `memory.oom_control` on v1.
    fn watch_oom(&self, id: &str) {
        let (v2, v1) = {
            let tasks = self.lock();
            let Some(task) = tasks.get(id) else { return };
            let v1 = task
                .container
                .spec()
                .ok()
                .and_then(|config| crate::oom::v1_memory_dir(&config.cgroup_path));
            (task.cgroup_v2.clone(), v1)
        };
        let service = self.clone();
        let container_id = id.to_string();
        let on_oom = move || {
            let event = TaskOOM {
                container_id: container_id.clone(),
                ..Default::default()
            };
            service.publish(topics::TASK_OOM_EVENT_TOPIC, event);
        };
        let watched = match (v2, v1) {
            (Some(dir), _) => crate::cgroup_v2::watch_oom(dir, on_oom).map(Some),
            // v1 signals the eventfd when the cgroup goes, which ends that watcher.
            (None, Some(dir)) => crate::oom::watch_v1(dir, on_oom).map(|()| None),
            (None, None) => {
                tracing::debug!(id, "no memory cgroup found; OOM events not watched");
                return;
            }
        };
        match watched {
            Ok(handle) => {
                if let Some(task) = self.lock().get_mut(id) {
                    task.oom_watch = handle;
                }
            }
            Err(e) => tracing::warn!(id, error = %e, "cannot watch for OOM"),
        }
    }

    /// The module of an artifact-layout image: the container's entrypoint is not in its
    /// rootfs, so look for a wasm layer in its image.
    fn prepare_from_layer(
        &self,
        id: &str,
        spec: &Spec,
        engine: &str,
    ) -> anyhow::Result<Option<PreparedArtifact>> {
        let argv0 = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .and_then(|args| args.first())
            .cloned()
            .unwrap_or_default();
        let store = ContentStore::connect(&self.inner.containerd_address, &self.inner.namespace)?;
        let Some(layer) = store.wasm_layer(id, &argv0)? else {
            return Ok(None);
        };
        tracing::debug!(layer = %layer.name(), media_type = %layer.media_type, "module from image layer");
        let module = LayerModule {
            name: layer.name(),
            sha256: layer.sha256_hex().to_string(),
            fetch: Box::new(|| store.read_layer(&layer).map_err(std::io::Error::other)),
        };
        Ok(Some(prepare_layer(
            module,
            engine,
            Some(ModuleCache::default_location()),
        )?))
    }

    fn create_task(&self, req: &api::CreateTaskRequest) -> anyhow::Result<u32> {
        use anyhow::Context as _;
        // A pod's later containers come long after the boot's warm-up has lapsed.
        wasmbay_runtime_bridge::cgroup_warmup::begin();
        self.inner
            .creates
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = bundle.join("rootfs");
        let mut mounted = None;
        if !req.rootfs.is_empty() {
            let _span = tracing::info_span!("rootfs.mount").entered();
            std::fs::create_dir_all(&rootfs)?;
            for m in &req.rootfs {
                crate::rootfs::mount(&m.type_, &m.source, &m.options, &rootfs)
                    .with_context(|| format!("mounting rootfs {} ({})", m.source, m.type_))?;
            }
            mounted = Some(rootfs.clone());
        }
        let result = (|| {
            let spec = Spec::load(bundle.join("config.json"))
                .with_context(|| format!("{}/config.json", bundle.display()))?;
            let engine = spec
                .annotations()
                .as_ref()
                .and_then(|a| a.get(ENGINE_ANNOTATION))
                .cloned()
                .unwrap_or_else(|| self.inner.engine.clone());
            tracing::debug!("rootfs mounted, preparing");
            let prepare_span = tracing::info_span!("module.prepare").entered();
            let prepared = match prepare(
                &bundle,
                &spec,
                &engine,
                Some(ModuleCache::default_location()),
            )? {
                None if !entrypoint_in_rootfs(&bundle, &spec) => {
                    self.prepare_from_layer(&req.id, &spec, &engine)?
                }
                prepared => prepared,
            };
            drop(prepare_span);
            tracing::debug!(prepared = prepared.is_some(), "prepared");
            wasmbay_runtime_bridge::dev_setup::prepare_bundle_dev(&bundle, &spec)?;
            std::fs::create_dir_all(&self.inner.state_root)?;
            let spec_terminal = spec
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false);
            if spec_terminal != req.terminal {
                anyhow::bail!(
                    "{}/config.json: process.terminal is {spec_terminal} but the create request's terminal is {}",
                    bundle.display(),
                    req.terminal
                );
            }
            // With a terminal the process's stdio is the pty libcontainer makes; the fifos are
            // the console's to copy.
            let console_socket = req.terminal.then(crate::console::bind_socket).transpose()?;
            let stdio = match console_socket {
                Some(_) => None,
                None => Some(open_stdio(&req.stdin, &req.stdout, &req.stderr)?),
            };
            tracing::debug!("stdio open, building");
            let _span = tracing::info_span!("container.create").entered();
            let (prepared, code) = match prepared.as_ref().map(PreparedArtifact::to_wire) {
                Some(wire) => {
                    let (wire, fd) = wire.context("handing the prepared module to the zygote")?;
                    (Some(wire), Some(fd))
                }
                None => (None, None),
            };
            let mut order = CreateOrder::new(
                &req.id,
                bundle.clone(),
                self.inner.state_root.clone(),
                engine,
            );
            let cgroups_path = spec
                .linux()
                .as_ref()
                .and_then(|l| l.cgroups_path().as_ref())
                .map(|p| p.to_string_lossy().into_owned());
            order.systemd =
                crate::cgroup_driver::use_systemd(req.options.as_ref(), cgroups_path.as_deref())?;
            tracing::debug!(systemd = order.systemd, cgroups_path, "cgroup driver");
            order.prepared = prepared;
            order.stdio = stdio.is_some();
            order.console_socket = console_socket.as_ref().map(|s| s.path().to_path_buf());
            let zygote = self
                .inner
                .zygote
                .get()
                .context("this shim process has no zygote to create containers")?;
            let pid = zygote.create(
                &order,
                stdio.as_ref().map(|[i, o, e]| [i, o, e]),
                code.as_ref().map(|fd| fd.as_fd()),
                true,
            )?;
            let mut container = Container::load(self.inner.state_root.join(&req.id))
                .with_context(|| format!("loading the state of container {}", req.id))?;
            let console = match &console_socket {
                Some(socket) => match Console::start(socket, &req.stdin, &req.stdout) {
                    Ok(console) => Some(console),
                    Err(e) => {
                        // The init exists but cannot be reached: it goes, with its container.
                        kill_and_reap(pid, ABANDON_REAP);
                        let _ =
                            wasmbay_runtime_bridge::delete::delete_container(&mut container, true);
                        return Err(anyhow::Error::new(e)
                            .context(format!("the terminal of container {}", req.id)));
                    }
                },
                None => None,
            };
            Ok::<_, anyhow::Error>((container, pid, order.engine, console))
        })();
        let (container, pid, engine, console) = match result {
            Ok(created) => created,
            Err(e) => {
                if let Some(rootfs) = &mounted {
                    let _ = crate::rootfs::unmount(rootfs);
                }
                return Err(e);
            }
        };
        let cgroup_v2 = if crate::cgroup_v2::is_unified() {
            crate::cgroup_v2::dir_of(pid)
                .map_err(|e| tracing::warn!(id = req.id, error = %e, "cannot find the cgroup"))
                .ok()
        } else {
            None
        };
        self.lock().insert(
            req.id.clone(),
            Task {
                container,
                bundle: req.bundle.clone(),
                rootfs_mounted: mounted,
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                pid: pid as u32,
                phase: Phase::Created,
                exit: None,
                cgroup_v2,
                engine,
                execs: HashMap::new(),
                console,
                oom_watch: None,
            },
        );
        self.watch(req.id.clone(), None, pid);
        self.watch_oom(&req.id);
        Ok(pid as u32)
    }
}

/// The artifact of an exec's WebAssembly command, when its program is a wasm file of the
/// container's rootfs: the container's spec with the exec's process, prepared like an init's.
/// `None` for a Linux program or a path only the container can resolve (the tenant then
/// reports on its own).
fn prepare_exec(
    order: &CreateOrder,
) -> anyhow::Result<
    Option<(
        wasmbay_runtime_bridge::prepare::PreparedWire,
        std::os::fd::OwnedFd,
    )>,
> {
    use anyhow::Context as _;
    let Some(process_file) = &order.exec_process else {
        return Ok(None);
    };
    let config = order.bundle.join("config.json");
    let mut spec = Spec::load(&config).with_context(|| config.display().to_string())?;
    let process = std::fs::read(process_file)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(serde_json::from_slice(&bytes)?))
        .with_context(|| process_file.display().to_string())?;
    spec.set_process(Some(process));
    let prepared = prepare(
        &order.bundle,
        &spec,
        &order.engine,
        Some(ModuleCache::default_location()),
    )?;
    prepared
        .as_ref()
        .map(PreparedArtifact::to_wire)
        .transpose()
        .context("handing the prepared module to the zygote")
}

/// How long a process the shim gives up on (its terminal never came) may take to die.
const ABANDON_REAP: std::time::Duration = std::time::Duration::from_secs(5);

/// SIGKILLs this shim's child `pid` and reaps it, waiting at most `limit`.
fn kill_and_reap(pid: i32, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    // SAFETY: kill has no memory effects; `pid` is this shim's child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    loop {
        // SAFETY: waitpid with a null status writes nothing; it reaps only `pid`.
        let reaped = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if reaped != 0 || std::time::Instant::now() >= deadline {
            if reaped == 0 {
                tracing::warn!(pid, "abandoned process did not end in time");
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The shim crate's `run`, used here for the `start` and `delete` actions only, needs a
/// blocking task service type; the daemon serves [`crate::rpc::TaskRpc`] (`serve.rs`), so this
/// one is never served and every call would get the generated "not implemented" answer.
pub struct NotServed;

impl containerd_shim::Task for NotServed {}

impl containerd_shim::Shim for Service {
    type T = NotServed;

    fn new(runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        // A bad setting was refused by `start`, which reads the same environment; the daemon
        // falls back to exiting with its last container.
        let linger = Grouping::from_env()
            .and_then(|g| g.linger(std::env::var(LINGER_ENV).ok().as_deref()))
            .unwrap_or_default();
        Service {
            inner: Arc::new(Inner {
                namespace: args.namespace.clone(),
                containerd_address: args.address.clone(),
                engine: engine_of_runtime(runtime_id),
                state_root: state_root(&args.address, &args.namespace),
                shim_id: args.id.clone(),
                exit: Arc::new(ExitSignal::default()),
                tasks: Mutex::new(HashMap::new()),
                exited: Condvar::new(),
                publisher: Mutex::new(None),
                socket: PathBuf::from(args.socket.strip_prefix("unix://").unwrap_or(&args.socket)),
                linger,
                creates: std::sync::atomic::AtomicU64::new(0),
                idle: Mutex::new(IdleTimer::default()),
                zygote: std::sync::OnceLock::new(),
            }),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> Result<String, containerd_shim::Error> {
        let policy = Grouping::from_env()
            .map_err(|e| containerd_shim::Error::InvalidArgument(e.to_string()))?;
        // containerd runs `start` in the bundle: its config.json carries the pod's sandbox id.
        let sandbox = std::fs::read(Path::new("config.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|spec| {
                spec["annotations"][SANDBOX_ANNOTATION]
                    .as_str()
                    .map(str::to_string)
            });
        let grouping = policy.key(&opts.id, sandbox.as_deref(), &self.inner.engine);
        // Concurrent starts of one group must agree on one daemon: without the lock each
        // would find no socket, spawn its own and unlink the others' sockets.
        let _lock = StartLock::acquire(&self.inner.state_root)
            .map_err(|e| containerd_shim::Error::Other(format!("start lock: {e}")))?;
        // A shim already serving this pod answers on its socket: reuse it.
        let address = opts.socket_address(&grouping);
        let socket = address.strip_prefix("unix://").unwrap_or(&address);
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            write_address(&address)?;
            return Ok(address);
        }
        let _ = std::fs::remove_file(socket);
        // The daemon is spawned from /proc/self/exe, which names the real binary rather than
        // the link containerd found (`containerd-shim-wasmer-v1` → `…-wasmtime-v1`), so the
        // engine travels in the environment.
        let engine = self.inner.engine.clone();
        let (_, address) =
            containerd_shim::spawn(opts, &grouping, vec![(ENGINE_ENV, engine.as_str())])?;
        write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> Result<DeleteResponse, containerd_shim::Error> {
        // The shim that served this container is gone (crashed or killed); its container may
        // still run, reparented away from it. Remove it, its cgroup and state, and the rootfs
        // mount. containerd runs this action in the bundle directory. Best effort throughout:
        // containerd only needs an answer to finish its own cleanup.
        let dir = self.inner.state_root.join(&self.inner.shim_id);
        if dir.exists() {
            match Container::load(dir) {
                Ok(container) => {
                    if let Err(e) = crate::orphan::remove(container) {
                        tracing::warn!(id = %self.inner.shim_id, error = %e, "cannot delete container left by a dead shim");
                    }
                }
                Err(e) => {
                    tracing::warn!(id = %self.inner.shim_id, error = %e, "cannot load container left by a dead shim")
                }
            }
        }
        if let Ok(bundle) = std::env::current_dir() {
            let _ = crate::rootfs::unmount(&bundle.join("rootfs"));
        }
        Ok(DeleteResponse {
            exit_status: 137,
            exited_at: MessageField::some(Timestamp::now()),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.inner.exit.wait();
    }

    fn create_task_service(&self, _publisher: RemotePublisher) -> Self::T {
        NotServed
    }
}

/// Records the shim's socket in the bundle (containerd runs `start` there) as `address`:
/// containerd 1.6 reconnects to a running container's shim after its own restart only
/// through this file (1.7 and later also keep their own `bootstrap.json`). Without it, a
/// restarted containerd takes every running container for one whose shim died and kills it.
fn write_address(address: &str) -> Result<(), containerd_shim::Error> {
    let tmp = format!(".address.{}", std::process::id());
    std::fs::write(&tmp, address)
        .and_then(|()| std::fs::rename(&tmp, "address"))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            containerd_shim::Error::Other(format!("cannot write the bundle's address file: {e}"))
        })
}

/// Exec `exec_id` of task `id`, or NOT_FOUND naming both.
/// The terminal of task `id`'s init (`exec_id` empty) or of its exec `exec_id`, if it has one.
fn console_of<'a>(
    tasks: &'a HashMap<String, Task>,
    id: &str,
    exec_id: &str,
) -> TtrpcResult<Option<&'a Console>> {
    let task = tasks.get(id).ok_or_else(|| not_found(id))?;
    Ok(if exec_id.is_empty() {
        task.console.as_ref()
    } else {
        exec_of(task, id, exec_id)?.console.as_ref()
    })
}

fn exec_of<'a>(
    task: &'a Task,
    id: &str,
    exec_id: &str,
) -> Result<&'a ExecProc, containerd_shim::protos::ttrpc::Error> {
    task.execs.get(exec_id).ok_or_else(|| {
        rpc_error(
            containerd_shim::protos::ttrpc::Code::NOT_FOUND,
            format!("exec {exec_id} of task {id} not found"),
        )
    })
}

fn status_of(task: &Task) -> api::Status {
    match task.phase {
        Phase::Created => api::Status::CREATED,
        Phase::Running => api::Status::RUNNING,
        Phase::Paused => api::Status::PAUSED,
        Phase::Stopped => api::Status::STOPPED,
    }
}

/// The task API, called by `rpc::TaskRpc` on a blocking thread for each request: libcontainer
/// and the waits on container exits are synchronous.
impl Service {
    pub(crate) fn create(
        &self,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        let _span = tracing::info_span!("task.create", id = %req.id).entered();
        tracing::debug!(id = %req.id, bundle = %req.bundle, stdin = %req.stdin, stdout = %req.stdout, "create");
        let pid = self.create_task(&req).map_err(internal)?;
        self.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                pid,
                ..Default::default()
            },
        );
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    pub(crate) fn start(&self, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        let _span = tracing::info_span!("task.start", id = %req.id).entered();
        tracing::debug!(id = %req.id, exec_id = %req.exec_id, "start");
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id);
        }
        let pid = {
            let mut tasks = self.lock();
            let task = tasks.get_mut(&req.id).ok_or_else(|| not_found(&req.id))?;
            {
                let _cwd = cwd_lock();
                task.container.start().map_err(internal)?;
            }
            if task.phase == Phase::Created {
                task.phase = Phase::Running;
            }
            task.pid
        };
        self.publish(
            topics::TASK_START_EVENT_TOPIC,
            TaskStart {
                container_id: req.id.clone(),
                pid,
                ..Default::default()
            },
        );
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    pub(crate) fn state(&self, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        let tasks = self.lock();
        let task = tasks.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        if !req.exec_id.is_empty() {
            let exec = exec_of(task, &req.id, &req.exec_id)?;
            let (exit_status, exited_at) = exec.exit.clone().unwrap_or((0, Timestamp::default()));
            return Ok(api::StateResponse {
                id: req.exec_id.clone(),
                bundle: task.bundle.clone(),
                pid: exec.pid,
                status: EnumOrUnknown::new(exec.phase.status()),
                stdin: exec.stdin.clone(),
                stdout: exec.stdout.clone(),
                stderr: exec.stderr.clone(),
                exec_id: req.exec_id.clone(),
                exit_status,
                exited_at: MessageField::some(exited_at),
                ..Default::default()
            });
        }
        let (exit_status, exited_at) = task.exit.clone().unwrap_or((0, Timestamp::default()));
        Ok(api::StateResponse {
            id: req.id.clone(),
            bundle: task.bundle.clone(),
            pid: task.pid,
            status: EnumOrUnknown::new(status_of(task)),
            stdin: task.stdin.clone(),
            stdout: task.stdout.clone(),
            stderr: task.stderr.clone(),
            exit_status,
            exited_at: MessageField::some(exited_at),
            ..Default::default()
        })
    }

    pub(crate) fn wait(&self, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let _span = tracing::info_span!("task.wait", id = %req.id).entered();
        tracing::debug!(id = %req.id, "wait");
        let mut tasks = self.lock();
        loop {
            let task = tasks.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            let exit = if req.exec_id.is_empty() {
                task.exit.clone()
            } else {
                exec_of(task, &req.id, &req.exec_id)?.exit.clone()
            };
            if let Some((exit_status, exited_at)) = exit {
                return Ok(api::WaitResponse {
                    exit_status,
                    exited_at: MessageField::some(exited_at),
                    ..Default::default()
                });
            }
            tasks = self
                .inner
                .exited
                .wait(tasks)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    pub(crate) fn kill(&self, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let mut tasks = self.lock();
        let task = tasks.get_mut(&req.id).ok_or_else(|| not_found(&req.id))?;
        if !req.exec_id.is_empty() {
            let exec = exec_of(task, &req.id, &req.exec_id)?;
            if exec.phase == ExecPhase::Running {
                // SAFETY: kill has no memory effects; the pid is this shim's unreaped child
                // (its watcher thread reaps it only after it exits, and then marks it stopped
                // under the lock held here), so it names no other process.
                if unsafe { libc::kill(exec.pid as i32, req.signal as i32) } != 0 {
                    return Err(internal(std::io::Error::last_os_error()));
                }
            }
            return Ok(api::Empty::new());
        }
        if task.phase == Phase::Stopped {
            return Ok(api::Empty::new());
        }
        let signal = Signal::try_from(req.signal as i32).map_err(internal)?;
        task.container.kill(signal, req.all).map_err(internal)?;
        // A frozen process receives no signal until thawed: a paused task that is killed
        // would otherwise never exit, and containerd's delete would wait on it for ever.
        // Thawed after the signal, so that the task does not run in between; libcontainer
        // has already marked it stopped, so its own resume would refuse.
        if task.phase == Phase::Paused && req.signal as i32 == libc::SIGKILL {
            use libcgroups::common::CgroupManager;
            cgroup_of(&task.container)
                .and_then(|m| Ok(m.freeze(libcgroups::common::FreezerState::Thawed)?))
                .map_err(internal)?;
            task.phase = Phase::Running;
        }
        Ok(api::Empty::new())
    }

    pub(crate) fn delete(&self, req: api::DeleteRequest) -> TtrpcResult<api::DeleteResponse> {
        let _span = tracing::info_span!("task.delete", id = %req.id).entered();
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id);
        }
        let mut task = {
            let mut tasks = self.lock();
            tasks.remove(&req.id).ok_or_else(|| not_found(&req.id))?
        };
        wasmbay_runtime_bridge::delete::delete_container(&mut task.container, true)
            .map_err(internal)?;
        for exec in task.execs.values() {
            exec.remove_files();
        }
        if let Some(rootfs) = &task.rootfs_mounted {
            crate::rootfs::unmount(rootfs).map_err(internal)?;
        }
        let (exit_status, exited_at) = task.exit.clone().unwrap_or((0, Timestamp::now()));
        self.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: req.id.clone(),
                id: req.id.clone(),
                pid: task.pid,
                exit_status,
                exited_at: MessageField::some(exited_at.clone()),
                ..Default::default()
            },
        );
        Ok(api::DeleteResponse {
            pid: task.pid,
            exit_status,
            exited_at: MessageField::some(exited_at),
            ..Default::default()
        })
    }

    /// Registers a process to exec into task `req.id`; `start` with its exec id makes it.
    pub(crate) fn exec(&self, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let _span =
            tracing::info_span!("task.exec", id = %req.id, exec_id = %req.exec_id).entered();
        let mut tasks = self.lock();
        let task = tasks.get_mut(&req.id).ok_or_else(|| not_found(&req.id))?;
        if task.phase != Phase::Running {
            return Err(failed_precondition(&req.id, task, "exec in", "running"));
        }
        if task.execs.contains_key(&req.exec_id) {
            return Err(rpc_error(
                containerd_shim::protos::ttrpc::Code::ALREADY_EXISTS,
                format!("exec {} of task {} already exists", req.exec_id, req.id),
            ));
        }
        let (type_url, spec) = req
            .spec
            .as_ref()
            .map(|any| (any.type_url.as_str(), any.value.as_slice()))
            .unwrap_or_default();
        let exec = ExecProc::register(
            Path::new(&task.bundle),
            &req.exec_id,
            type_url,
            spec,
            [&req.stdin, &req.stdout, &req.stderr],
            req.terminal,
        )
        .map_err(|e| invalid_argument(e.to_string()))?;
        task.execs.insert(req.exec_id.clone(), exec);
        drop(tasks);
        self.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: req.id,
                exec_id: req.exec_id,
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    /// Makes exec `exec_id` of task `id` through the zygote, as a tenant of the container.
    fn start_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<api::StartResponse> {
        let prepared = {
            let tasks = self.lock();
            let task = tasks.get(id).ok_or_else(|| not_found(id))?;
            if task.phase != Phase::Running {
                return Err(failed_precondition(id, task, "start an exec in", "running"));
            }
            let exec = exec_of(task, id, exec_id)?;
            if exec.phase != ExecPhase::Created {
                return Err(rpc_error(
                    containerd_shim::protos::ttrpc::Code::FAILED_PRECONDITION,
                    format!("exec {exec_id} of task {id} was already started"),
                ));
            }
            let mut order = CreateOrder::new(
                id,
                PathBuf::from(&task.bundle),
                self.inner.state_root.clone(),
                task.engine.clone(),
            );
            order.exec_process = Some(exec.spec_file.clone());
            let (stdio, console_socket) = if exec.terminal {
                let socket = crate::console::bind_socket().map_err(internal)?;
                order.console_socket = Some(socket.path().to_path_buf());
                (None, Some(socket))
            } else {
                let stdio =
                    open_stdio(&exec.stdin, &exec.stdout, &exec.stderr).map_err(internal)?;
                (Some(stdio), None)
            };
            order.stdio = stdio.is_some();
            (
                order,
                stdio,
                console_socket,
                [exec.stdin.clone(), exec.stdout.clone()],
            )
        };
        let (mut order, stdio, console_socket, [stdin, stdout]) = prepared;
        let zygote = self
            .inner
            .zygote
            .get()
            .ok_or_else(|| internal("this shim process has no zygote to create processes"))?;
        // containerd does not delete an exec whose start failed: it is gone now.
        let forget = || {
            let removed = self
                .lock()
                .get_mut(id)
                .and_then(|t| t.execs.remove(exec_id));
            if let Some(exec) = removed {
                exec.remove_files();
            }
        };
        // A WebAssembly command is compiled (or found in the cache) here on the host, as an
        // init's module is, so the tenant maps the artifact instead of compiling it there.
        let code = match prepare_exec(&order) {
            Ok(Some((wire, fd))) => {
                order.prepared = Some(wire);
                Some(fd)
            }
            Ok(None) => None,
            Err(e) => {
                forget();
                return Err(invalid_argument(format!(
                    "exec {exec_id} of task {id}: {e:#}"
                )));
            }
        };
        // Outside the task lock: the exec's create takes milliseconds to seconds.
        let pid = match zygote.create(
            &order,
            stdio.as_ref().map(|[i, o, e]| [i, o, e]),
            code.as_ref().map(|fd| fd.as_fd()),
            true,
        ) {
            Ok(pid) => pid,
            Err(e) => {
                forget();
                return Err(internal(e));
            }
        };
        let console = match &console_socket {
            Some(socket) => match Console::start(socket, &stdin, &stdout) {
                Ok(console) => Some(console),
                Err(e) => {
                    kill_and_reap(pid, ABANDON_REAP);
                    forget();
                    return Err(internal(format!("exec {exec_id} of task {id}: {e}")));
                }
            },
            None => None,
        };
        {
            let mut tasks = self.lock();
            if let Some(exec) = tasks.get_mut(id).and_then(|t| t.execs.get_mut(exec_id)) {
                exec.pid = pid as u32;
                exec.phase = ExecPhase::Running;
                exec.console = console;
            }
        }
        self.watch(id.to_string(), Some(exec_id.to_string()), pid);
        self.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Forgets an exec that has ended (or never started), answering its exit.
    fn delete_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<api::DeleteResponse> {
        let exec = {
            let mut tasks = self.lock();
            let task = tasks.get_mut(id).ok_or_else(|| not_found(id))?;
            let exec = exec_of(task, id, exec_id)?;
            if exec.phase == ExecPhase::Running {
                return Err(rpc_error(
                    containerd_shim::protos::ttrpc::Code::FAILED_PRECONDITION,
                    format!("cannot delete exec {exec_id} of task {id}: it is running"),
                ));
            }
            task.execs
                .remove(exec_id)
                .ok_or_else(|| not_found(exec_id))?
        };
        exec.remove_files();
        let (exit_status, exited_at) = exec.exit.clone().unwrap_or((0, Timestamp::now()));
        Ok(api::DeleteResponse {
            pid: exec.pid,
            exit_status,
            exited_at: MessageField::some(exited_at),
            ..Default::default()
        })
    }

    /// Freezes every process of the task's cgroup (wasm or native alike), as runc does.
    pub(crate) fn pause(&self, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let _span = tracing::info_span!("task.pause", id = %req.id).entered();
        self.move_phase(
            &req.id,
            "pause",
            Phase::Running,
            Phase::Paused,
            Container::pause,
        )?;
        self.publish(
            topics::TASK_PAUSED_EVENT_TOPIC,
            TaskPaused {
                container_id: req.id,
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    pub(crate) fn resume(&self, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        let _span = tracing::info_span!("task.resume", id = %req.id).entered();
        self.move_phase(
            &req.id,
            "resume",
            Phase::Paused,
            Phase::Running,
            Container::resume,
        )?;
        self.publish(
            topics::TASK_RESUMED_EVENT_TOPIC,
            TaskResumed {
                container_id: req.id,
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    /// Runs `change` on task `id`'s container when the task is in phase `from`, then records
    /// phase `to`; any other phase is refused as a failed precondition naming `action`.
    fn move_phase<E: std::fmt::Display>(
        &self,
        id: &str,
        action: &str,
        from: Phase,
        to: Phase,
        change: impl FnOnce(&mut Container) -> Result<(), E>,
    ) -> TtrpcResult<()> {
        let mut tasks = self.lock();
        let task = tasks.get_mut(id).ok_or_else(|| not_found(id))?;
        if task.phase != from {
            let needed = if from == Phase::Running {
                "running"
            } else {
                "paused"
            };
            return Err(failed_precondition(id, task, action, needed));
        }
        change(&mut task.container).map_err(internal)?;
        task.phase = to;
        Ok(())
    }

    /// New cgroup limits for a live task (`ctr task update`, CRI UpdateContainerResources):
    /// containerd sends runtime-spec `LinuxResources` as JSON, which runc applies as given.
    pub(crate) fn update(&self, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        use libcgroups::common::{CgroupManager, ControllerOpt};
        let _span = tracing::info_span!("task.update", id = %req.id).entered();
        let tasks = self.lock();
        let task = tasks.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        if task.phase == Phase::Stopped {
            return Err(failed_precondition(&req.id, task, "update", "running"));
        }
        let Some(any) = req.resources.as_ref() else {
            return Err(invalid_argument(format!(
                "update of task {}: no resources given",
                req.id
            )));
        };
        let resources: wasmbay_shim_core::oci_spec::runtime::LinuxResources =
            serde_json::from_slice(&any.value).map_err(|e| {
                invalid_argument(format!(
                    "update of task {}: resources ({}) are not runtime-spec LinuxResources JSON: {e}",
                    req.id, any.type_url
                ))
            })?;
        cgroup_of(&task.container)
            .and_then(|manager| {
                Ok(manager.apply(&ControllerOpt {
                    resources: &resources,
                    disable_oom_killer: false,
                    oom_score_adj: None,
                    freezer_state: None,
                })?)
            })
            .map_err(internal)?;
        Ok(api::Empty::new())
    }

    pub(crate) fn checkpoint(&self, _req: api::CheckpointTaskRequest) -> TtrpcResult<api::Empty> {
        Err(unsupported("checkpoint"))
    }

    /// Sets the size of the terminal of the task's init or of exec `exec_id`; a process
    /// without one has nothing to resize (runc's shim answers the same).
    pub(crate) fn resize_pty(&self, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        let tasks = self.lock();
        if let Some(console) = console_of(&tasks, &req.id, &req.exec_id)? {
            console
                .resize(req.width, req.height)
                .map_err(|e| invalid_argument(e.to_string()))?;
        }
        Ok(api::Empty::new())
    }

    /// Without a terminal the shim keeps no copy of a process's stdin (the process holds the
    /// only one), so there is nothing of its own to close; with one, the copy into the
    /// terminal stops.
    pub(crate) fn close_io(&self, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        let tasks = self.lock();
        if let Some(console) = console_of(&tasks, &req.id, &req.exec_id)? {
            console.close_stdin();
        }
        Ok(api::Empty::new())
    }

    pub(crate) fn pids(&self, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        use libcgroups::common::CgroupManager;
        let tasks = self.lock();
        let task = tasks.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        let pids = cgroup_of(&task.container)
            .and_then(|m| Ok(m.get_all_pids()?))
            .map_err(internal)?;
        Ok(api::PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| containerd_shim::protos::types::task::ProcessInfo {
                    pid: pid.as_raw() as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    pub(crate) fn stats(&self, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        use containerd_shim::protos::protobuf::Message as _;
        use libcgroups::common::CgroupManager;
        let tasks = self.lock();
        let task = tasks.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        let (type_url, value) = match &task.cgroup_v2 {
            Some(dir) => {
                let metrics = crate::cgroup_v2::metrics(dir).map_err(internal)?;
                (crate::cgroup_v2::METRICS_TYPE, metrics.write_to_bytes())
            }
            None => {
                let stats = cgroup_of(&task.container)
                    .and_then(|m| Ok(m.stats()?))
                    .map_err(internal)?;
                (
                    "io.containerd.cgroups.v1.Metrics",
                    metrics_of(&stats).write_to_bytes(),
                )
            }
        };
        let any = containerd_shim::protos::protobuf::well_known_types::any::Any {
            type_url: type_url.to_string(),
            value: value.map_err(internal)?,
            ..Default::default()
        };
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    pub(crate) fn connect(&self, req: api::ConnectRequest) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self.lock().get(&req.id).map(|t| t.pid).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    pub(crate) fn shutdown(&self, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if self.lock().is_empty() {
            self.exit_when_idle();
        }
        Ok(api::Empty::new())
    }
}

/// The cgroup manager of a container created by this shim.
pub(crate) fn cgroup_of(
    container: &Container,
) -> anyhow::Result<libcgroups::common::AnyCgroupManager> {
    let config = container.spec()?;
    Ok(libcgroups::common::create_cgroup_manager(
        libcgroups::common::CgroupConfig {
            cgroup_path: config.cgroup_path.clone(),
            systemd_cgroup: container.systemd(),
            container_name: container.id().to_string(),
        },
    )?)
}

/// containerd's cgroup v1 metrics message from libcgroups' statistics (cgroup v1 hosts only:
/// on v2 [`crate::cgroup_v2::metrics`] answers).
fn metrics_of(
    stats: &libcgroups::stats::Stats,
) -> containerd_shim::protos::cgroups::metrics::Metrics {
    use containerd_shim::protos::cgroups::metrics::{
        CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat,
    };
    let entry = |d: &libcgroups::stats::MemoryData| MemoryEntry {
        limit: d.limit,
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
        ..Default::default()
    };
    Metrics {
        pids: MessageField::some(PidsStat {
            current: stats.pids.current,
            limit: stats.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage: MessageField::some(CPUUsage {
                total: stats.cpu.usage.usage_total,
                kernel: stats.cpu.usage.usage_kernel,
                user: stats.cpu.usage.usage_user,
                per_cpu: stats.cpu.usage.per_core_usage_total.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            cache: stats.memory.cache,
            usage: MessageField::some(entry(&stats.memory.memory)),
            swap: MessageField::some(entry(&stats.memory.memswap)),
            kernel: MessageField::some(entry(&stats.memory.kernel)),
            kernel_tcp: MessageField::some(entry(&stats.memory.kernel_tcp)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
