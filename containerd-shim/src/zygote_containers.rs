//! The daemon's containers: made by the zygote (`runtime_bridge::zygote`) as libcontainer
//! containers with the runtime-bridge executor, so a wasm init runs its module and a native
//! one (a pause container, a sidecar) execs its program, as runc would.

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use containerd_shim::api;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message as _;
use libcgroups::common::{CgroupManager, ControllerOpt, FreezerState};
use wasmbay_runtime_bridge::libcontainer::container::Container;
use wasmbay_runtime_bridge::libcontainer::signal::Signal;
use wasmbay_runtime_bridge::prepare::{
    entrypoint_in_rootfs, prepare, prepare_layer, LayerModule, PreparedArtifact, PreparedWire,
};
use wasmbay_runtime_bridge::userns_bundle::{self, UsernsBundle};
use wasmbay_runtime_bridge::zygote::{CreateOrder, Zygote};
use wasmbay_runtime_bridge::ENGINE_ANNOTATION;
use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::oci_spec::runtime::{LinuxResources, Spec};

use crate::cgroup_manager::{cgroup_of, metrics_of};
use crate::console::Console;
use crate::containers::{Containers, Created, ExecStartError, ExecTarget, Started, TaskContainer};
use crate::content::ContentStore;
use crate::stdio::open_stdio;

/// How long a process the shim gives up on (its terminal never came) may take to die.
const ABANDON_REAP: std::time::Duration = std::time::Duration::from_secs(5);

/// Containers of one containerd namespace, made through the zygote.
pub(crate) struct ZygoteContainers {
    pub namespace: String,
    /// containerd's gRPC socket, for reading image layers from its content store.
    pub containerd_address: String,
    /// The engine of the shim's runtime name, unless a spec's annotation names another.
    pub engine: String,
    /// libcontainer's state directories.
    pub state_root: PathBuf,
    /// Where inits come from; set once by the daemon at boot.
    pub zygote: Arc<OnceLock<Zygote>>,
}

impl ZygoteContainers {
    fn zygote(&self) -> anyhow::Result<&Zygote> {
        self.zygote
            .get()
            .context("this shim process has no zygote to create containers")
    }

    /// The module of an artifact-layout image: the container's entrypoint is not in its
    /// rootfs, so look for a wasm layer in its image.
    fn prepare_from_layer(
        &self,
        id: &str,
        spec: &Spec,
        engine: &str,
    ) -> anyhow::Result<Option<PreparedArtifact>> {
        let argv0 = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .and_then(|args| args.first())
            .cloned()
            .unwrap_or_default();
        let store = ContentStore::connect(&self.containerd_address, &self.namespace)?;
        let Some(layer) = store.wasm_layer(id, &argv0)? else {
            return Ok(None);
        };
        tracing::debug!(layer = %layer.name(), media_type = %layer.media_type, "module from image layer");
        let module = LayerModule {
            name: layer.name(),
            sha256: layer.sha256_hex().to_string(),
            fetch: Box::new(|| store.read_layer(&layer).map_err(std::io::Error::other)),
        };
        Ok(Some(prepare_layer(
            module,
            engine,
            Some(ModuleCache::default_location()),
        )?))
    }

    /// Everything of a create after the rootfs is mounted: the container, its init and the
    /// init's engine and terminal.
    fn create_in(
        &self,
        req: &api::CreateTaskRequest,
        bundle: &Path,
    ) -> anyhow::Result<(LibcontainerTask, i32, String, Option<Console>)> {
        let spec = Spec::load(bundle.join("config.json"))
            .with_context(|| format!("{}/config.json", bundle.display()))?;
        let engine = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ENGINE_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| self.engine.clone());
        tracing::debug!("rootfs mounted, preparing");
        let prepare_span = tracing::info_span!("module.prepare").entered();
        let prepared = match prepare(
            bundle,
            &spec,
            &engine,
            Some(ModuleCache::default_location()),
        )? {
            None if !entrypoint_in_rootfs(bundle, &spec) => {
                self.prepare_from_layer(&req.id, &spec, &engine)?
            }
            prepared => prepared,
        };
        drop(prepare_span);
        tracing::debug!(prepared = prepared.is_some(), "prepared");
        wasmbay_runtime_bridge::dev_setup::prepare_bundle_dev(bundle, &spec)?;
        std::fs::create_dir_all(&self.state_root)?;
        // Alive until the create is done: it holds the staged bind sources.
        let libcontainer_bundle = UsernsBundle::prepare(bundle, &spec, &self.state_root, &req.id)?;
        let spec_terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if spec_terminal != req.terminal {
            anyhow::bail!(
                "{}/config.json: process.terminal is {spec_terminal} but the create request's terminal is {}",
                bundle.display(),
                req.terminal
            );
        }
        // With a terminal the process's stdio is the pty libcontainer makes; the fifos are
        // the console's to copy.
        let console_socket = req.terminal.then(crate::console::bind_socket).transpose()?;
        let stdio = match console_socket {
            Some(_) => None,
            None => Some(open_stdio(&req.stdin, &req.stdout, &req.stderr)?),
        };
        tracing::debug!("stdio open, building");
        let _span = tracing::info_span!("container.create").entered();
        let (prepared, code) = match prepared.as_ref().map(PreparedArtifact::to_wire) {
            Some(wire) => {
                let (wire, fd) = wire.context("handing the prepared module to the zygote")?;
                (Some(wire), Some(fd))
            }
            None => (None, None),
        };
        let mut order = CreateOrder::new(
            &req.id,
            libcontainer_bundle.path().to_path_buf(),
            self.state_root.clone(),
            engine,
        );
        let cgroups_path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned());
        order.systemd =
            crate::cgroup_driver::use_systemd(req.options.as_ref(), cgroups_path.as_deref())?;
        tracing::debug!(systemd = order.systemd, cgroups_path, "cgroup driver");
        order.prepared = prepared;
        order.stdio = stdio.is_some();
        order.console_socket = console_socket.as_ref().map(|s| s.path().to_path_buf());
        let pid = self
            .zygote()?
            .create(
                &order,
                stdio.as_ref().map(|[i, o, e]| [i, o, e]),
                code.as_ref().map(|fd| fd.as_fd()),
                true,
            )
            .inspect_err(|_| userns_bundle::remove_bundle(&self.state_root, &req.id))?;
        drop(libcontainer_bundle);
        let mut container = Container::load(self.state_root.join(&req.id))
            .with_context(|| format!("loading the state of container {}", req.id))?;
        let console = match &console_socket {
            Some(socket) => match Console::start(socket, &req.stdin, &req.stdout) {
                Ok(console) => Some(console),
                Err(e) => {
                    // The init exists but cannot be reached: it goes, with its container.
                    kill_and_reap(pid, ABANDON_REAP);
                    let _ = wasmbay_runtime_bridge::delete::delete_container(&mut container, true);
                    return Err(anyhow::Error::new(e)
                        .context(format!("the terminal of container {}", req.id)));
                }
            },
            None => None,
        };
        let cgroup_v2 = if crate::cgroup_v2::is_unified() {
            crate::cgroup_v2::dir_of(pid)
                .map_err(|e| tracing::warn!(id = req.id, error = %e, "cannot find the cgroup"))
                .ok()
        } else {
            None
        };
        let task = LibcontainerTask {
            container,
            rootfs_mounted: None,
            cgroup_v2,
        };
        Ok((task, pid, order.engine, console))
    }
}

impl Containers for ZygoteContainers {
    fn create(&self, req: &api::CreateTaskRequest) -> anyhow::Result<Created> {
        // A pod's later containers come long after the boot's warm-up has lapsed.
        wasmbay_runtime_bridge::cgroup_warmup::begin();
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = bundle.join("rootfs");
        let mut mounted = None;
        if !req.rootfs.is_empty() {
            let _span = tracing::info_span!("rootfs.mount").entered();
            std::fs::create_dir_all(&rootfs)?;
            for m in &req.rootfs {
                crate::rootfs::mount(&m.type_, &m.source, &m.options, &rootfs)
                    .with_context(|| format!("mounting rootfs {} ({})", m.source, m.type_))?;
            }
            mounted = Some(rootfs);
        }
        match self.create_in(req, &bundle) {
            Ok((mut task, pid, engine, console)) => {
                task.rootfs_mounted = mounted;
                Ok(Created {
                    container: Box::new(task),
                    pid,
                    engine,
                    console,
                })
            }
            Err(e) => {
                if let Some(rootfs) = &mounted {
                    let _ = crate::rootfs::unmount(rootfs);
                }
                Err(e)
            }
        }
    }

    fn start_exec(&self, target: ExecTarget) -> Result<Started, ExecStartError> {
        let ExecTarget {
            id,
            bundle,
            engine,
            spec_file,
            stdio: [stdin, stdout, stderr],
            terminal,
        } = target;
        let failed = ExecStartError::Failed;
        let mut order = CreateOrder::new(&id, bundle, self.state_root.clone(), engine);
        order.exec_process = Some(spec_file);
        let (stdio, console_socket) = if terminal {
            let socket = crate::console::bind_socket().map_err(|e| failed(e.into()))?;
            order.console_socket = Some(socket.path().to_path_buf());
            (None, Some(socket))
        } else {
            let stdio = open_stdio(&stdin, &stdout, &stderr).map_err(failed)?;
            (Some(stdio), None)
        };
        order.stdio = stdio.is_some();
        // A WebAssembly command is compiled (or found in the cache) here on the host, as an
        // init's module is, so the tenant maps the artifact instead of compiling it there.
        let code = match prepare_exec(&order).map_err(ExecStartError::Invalid)? {
            Some((wire, fd)) => {
                order.prepared = Some(wire);
                Some(fd)
            }
            None => None,
        };
        let pid = self
            .zygote()
            .and_then(|zygote| {
                zygote
                    .create(
                        &order,
                        stdio.as_ref().map(|[i, o, e]| [i, o, e]),
                        code.as_ref().map(|fd| fd.as_fd()),
                        true,
                    )
                    .map_err(anyhow::Error::from)
            })
            .map_err(failed)?;
        let console = match &console_socket {
            Some(socket) => match Console::start(socket, &stdin, &stdout) {
                Ok(console) => Some(console),
                Err(e) => {
                    kill_and_reap(pid, ABANDON_REAP);
                    return Err(failed(e.into()));
                }
            },
            None => None,
        };
        Ok(Started { pid, console })
    }
}

/// The artifact of an exec's WebAssembly command, when its program is a wasm file of the
/// container's rootfs: the container's spec with the exec's process, prepared like an init's.
/// `None` for a Linux program or a path only the container can resolve (the tenant then
/// reports on its own).
fn prepare_exec(
    order: &CreateOrder,
) -> anyhow::Result<Option<(PreparedWire, std::os::fd::OwnedFd)>> {
    let Some(process_file) = &order.exec_process else {
        return Ok(None);
    };
    let config = order.bundle.join("config.json");
    let mut spec = Spec::load(&config).with_context(|| config.display().to_string())?;
    let process = std::fs::read(process_file)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(serde_json::from_slice(&bytes)?))
        .with_context(|| process_file.display().to_string())?;
    spec.set_process(Some(process));
    let prepared = prepare(
        &order.bundle,
        &spec,
        &order.engine,
        Some(ModuleCache::default_location()),
    )?;
    prepared
        .as_ref()
        .map(PreparedArtifact::to_wire)
        .transpose()
        .context("handing the prepared module to the zygote")
}

/// SIGKILLs this shim's child `pid` and reaps it, waiting at most `limit`.
fn kill_and_reap(pid: i32, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    // SAFETY: kill has no memory effects; `pid` is this shim's child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    loop {
        // SAFETY: waitpid with a null status writes nothing; it reaps only `pid`.
        let reaped = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if reaped != 0 || std::time::Instant::now() >= deadline {
            if reaped == 0 {
                tracing::warn!(pid, "abandoned process did not end in time");
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// libcontainer binds and connects a container's notify socket by a relative name after
/// changing the process's working directory (unix socket paths are short), so two containers
/// started at once by threads of one shim would each chdir under the other. Held around
/// `start`; a create runs in a zygote worker, a process of its own.
static CWD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A libcontainer container and what the shim set up for it.
struct LibcontainerTask {
    container: Container,
    /// The rootfs the shim mounted from the create request's mounts, unmounted at delete.
    rootfs_mounted: Option<PathBuf>,
    /// On cgroup v2, the container's cgroup directory as its init saw it at create; it
    /// outlives the init, so statistics stay readable until delete.
    cgroup_v2: Option<PathBuf>,
}

impl TaskContainer for LibcontainerTask {
    fn start(&mut self) -> anyhow::Result<()> {
        let _cwd = CWD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self.container.start()?)
    }

    fn kill(&mut self, signal: i32, all: bool) -> anyhow::Result<()> {
        let signal = Signal::try_from(signal)?;
        Ok(self.container.kill(signal, all)?)
    }

    fn pause(&mut self) -> anyhow::Result<()> {
        Ok(self.container.pause()?)
    }

    fn resume(&mut self) -> anyhow::Result<()> {
        Ok(self.container.resume()?)
    }

    fn thaw(&mut self) -> anyhow::Result<()> {
        Ok(cgroup_of(&self.container)?.freeze(FreezerState::Thawed)?)
    }

    fn update(&mut self, resources: &LinuxResources) -> anyhow::Result<()> {
        Ok(cgroup_of(&self.container)?.apply(&ControllerOpt {
            resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })?)
    }

    fn pids(&self) -> anyhow::Result<Vec<u32>> {
        let pids = cgroup_of(&self.container)?.get_all_pids()?;
        Ok(pids.into_iter().map(|pid| pid.as_raw() as u32).collect())
    }

    fn stats(&self) -> anyhow::Result<Any> {
        let (type_url, value) = match &self.cgroup_v2 {
            Some(dir) => (
                crate::cgroup_v2::METRICS_TYPE,
                crate::cgroup_v2::metrics(dir)?.write_to_bytes()?,
            ),
            None => {
                let stats = cgroup_of(&self.container)?.stats()?;
                (
                    "io.containerd.cgroups.v1.Metrics",
                    metrics_of(&stats).write_to_bytes()?,
                )
            }
        };
        Ok(Any {
            type_url: type_url.to_string(),
            value,
            ..Default::default()
        })
    }

    /// Through `memory.events` on cgroup v2, `memory.oom_control` on v1.
    fn watch_oom(
        &self,
        on_oom: Box<dyn Fn() + Send>,
    ) -> anyhow::Result<Option<crate::cgroup_v2::OomWatch>> {
        if let Some(dir) = &self.cgroup_v2 {
            return Ok(Some(crate::cgroup_v2::watch_oom(dir.clone(), on_oom)?));
        }
        let v1 = self
            .container
            .spec()
            .ok()
            .and_then(|config| crate::oom::v1_memory_dir(&config.cgroup_path));
        match v1 {
            // v1 signals the eventfd when the cgroup goes, which ends that watcher.
            Some(dir) => crate::oom::watch_v1(dir, on_oom)?,
            None => tracing::debug!(
                id = self.container.id(),
                "no memory cgroup found; OOM events not watched"
            ),
        }
        Ok(None)
    }

    fn delete(&mut self) -> anyhow::Result<()> {
        wasmbay_runtime_bridge::delete::delete_container(&mut self.container, true)?;
        if let Some(rootfs) = self.rootfs_mounted.take() {
            crate::rootfs::unmount(&rootfs)?;
        }
        Ok(())
    }
}
