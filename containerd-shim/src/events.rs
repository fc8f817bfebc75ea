//! Task events (create, start, exit, delete, OOM) sent to containerd's event service.
//!
//! The daemon sends them through an asynchronous ttrpc client: the blocking client of the
//! ttrpc crate reads each connection in a thread that wakes every 10 ms to poll, so a node
//! with a thousand idle shims spent a core on wake-ups alone (see `rpc.rs`).
//!
//! Events are packed into `Any` by hand. The shim crate's `convert_to_any` asks protobuf
//! reflection for the type name, and the first such call parses the embedded descriptors of
//! every proto file involved, `descriptor.proto` with its comments included: about 0.5 MiB
//! of heap that each shim then kept for its whole life, and that every container init
//! cloned from it carried as well.

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::util::timestamp;
use tokio::runtime::Handle;

/// The protobuf package of containerd's task events; its `Any` type URLs are the full names.
const EVENTS_PACKAGE: &str = "containerd.events";

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
}

impl crate::service::Publish for EventSink {
    /// Sends one event and waits until containerd has taken it, so that events arrive in the
    /// order they happened (a task's exit after its start). Called from blocking threads.
    fn forward(&self, topic: &str, namespace: &str, event: Any) -> anyhow::Result<()> {
        let mut envelope = Envelope::new();
        envelope.set_topic(topic.to_string());
        envelope.set_namespace(namespace.to_string());
        envelope.set_timestamp(timestamp()?);
        envelope.set_event(event);
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

/// `event` as an `Any` whose type URL is the event's full protobuf name, the form containerd
/// resolves (`containerd.events.TaskExit`).
pub(crate) fn event_any<E: Message>(event: &E) -> anyhow::Result<Any> {
    Ok(Any {
        type_url: format!("{EVENTS_PACKAGE}.{}", E::NAME),
        value: event.write_to_bytes()?,
        ..Any::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::events::task::{
        TaskCreate, TaskDelete, TaskExit, TaskOOM, TaskStart,
    };
    use containerd_shim::util::convert_to_any;

    /// The hand-made `Any` must be exactly what the reflection-based packing gives.
    fn same_as_reflection<E: containerd_shim::protos::protobuf::MessageFull>(event: E) {
        let ours = event_any(&event).unwrap();
        let reflected = convert_to_any(Box::new(event)).unwrap();
        assert_eq!(ours.type_url, reflected.type_url);
        assert_eq!(ours.value, reflected.value);
    }

    #[test]
    fn every_task_event_packs_like_reflection() {
        same_as_reflection(TaskCreate {
            container_id: "c".into(),
            bundle: "/b".into(),
            pid: 7,
            ..TaskCreate::default()
        });
        same_as_reflection(TaskStart {
            container_id: "c".into(),
            pid: 7,
            ..TaskStart::default()
        });
        same_as_reflection(TaskExit {
            container_id: "c".into(),
            id: "c".into(),
            pid: 7,
            exit_status: 3,
            ..TaskExit::default()
        });
        same_as_reflection(TaskDelete {
            container_id: "c".into(),
            pid: 7,
            exit_status: 3,
            ..TaskDelete::default()
        });
        same_as_reflection(TaskOOM {
            container_id: "c".into(),
            ..TaskOOM::default()
        });
        assert_eq!(
            event_any(&TaskOOM::default()).unwrap().type_url,
            "containerd.events.TaskOOM"
        );
    }
}
