//! A client for the Kubernetes CRI runtime service that a private containerd serves on its
//! gRPC socket, so tests walk the same path kubelet does with a RuntimeClass.

use std::future::Future;
use std::path::Path;

use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Response, Status};
pub use k8s_cri::v1 as api;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;

use crate::TestkitError;

pub struct CriClient {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
}

impl CriClient {
    pub fn connect(socket: &Path) -> Result<CriClient, TestkitError> {
        let (runtime, channel) = crate::api::connect(socket)?;
        Ok(CriClient { runtime, channel })
    }

    /// Makes one runtime-service call; `what` names it in the error.
    pub fn call<T, F>(
        &self,
        what: &str,
        call: impl FnOnce(RuntimeServiceClient<Channel>) -> F,
    ) -> Result<T, TestkitError>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        let client = RuntimeServiceClient::new(self.channel.clone());
        self.runtime
            .block_on(call(client))
            .map(Response::into_inner)
            .map_err(|status| TestkitError::Api(format!("CRI {what}: {}", status.message())))
    }
}
