//! What the task service asks of the containers it serves, and of whatever makes them.
//!
//! The service (`service/`) keeps the task state machine, the exit watchers, the events and
//! the idle exit; everything that needs root and a kernel's namespaces and cgroups is behind
//! these two traits. The daemon's implementation is [`crate::zygote_containers`]
//! (libcontainer, inits from the zygote); the service's unit tests use plain child processes.

use std::path::PathBuf;

use containerd_shim::api;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use wasmbay_shim_core::oci_spec::runtime::LinuxResources;

use crate::cgroup_v2::OomWatch;
use crate::console::Console;

/// A container the backend made: its init waits for `start`.
pub(crate) struct Created {
    pub container: Box<dyn TaskContainer>,
    /// The init, a child of this process (the service waits for it).
    pub pid: i32,
    /// The engine the init runs on, which an exec'd WebAssembly command runs on too.
    pub engine: String,
    /// The init's terminal, when it was made with one.
    pub console: Option<Console>,
}

/// An exec'd process the backend started.
pub(crate) struct Started {
    /// A child of this process, like an init.
    pub pid: i32,
    pub console: Option<Console>,
}

/// The exec to start and the task it goes into, taken from the service's records so that the
/// start runs outside its task lock.
pub(crate) struct ExecTarget {
    /// The task's id, which is its container's.
    pub id: String,
    pub bundle: PathBuf,
    /// The task's engine, for a WebAssembly command.
    pub engine: String,
    /// The process spec the exec's registration wrote into the bundle.
    pub spec_file: PathBuf,
    /// containerd's stdin, stdout and stderr fifos for the process (empty for none).
    pub stdio: [String; 3],
    /// Whether the process gets a terminal.
    pub terminal: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecStartError {
    /// The exec's program cannot be run as given (a module that does not compile, a process
    /// spec that does not fit the container).
    #[error("{0:#}")]
    Invalid(anyhow::Error),
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// Makes containers and exec'd processes.
pub(crate) trait Containers: Send + Sync {
    /// Makes the container of a create request; on error nothing it made remains.
    fn create(&self, req: &api::CreateTaskRequest) -> anyhow::Result<Created>;

    /// Starts an exec registered with the task; on error nothing it started remains.
    fn start_exec(&self, target: ExecTarget) -> Result<Started, ExecStartError>;
}

/// One container's system side. The service calls these under its task lock, after its state
/// machine has allowed the request.
pub(crate) trait TaskContainer: Send {
    /// Lets the init run its process.
    fn start(&mut self) -> anyhow::Result<()>;
    /// Signals the init, or with `all` every process of the container.
    fn kill(&mut self, signal: i32, all: bool) -> anyhow::Result<()>;
    /// Freezes every process of the container.
    fn pause(&mut self) -> anyhow::Result<()>;
    fn resume(&mut self) -> anyhow::Result<()>;
    /// Thaws a container its frontend has already marked stopped (a paused container that
    /// was SIGKILLed), where `resume` would refuse.
    fn thaw(&mut self) -> anyhow::Result<()>;
    /// New resource limits, applied as given.
    fn update(&mut self, resources: &LinuxResources) -> anyhow::Result<()>;
    /// The pids of every process of the container.
    fn pids(&self) -> anyhow::Result<Vec<u32>>;
    /// The container's statistics as containerd's metrics message.
    fn stats(&self) -> anyhow::Result<Any>;
    /// Calls `on_oom` whenever the kernel OOM-kills in the container; the watch may end with
    /// the returned handle, or with the container's cgroup.
    fn watch_oom(&self, on_oom: Box<dyn Fn() + Send>) -> anyhow::Result<Option<OomWatch>>;
    /// Removes the container: what its init left, its cgroup, state and rootfs mount.
    fn delete(&mut self) -> anyhow::Result<()>;
}
