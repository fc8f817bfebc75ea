//! The shim's server process: the task service on its ttrpc socket.
//!
//! The shim crate serves only the task API v3 (containerd 2.x), while containerd 1.6 and 1.7
//! call `containerd.task.v2.Task`. The two versions carry the same messages for every method
//! used here, so the same handlers are registered under both names.

use std::os::fd::IntoRawFd;
use std::sync::Arc;

use anyhow::{Context, Result};
use containerd_shim::protos::shim_sync::{create_task, Task};
use containerd_shim::protos::ttrpc;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::Shim;

use crate::service::Service;

pub fn serve(runtime_id: &str, args: &[String]) -> Result<()> {
    let flags = containerd_shim::parse(args).context("shim flags")?;
    // containerd 1.6 gives a shim no log destination of its own; `WASMBAY_SHIM_LOG` names a
    // file for the shim's logs when debugging.
    if let Some(path) = std::env::var_os("WASMBAY_SHIM_LOG") {
        if let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info,containerd_shim_wasmtime_v1=debug,wasmbay_runtime_bridge=debug,wasmbay_shim_core=debug"))
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
    }
    tracing::debug!(?args, "shim server starting");
    if flags.socket.is_empty() {
        anyhow::bail!("-socket is required");
    }
    // Container init processes are grandchildren; as subreaper the shim inherits and waits
    // for them.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut config = containerd_shim::Config {
        no_reaper: true,
        ..Default::default()
    };
    let mut shim = Service::new(runtime_id, &flags, &mut config);
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").context("TTRPC_ADDRESS is not set")?;
    let publisher =
        RemotePublisher::new(&ttrpc_address).context("connecting the event publisher")?;
    let task: Arc<dyn Task + Send + Sync> = Arc::new(shim.create_task_service(publisher));
    let mut methods = create_task(task.clone());
    for (path, handler) in create_task(task) {
        methods.insert(
            path.replace("/containerd.task.v3.", "/containerd.task.v2."),
            handler,
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
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("listening on {socket}"))?;
    let mut server = ttrpc::Server::new()
        .add_listener(listener.into_raw_fd())
        .context("ttrpc listener")?
        .register_service(methods);
    server.start().context("starting the ttrpc server")?;

    // The `start` action waits for this process's stdout to close before it answers
    // containerd: the socket is ready now.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }

    Shim::wait(&mut shim);
    server.shutdown();
    let _ = std::fs::remove_file(socket);
    Ok(())
}
