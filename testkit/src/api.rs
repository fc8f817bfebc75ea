//! Driving a private containerd through its gRPC API where `ctr` cannot.
//!
//! containerd before 1.6.25/1.7.7 (Debian 12 has 1.6.20) refuses to unpack an image whose
//! manifest holds non-filesystem layers, such as a wasm artifact's module layer, and `ctr run`
//! always unpacks first. Newer containerd skips such layers and gives the container an empty
//! snapshot; [`ApiClient::run_with_empty_rootfs`] does the same by hand so that the shim's
//! artifact path can be tested against the containerd this machine has.

use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateRequest as CreateLeaseRequest, CreateTaskRequest,
    DeleteContainerRequest, DeleteRequest as DeleteLeaseRequest, DeleteTaskRequest, StartRequest,
    UpdateTaskRequest, WaitRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::Request;

use crate::TestkitError;

const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const RESOURCES_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
const SNAPSHOTTER: &str = "overlayfs";

/// One container to run: its id, image, runtime and OCI spec (JSON).
pub struct ApiContainer<'a> {
    pub id: &'a str,
    pub image: &'a str,
    pub runtime: &'a str,
    pub spec_json: Vec<u8>,
}

/// The OCI spec (JSON) `ctr run` would give a container whose process is `args`, in the
/// cgroup `cgroups_path`: the defaults' namespaces and mounts, `/` as working directory.
pub fn process_spec(args: &[&str], cgroups_path: &str) -> Result<Vec<u8>, TestkitError> {
    use oci_spec::runtime::{ProcessBuilder, Spec};
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        .cwd("/")
        .env(vec!["PATH=/".to_string()])
        .terminal(false)
        .build()
        .map_err(|e| TestkitError::Api(format!("process spec: {e}")))?;
    spec.set_process(Some(process));
    if let Some(linux) = spec.linux_mut() {
        linux.set_cgroups_path(Some(cgroups_path.into()));
    }
    serde_json::to_vec(&spec).map_err(|e| TestkitError::Api(format!("spec JSON: {e}")))
}

/// A gRPC connection to one containerd, in one namespace.
pub struct ApiClient {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    namespace: String,
}

fn api_err(what: &str) -> impl Fn(containerd_client::tonic::Status) -> TestkitError + '_ {
    move |status| TestkitError::Api(format!("{what}: {}", status.message()))
}

/// A single-threaded runtime and a gRPC channel to containerd's socket: tests call one RPC at
/// a time and block on it.
pub(crate) fn connect(socket: &Path) -> Result<(tokio::runtime::Runtime, Channel), TestkitError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestkitError::Api(format!("tokio runtime: {e}")))?;
    let channel = runtime
        .block_on(containerd_client::connect(socket))
        .map_err(|e| TestkitError::Api(format!("connect {}: {e}", socket.display())))?;
    Ok((runtime, channel))
}

impl ApiClient {
    pub fn connect(socket: &Path, namespace: &str) -> Result<ApiClient, TestkitError> {
        let (runtime, channel) = connect(socket)?;
        Ok(ApiClient {
            runtime,
            channel,
            namespace: namespace.to_string(),
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = self.namespace.parse() {
            request.metadata_mut().insert("containerd-namespace", value);
        }
        request
    }

    /// Sets new cgroup limits on the running task `id`, as `ctr task update` does in
    /// containerd 1.7 (1.6's ctr has no such command): `resources_json` is runtime-spec
    /// `LinuxResources`.
    pub fn update_task_resources(
        &self,
        id: &str,
        resources_json: &[u8],
    ) -> Result<(), TestkitError> {
        let mut tasks = TasksClient::new(self.channel.clone());
        let request = self.request(UpdateTaskRequest {
            container_id: id.to_string(),
            resources: Some(prost_types::Any {
                type_url: RESOURCES_TYPE_URL.to_string(),
                value: resources_json.to_vec(),
            }),
            ..Default::default()
        });
        self.runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(60), tasks.update(request)).await
            })
            .map_err(|_| TestkitError::Api(format!("update task {id}: no answer within 60 s")))?
            .map_err(api_err("update task"))?;
        Ok(())
    }

    /// Waits (up to `timeout`) until task `id` has exited and returns its exit status, as
    /// containerd has it from the shim.
    pub fn wait_task(&self, id: &str, timeout: Duration) -> Result<u32, TestkitError> {
        let mut tasks = TasksClient::new(self.channel.clone());
        let request = self.request(WaitRequest {
            container_id: id.to_string(),
            ..Default::default()
        });
        let response = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, tasks.wait(request)).await })
            .map_err(|_| TestkitError::Api(format!("task {id} still running after {timeout:?}")))?
            .map_err(api_err("wait task"))?;
        Ok(response.into_inner().exit_status)
    }

    /// A request made under lease `lease`, whose resources containerd's garbage collector
    /// keeps until the lease is deleted.
    fn leased<T>(&self, message: T, lease: &str) -> Request<T> {
        let mut request = self.request(message);
        if let Ok(value) = lease.parse() {
            request.metadata_mut().insert("containerd-lease", value);
        }
        request
    }

    /// Creates the container on an empty snapshot, runs its task to the end with stdout and
    /// stderr going to the files given, removes everything and returns the exit status.
    pub fn run_with_empty_rootfs(
        &self,
        container: ApiContainer<'_>,
        stdout: &Path,
        stderr: &Path,
        timeout: Duration,
    ) -> Result<u32, TestkitError> {
        let id = container.id.to_string();
        let mut snapshots = SnapshotsClient::new(self.channel.clone());
        let mut containers = ContainersClient::new(self.channel.clone());
        let mut tasks = TasksClient::new(self.channel.clone());
        for path in [stdout, stderr] {
            std::fs::write(path, b"").map_err(|error| TestkitError::Io {
                what: "create",
                path: path.to_path_buf(),
                error,
            })?;
        }
        // Between preparing the snapshot and creating the container that references it, the
        // snapshot is referenced by nothing and containerd's garbage collector may take it
        // (as `ctr` does, hold a lease).
        let lease = format!("{id}-lease");
        let mut leases = LeasesClient::new(self.channel.clone());
        let run = async {
            leases
                .create(self.request(CreateLeaseRequest {
                    id: lease.clone(),
                    ..Default::default()
                }))
                .await
                .map_err(api_err("create lease"))?;
            let mounts = snapshots
                .prepare(self.leased(
                    PrepareSnapshotRequest {
                        snapshotter: SNAPSHOTTER.to_string(),
                        key: id.clone(),
                        parent: String::new(),
                        ..Default::default()
                    },
                    &lease,
                ))
                .await
                .map_err(api_err("prepare snapshot"))?
                .into_inner()
                .mounts;
            containers
                .create(self.leased(
                    CreateContainerRequest {
                        container: Some(Container {
                            id: id.clone(),
                            image: container.image.to_string(),
                            runtime: Some(Runtime {
                                name: container.runtime.to_string(),
                                options: None,
                            }),
                            spec: Some(prost_types::Any {
                                type_url: SPEC_TYPE_URL.to_string(),
                                value: container.spec_json.clone(),
                            }),
                            snapshotter: SNAPSHOTTER.to_string(),
                            snapshot_key: id.clone(),
                            ..Default::default()
                        }),
                    },
                    &lease,
                ))
                .await
                .map_err(api_err("create container"))?;
            tasks
                .create(self.request(CreateTaskRequest {
                    container_id: id.clone(),
                    rootfs: mounts,
                    stdout: stdout.display().to_string(),
                    stderr: stderr.display().to_string(),
                    ..Default::default()
                }))
                .await
                .map_err(api_err("create task"))?;
            // Wait is subscribed before start so that a fast exit is not missed.
            let mut waiter = TasksClient::new(self.channel.clone());
            let wait = waiter.wait(self.request(WaitRequest {
                container_id: id.clone(),
                ..Default::default()
            }));
            tasks
                .start(self.request(StartRequest {
                    container_id: id.clone(),
                    ..Default::default()
                }))
                .await
                .map_err(api_err("start task"))?;
            let status = tokio::time::timeout(timeout, wait)
                .await
                .map_err(|_| {
                    TestkitError::Api(format!("task {id} still running after {timeout:?}"))
                })?
                .map_err(api_err("wait task"))?
                .into_inner()
                .exit_status;
            Ok::<_, TestkitError>(status)
        };
        let result = self.runtime.block_on(run);
        // Clean up whatever exists, whether or not the run got that far.
        self.runtime.block_on(async {
            let _ = tasks
                .delete(self.request(DeleteTaskRequest {
                    container_id: id.clone(),
                }))
                .await;
            let _ = containers
                .delete(self.request(DeleteContainerRequest { id: id.clone() }))
                .await;
            let _ = snapshots
                .remove(self.request(RemoveSnapshotRequest {
                    snapshotter: SNAPSHOTTER.to_string(),
                    key: id.clone(),
                }))
                .await;
            let _ = leases
                .delete(self.request(DeleteLeaseRequest {
                    id: lease.clone(),
                    sync: false,
                }))
                .await;
        });
        result
    }
}
