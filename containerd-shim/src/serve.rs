//! The shim's server process: the task service on its ttrpc socket.
//!
//! The shim crate serves only the task API v3 (containerd 2.x), while containerd 1.6 and 1.7
//! call `containerd.task.v2.Task`. The two versions carry the same messages for every method
//! used here, so the same handlers are registered under both names.

use std::sync::Arc;

use anyhow::{Context, Result};
use containerd_shim::protos::shim_async::{create_task, Task};
use containerd_shim::protos::ttrpc;
use containerd_shim::Shim;
use tracing_subscriber::Layer as _;

use crate::events::EventSink;
use crate::mount_namespace::{self, MountPlacement};
use crate::rpc::TaskRpc;
use crate::service::Service;
use wasmbay_runtime_bridge::zygote::Zygote;

/// Overrides which log lines reach `WASMBAY_SHIM_LOG`, in `tracing` filter syntax; e.g.
/// `libcontainer=debug` shows each step of a container's creation with its time.
pub const LOG_FILTER_ENV: &str = "WASMBAY_SHIM_LOG_FILTER";

const DEFAULT_LOG_FILTER: &str =
    "info,containerd_shim_wasmtime_v1=debug,wasmbay_runtime_bridge=debug,wasmbay_shim_core=debug";

/// Logs go to the file `WASMBAY_SHIM_LOG` names, when it does (containerd 1.6 gives a shim no
/// log destination of its own); span timings go to the start-up trace when
/// `WASMBAY_TRACE_DIR` is set. Without either, nothing is installed and spans cost nothing.
pub fn install_subscriber(process: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let log = std::env::var_os("WASMBAY_SHIM_LOG").and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    let recorder = wasmbay_shim_core::trace::SpanRecorder::from_env(process);
    if log.is_none() && recorder.is_none() {
        return;
    }
    let fmt = log.map(|file| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(tracing_subscriber::EnvFilter::new(
                std::env::var(LOG_FILTER_ENV).unwrap_or_else(|_| DEFAULT_LOG_FILTER.to_string()),
            ))
    });
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(recorder)
        .try_init();
}

/// Requests one shim serves at once; each pending `wait` is one.
const MAX_REQUESTS_IN_FLIGHT: usize = 8192;

pub fn serve(runtime_id: &str, args: &[String]) -> Result<()> {
    let flags = containerd_shim::parse(args).context("shim flags")?;
    // Before any thread exists: the kernel refuses the unshare in a threaded process.
    let private_mounts = match MountPlacement::from_env() {
        MountPlacement::Private => Some(mount_namespace::enter_private()),
        MountPlacement::Host => None,
    };
    // containerd starts the shim in the first container's bundle, which is removed with that
    // container while the shim may go on serving others (a pod, a namespace); libcontainer
    // (in the zygote) needs a working directory that exists.
    std::env::set_current_dir("/").context("chdir /")?;
    install_subscriber("shim");
    // Still before any thread: container inits must come from a single-threaded parent.
    let zygote = Zygote::fork(true).context("forking the shim's zygote")?;
    match private_mounts {
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot enter a private mount namespace; container root filesystems are mounted in the host's")
        }
        Some(Ok(())) => tracing::debug!("in a private mount namespace, a slave of the host's"),
        None => {}
    }
    // containerd creates the first container as soon as the socket answers.
    wasmbay_runtime_bridge::cgroup_warmup::begin();
    let _boot = tracing::info_span!("shim.boot").entered();
    tracing::debug!(?args, "shim server starting");
    if flags.socket.is_empty() {
        anyhow::bail!("-socket is required");
    }
    // Container init processes are grandchildren; as subreaper the shim inherits and waits
    // for them.
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes integers only and changes this process's own
    // attribute.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut config = containerd_shim::Config {
        no_reaper: true,
        ..Default::default()
    };
    let mut shim = Service::new(runtime_id, &flags, &mut config);
    shim.set_zygote(zygote);
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").context("TTRPC_ADDRESS is not set")?;
    // One worker is enough: every request hands its work to the blocking pool at once. Each
    // container's pending `wait` holds a blocking thread until it exits, so the pool must not
    // cap below the containers one shim may serve (a namespace's); idle threads end after 10 s.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(MAX_REQUESTS_IN_FLIGHT)
        .thread_name("shim-rpc")
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let events = runtime
        .block_on(EventSink::connect(&ttrpc_address, runtime.handle().clone()))
        .context("connecting the event publisher")?;
    shim.set_events(Box::new(events));
    let task: Arc<dyn Task + Send + Sync> = Arc::new(TaskRpc(shim.clone()));
    // containerd 1.6 calls the task service as v2, newer ones as v3; the messages are the same.
    let mut services = create_task(task.clone());
    for (name, service) in create_task(task) {
        services.insert(
            name.replace("containerd.task.v3.", "containerd.task.v2."),
            service,
        );
    }

    let socket = flags
        .socket
        .strip_prefix("unix://")
        .unwrap_or(&flags.socket);
    let _ = std::fs::remove_file(socket);
    if let Some(dir) = std::path::Path::new(socket).parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    let mut server = {
        // The listener registers with the runtime's reactor as it is made.
        let _reactor = runtime.enter();
        ttrpc::r#async::Server::new()
            .bind(&format!("unix://{socket}"))
            .with_context(|| format!("listening on {socket}"))?
            .register_service(services)
    };
    runtime
        .block_on(server.start())
        .context("starting the ttrpc server")?;
    drop(_boot);

    // The `start` action waits for this process's stdout to close before it answers
    // containerd: the socket is ready now.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: `null` stays open for the call; fd 1 is replaced atomically, and no object in
        // this process owns fd 1 to close the new one later.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }

    Shim::wait(&mut shim);
    if let Err(e) = runtime.block_on(server.shutdown()) {
        tracing::warn!(error = %e, "ttrpc server shutdown");
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}
