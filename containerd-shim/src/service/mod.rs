//! The shim's task service: the containers of one pod (or of one container outside
//! Kubernetes, or of a namespace) in one shim process.
//!
//! The service keeps the task state machine ([`Lifecycle`], one per init and per exec), the
//! exit watchers, the events and the idle exit; the containers themselves are behind
//! [`Containers`] (`zygote_containers.rs` in the daemon, plain child processes in the unit
//! tests). By concern:
//! - `task_api.rs`: the task API's requests on inits;
//! - `exec_api.rs`: processes exec'd into a task;
//! - `watch.rs`: the waits for exits and OOM kills, and what they record and publish;
//! - `idle.rs`: the shim's exit after its last container, and the start lock;
//! - `shim_actions.rs`: the `start` and `delete` actions and the daemon's construction.

mod errors;
mod exec_api;
mod idle;
mod shim_actions;
mod task_api;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use containerd_shim::api;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::{ExitSignal, TtrpcResult};
use wasmbay_runtime_bridge::zygote::Zygote;
use wasmbay_shim_core::lifecycle::{Lifecycle, Phase};

use crate::cgroup_v2::OomWatch;
use crate::console::Console;
use crate::containers::{Containers, TaskContainer};
use crate::exec::ExecProc;
use errors::{exec_not_found, not_found};
use idle::IdleTimer;

pub use shim_actions::ENGINE_ENV;

/// Where task events go: containerd's event service in the daemon (`events.rs`).
pub(crate) trait Publish: Send + Sync {
    /// Sends one event (packed as containerd resolves it) and waits until it is taken.
    fn forward(&self, topic: &str, namespace: &str, event: Any) -> anyhow::Result<()>;
}

/// One task: a container's init and the processes exec'd into it.
struct Task {
    container: Box<dyn TaskContainer>,
    bundle: String,
    stdin: String,
    stdout: String,
    stderr: String,
    pid: u32,
    life: Lifecycle,
    /// The engine the init runs on, which an exec'd WebAssembly command runs on too.
    engine: String,
    /// Processes exec'd into the task, by exec id.
    execs: HashMap<String, ExecProc>,
    /// The init's terminal, when it was made with one.
    console: Option<Console>,
    /// The cgroup v2 OOM watcher, which ends when this is dropped with the task.
    oom_watch: Option<OomWatch>,
}

/// What one shim process serves, fixed when it starts.
pub(crate) struct Settings {
    /// The containerd namespace of every task, which events carry.
    pub namespace: String,
    /// The `-id` containerd started this shim process with.
    pub shim_id: String,
    /// The engine of the runtime name containerd started the shim by.
    pub engine: String,
    /// Container state of this containerd and namespace (and the start lock).
    pub state_root: PathBuf,
    /// This shim's socket, removed before an idle shim exits so no new container is sent to it.
    pub socket: PathBuf,
    /// How long the shim outlives its last container.
    pub linger: std::time::Duration,
}

struct Inner {
    settings: Settings,
    exit: Arc<ExitSignal>,
    tasks: Mutex<HashMap<String, Task>>,
    /// Notified whenever an init or exec exit is recorded, for `wait`.
    exited: Condvar,
    publisher: Mutex<Option<Box<dyn Publish>>>,
    /// Counts creates, so an idle shim knows whether a container came while it lingered.
    creates: AtomicU64,
    /// The linger timer: the latest idle moment, and whether its thread runs.
    idle: Mutex<IdleTimer>,
    containers: Box<dyn Containers>,
    /// Where the daemon's container inits come from (shared with its [`Containers`]); set
    /// once at boot.
    zygote: Arc<OnceLock<Zygote>>,
}

#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl Service {
    pub(crate) fn with(
        settings: Settings,
        containers: Box<dyn Containers>,
        zygote: Arc<OnceLock<Zygote>>,
    ) -> Service {
        Service {
            inner: Arc::new(Inner {
                settings,
                exit: Arc::new(ExitSignal::default()),
                tasks: Mutex::new(HashMap::new()),
                exited: Condvar::new(),
                publisher: Mutex::new(None),
                creates: AtomicU64::new(0),
                idle: Mutex::new(IdleTimer::default()),
                containers,
                zygote,
            }),
        }
    }

    /// The single-threaded process that creates this shim's containers.
    pub(crate) fn set_zygote(&self, zygote: Zygote) {
        let _ = self.inner.zygote.set(zygote);
    }

    /// Where this shim's task events go from now on.
    pub(crate) fn set_events(&self, sink: Box<dyn Publish>) {
        *self
            .inner
            .publisher
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    /// Sends `event`; one that containerd does not take is logged and dropped, as the state
    /// it reports stays readable through `state` and `wait`.
    fn publish<E: Message>(&self, topic: &str, event: E) {
        let publisher = self
            .inner
            .publisher
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(publisher) = publisher.as_ref() else {
            return;
        };
        let sent = crate::events::event_any(&event)
            .and_then(|any| publisher.forward(topic, &self.inner.settings.namespace, any));
        if let Err(e) = sent {
            tracing::warn!(topic, error = %e, "cannot publish event");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Task>> {
        self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on task `id` under the task lock, or answers NOT_FOUND.
    fn with_task<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Task) -> TtrpcResult<T>,
    ) -> TtrpcResult<T> {
        let mut tasks = self.lock();
        f(tasks.get_mut(id).ok_or_else(|| not_found(id))?)
    }
}

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

/// Exec `exec_id` of task `id`, or NOT_FOUND naming both.
fn exec_of<'a>(task: &'a Task, id: &str, exec_id: &str) -> TtrpcResult<&'a ExecProc> {
    task.execs
        .get(exec_id)
        .ok_or_else(|| exec_not_found(id, exec_id))
}

/// The task API's word for a phase.
fn status_of(phase: Phase) -> api::Status {
    match phase {
        Phase::Created => api::Status::CREATED,
        Phase::Running => api::Status::RUNNING,
        Phase::Paused => api::Status::PAUSED,
        Phase::Stopped => api::Status::STOPPED,
    }
}

/// The recorded exit status and time, or `otherwise` as the time when none is recorded.
fn exit_of(life: &Lifecycle, otherwise: Timestamp) -> (u32, Timestamp) {
    match life.exit() {
        Some(exit) => (exit.status, Timestamp::from(exit.at)),
        None => (0, otherwise),
    }
}
