//! A client for the Kubernetes CRI runtime service that a private containerd serves on its
//! gRPC socket, so tests walk the same path kubelet does with a RuntimeClass.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Response, Status};
pub use k8s_cri::v1 as api;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;

use crate::TestkitError;

/// The longest a single CRI call may take: a pod start under emulation (scripts/guest.sh)
/// takes seconds, and a call that never answers must fail the test, not hang it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

pub struct CriClient {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
}

impl CriClient {
    pub fn connect(socket: &Path) -> Result<CriClient, TestkitError> {
        let (runtime, channel) = crate::api::connect(socket)?;
        Ok(CriClient { runtime, channel })
    }

    /// Makes one runtime-service call, bounded by [`CALL_TIMEOUT`]; `what` names it in the
    /// error.
    pub fn call<T, F>(
        &self,
        what: &str,
        call: impl FnOnce(RuntimeServiceClient<Channel>) -> F,
    ) -> Result<T, TestkitError>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        let client = RuntimeServiceClient::new(self.channel.clone());
        match self.runtime.block_on(async {
            tokio::time::timeout(crate::scaled(CALL_TIMEOUT), call(client)).await
        }) {
            Ok(answer) => answer
                .map(Response::into_inner)
                .map_err(|status| TestkitError::Api(format!("CRI {what}: {}", status.message()))),
            Err(_) => Err(TestkitError::Api(format!(
                "CRI {what}: no answer within {} s",
                crate::scaled(CALL_TIMEOUT).as_secs()
            ))),
        }
    }
}
