//! The shim binary's actions besides serving: `start` (find or spawn the daemon of the
//! container's group) and `delete` (clean up after a dead daemon), through the shim crate's
//! [`Shim`](containerd_shim::Shim) trait, which also builds the daemon's service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, Flags, StartOpts};
use wasmbay_runtime_bridge::libcontainer::container::Container;

use super::idle::StartLock;
use super::{Service, Settings};
use crate::grouping::{Grouping, LINGER_ENV, SANDBOX_ANNOTATION};
use crate::zygote_containers::ZygoteContainers;

/// Set by the shim's `start` for the daemon it spawns: the engine named by containerd's runtime.
pub const ENGINE_ENV: &str = "WASMBAY_SHIM_ENGINE";

/// Container state of the shims of one containerd (told apart by its socket address, so that
/// two containerd instances never share state) and one namespace.
fn state_root(containerd_address: &str, namespace: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    containerd_address.hash(&mut hasher);
    PathBuf::from("/run/wasmbay-shim")
        .join(format!("{:016x}", hasher.finish()))
        .join(namespace)
}

/// `main` builds the runtime id from a checked engine name, so it always parses back; were it
/// not to, the id itself becomes the engine, which Create then refuses by that name.
fn engine_of_runtime(runtime_id: &str) -> String {
    wasmbay_shim_core::names::engine_of_runtime_type(runtime_id)
        .unwrap_or(runtime_id)
        .to_string()
}

/// The shim crate's `run`, used here for the `start` and `delete` actions only, needs a
/// blocking task service type; the daemon serves [`crate::rpc::TaskRpc`] (`serve.rs`), so this
/// one is never served and every call would get the generated "not implemented" answer.
pub struct NotServed;

impl containerd_shim::Task for NotServed {}

impl containerd_shim::Shim for Service {
    type T = NotServed;

    fn new(runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        // A bad setting was refused by `start`, which reads the same environment; the daemon
        // falls back to exiting with its last container.
        let linger = Grouping::from_env()
            .and_then(|g| g.linger(std::env::var(LINGER_ENV).ok().as_deref()))
            .unwrap_or_default();
        let settings = Settings {
            namespace: args.namespace.clone(),
            shim_id: args.id.clone(),
            engine: engine_of_runtime(runtime_id),
            state_root: state_root(&args.address, &args.namespace),
            socket: PathBuf::from(args.socket.strip_prefix("unix://").unwrap_or(&args.socket)),
            linger,
        };
        let zygote = Arc::new(OnceLock::new());
        let containers = ZygoteContainers {
            namespace: settings.namespace.clone(),
            containerd_address: args.address.clone(),
            engine: settings.engine.clone(),
            state_root: settings.state_root.clone(),
            zygote: zygote.clone(),
        };
        Service::with(settings, Box::new(containers), zygote)
    }

    fn start_shim(&mut self, opts: StartOpts) -> Result<String, containerd_shim::Error> {
        let settings = &self.inner.settings;
        let policy = Grouping::from_env()
            .map_err(|e| containerd_shim::Error::InvalidArgument(e.to_string()))?;
        // containerd runs `start` in the bundle: its config.json carries the pod's sandbox id.
        let sandbox = std::fs::read(Path::new("config.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|spec| {
                spec["annotations"][SANDBOX_ANNOTATION]
                    .as_str()
                    .map(str::to_string)
            });
        let grouping = policy.key(&opts.id, sandbox.as_deref(), &settings.engine);
        // Concurrent starts of one group must agree on one daemon: without the lock each
        // would find no socket, spawn its own and unlink the others' sockets.
        let _lock = StartLock::acquire(&settings.state_root)
            .map_err(|e| containerd_shim::Error::Other(format!("start lock: {e}")))?;
        // A shim already serving this pod answers on its socket: reuse it.
        let address = opts.socket_address(&grouping);
        let socket = address.strip_prefix("unix://").unwrap_or(&address);
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            write_address(&address)?;
            return Ok(address);
        }
        let _ = std::fs::remove_file(socket);
        // The daemon is spawned from /proc/self/exe, which names the real binary rather than
        // the link containerd found (`…-wasmbay-wasmer-v1` → `…-wasmbay-wasmtime-v1`), so the
        // engine travels in the environment.
        let engine = settings.engine.clone();
        let (_, address) =
            containerd_shim::spawn(opts, &grouping, vec![(ENGINE_ENV, engine.as_str())])?;
        write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> Result<DeleteResponse, containerd_shim::Error> {
        // The shim that served this container is gone (crashed or killed); its container may
        // still run, reparented away from it. Remove it, its cgroup and state, and the rootfs
        // mount. containerd runs this action in the bundle directory. Best effort throughout:
        // containerd only needs an answer to finish its own cleanup.
        let settings = &self.inner.settings;
        let dir = settings.state_root.join(&settings.shim_id);
        if dir.exists() {
            match Container::load(dir) {
                Ok(container) => {
                    if let Err(e) = crate::orphan::remove(container) {
                        tracing::warn!(id = %settings.shim_id, error = %e, "cannot delete container left by a dead shim");
                    }
                }
                Err(e) => {
                    tracing::warn!(id = %settings.shim_id, error = %e, "cannot load container left by a dead shim")
                }
            }
        }
        if let Ok(bundle) = std::env::current_dir() {
            let _ = crate::rootfs::unmount(&bundle.join("rootfs"));
        }
        Ok(DeleteResponse {
            exit_status: 137,
            exited_at: MessageField::some(Timestamp::now()),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.inner.exit.wait();
    }

    fn create_task_service(&self, _publisher: RemotePublisher) -> Self::T {
        NotServed
    }
}

/// Records the shim's socket in the bundle (containerd runs `start` there) as `address`:
/// containerd 1.6 reconnects to a running container's shim after its own restart only
/// through this file (1.7 and later also keep their own `bootstrap.json`). Without it, a
/// restarted containerd takes every running container for one whose shim died and kills it.
fn write_address(address: &str) -> Result<(), containerd_shim::Error> {
    let tmp = format!(".address.{}", std::process::id());
    std::fs::write(&tmp, address)
        .and_then(|()| std::fs::rename(&tmp, "address"))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            containerd_shim::Error::Other(format!("cannot write the bundle's address file: {e}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_comes_from_the_runtime_name() {
        assert_eq!(
            engine_of_runtime("io.containerd.wasmbay-wasmedge.v1"),
            "wasmedge"
        );
        assert_eq!(
            engine_of_runtime("io.containerd.wasmtime.v1"),
            "io.containerd.wasmtime.v1"
        );
    }

    #[test]
    fn two_containerd_instances_never_share_state() {
        let a = state_root("/run/containerd/containerd.sock", "k8s.io");
        let b = state_root("/tmp/x/containerd.sock", "k8s.io");
        assert_ne!(a, b);
        assert!(a.ends_with("k8s.io"));
        assert_eq!(a, state_root("/run/containerd/containerd.sock", "k8s.io"));
    }
}
