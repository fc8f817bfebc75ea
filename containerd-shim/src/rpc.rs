//! The task service on an asynchronous ttrpc server.
//!
//! The ttrpc crate's blocking server reads every connection in a thread that wakes each 10 ms
//! to poll its socket. containerd keeps one connection open to every shim, so each idle shim
//! woke 100 times a second: with 1,000 sleeping containers, one shim each, the load average
//! passed 100. The asynchronous server waits in the tokio reactor and wakes only for requests.
//!
//! Each request runs the service's blocking method on tokio's blocking pool: container
//! creation (libcontainer) and `wait` (until the container exits) are synchronous.

use async_trait::async_trait;
use containerd_shim::api;
use containerd_shim::protos::shim_async::Task;
use containerd_shim::protos::ttrpc;
use containerd_shim::protos::ttrpc::r#async::TtrpcContext;

use crate::service::Service;

pub struct TaskRpc(pub Service);

/// Runs `call` on the blocking pool; a panic in it becomes an INTERNAL error for that request
/// instead of ending the shim.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> ttrpc::Result<T> + Send + 'static,
) -> ttrpc::Result<T> {
    tokio::task::spawn_blocking(call).await.map_err(|e| {
        ttrpc::Error::RpcStatus(ttrpc::get_status(
            ttrpc::Code::INTERNAL,
            format!("task request failed: {e}"),
        ))
    })?
}

/// The service, one forwarding method per RPC: `$name(request) -> response` calls the
/// [`Service`] method of that name. Generated whole so that `async_trait` sees the methods.
macro_rules! task_rpc {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        #[async_trait]
        impl Task for TaskRpc {
            $(
                async fn $name(&self, _ctx: &TtrpcContext, req: $req) -> ttrpc::Result<$resp> {
                    let service = self.0.clone();
                    blocking(move || service.$name(req)).await
                }
            )*
        }
    };
}

task_rpc! {
    state(api::StateRequest) -> api::StateResponse;
    create(api::CreateTaskRequest) -> api::CreateTaskResponse;
    start(api::StartRequest) -> api::StartResponse;
    delete(api::DeleteRequest) -> api::DeleteResponse;
    pids(api::PidsRequest) -> api::PidsResponse;
    pause(api::PauseRequest) -> api::Empty;
    resume(api::ResumeRequest) -> api::Empty;
    checkpoint(api::CheckpointTaskRequest) -> api::Empty;
    kill(api::KillRequest) -> api::Empty;
    exec(api::ExecProcessRequest) -> api::Empty;
    resize_pty(api::ResizePtyRequest) -> api::Empty;
    close_io(api::CloseIORequest) -> api::Empty;
    update(api::UpdateTaskRequest) -> api::Empty;
    wait(api::WaitRequest) -> api::WaitResponse;
    stats(api::StatsRequest) -> api::StatsResponse;
    connect(api::ConnectRequest) -> api::ConnectResponse;
    shutdown(api::ShutdownRequest) -> api::Empty;
}
