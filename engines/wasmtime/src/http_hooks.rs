//! The guest's outgoing `wasi:http` requests follow its network, as `wasi:sockets` does: with
//! the network (a container's, or `--inherit-network`) they are sent as any client on that
//! network would send them; without it every request is denied before a connection is tried.

use std::future::Future;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The response and the future that reports errors of its body, as the hook returns them.
type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestHttpHooks {
    pub network: bool,
}

impl WasiHttpHooks for GuestHttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, Error>> + Send> {
        if !self.network {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
