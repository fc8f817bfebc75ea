//! Task events (create, start, exit, delete, OOM) sent to containerd's event service.
//!
//! The daemon sends them through an asynchronous ttrpc client: the blocking client of the
//! ttrpc crate reads each connection in a thread that wakes every 10 ms to poll, so a node
//! with a thousand idle shims spent a core on wake-ups alone (see `rpc.rs`).

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::util::{convert_to_any, timestamp};
use tokio::runtime::Handle;

/// How long containerd gets to take one event before the shim gives up on it.
const FORWARD_TIMEOUT_NS: i64 = 5_000_000_000;

/// containerd's event service, through a client driven by the daemon's tokio runtime.
pub struct EventSink {
    runtime: Handle,
    client: EventsClient,
}

impl EventSink {
    /// Connects to containerd's ttrpc socket (`TTRPC_ADDRESS`, a path or `unix://` address).
    pub async fn connect(address: &str, runtime: Handle) -> anyhow::Result<EventSink> {
        let address = if address.starts_with("unix://") {
            address.to_string()
        } else {
            format!("unix://{address}")
        };
        let client = Client::connect(&address)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {address}: {e}"))?;
        Ok(EventSink {
            runtime,
            client: EventsClient::new(client),
        })
    }

    /// Sends one event and waits until containerd has taken it, so that events arrive in the
    /// order they happened (a task's exit after its start). Called from blocking threads.
    pub fn publish(
        &self,
        topic: &str,
        namespace: &str,
        event: Box<dyn MessageDyn>,
    ) -> anyhow::Result<()> {
        let mut envelope = Envelope::new();
        envelope.set_topic(topic.to_string());
        envelope.set_namespace(namespace.to_string());
        envelope.set_timestamp(timestamp()?);
        envelope.set_event(convert_to_any(event)?);
        let mut request = ForwardRequest::new();
        request.set_envelope(envelope);
        let context = Context {
            timeout_nano: FORWARD_TIMEOUT_NS,
            ..Context::default()
        };
        self.runtime
            .block_on(self.client.forward(context, &request))?;
        Ok(())
    }
}
