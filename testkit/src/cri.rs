//! A client for the Kubernetes CRI runtime service that a private containerd serves on its
//! gRPC socket, so tests walk the same path kubelet does with a RuntimeClass.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Response, Status};
pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
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

    /// `PullImage` of `image`, as kubelet asks it; the image's reference (by digest) in
    /// containerd.
    pub fn pull_image(&self, image: &str) -> Result<String, TestkitError> {
        let client = ImageServiceClient::new(self.channel.clone());
        let request = api::PullImageRequest {
            image: Some(api::ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.bounded(&format!("PullImage {image}"), async move {
            let mut client = client;
            client.pull_image(request).await
        })
        .map(|r| r.image_ref)
    }

    /// One call, bounded by [`CALL_TIMEOUT`]; `what` names it in the error.
    fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<T, TestkitError> {
        match self
            .runtime
            .block_on(async { tokio::time::timeout(crate::scaled(CALL_TIMEOUT), call).await })
        {
            Ok(answer) => answer
                .map(Response::into_inner)
                .map_err(|status| TestkitError::Api(format!("CRI {what}: {}", status.message()))),
            Err(_) => Err(TestkitError::Api(format!(
                "CRI {what}: no answer within {} s",
                crate::scaled(CALL_TIMEOUT).as_secs()
            ))),
        }
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
        self.bounded(what, call(client))
    }
}
