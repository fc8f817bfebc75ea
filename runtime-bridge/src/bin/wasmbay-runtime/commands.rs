//! The runc commands, on libcontainer and the wasm executor.

use std::fs;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use liboci_cli::{Create, Delete, Exec, Kill, Ps, Run, Start, State};
use wasmbay_runtime_bridge::prepare::prepare;
use wasmbay_runtime_bridge::userns_bundle::{self, UsernsBundle};
use wasmbay_runtime_bridge::zygote::{CreateOrder, Zygote};
use wasmbay_runtime_bridge::ENGINE_ANNOTATION;
use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::oci_spec::runtime::Spec;

use crate::state::RuncState;
use crate::Global;

/// The engine for a container: its `wasmbay.engine` annotation, else the runtime's `--engine`.
fn engine_for(spec: &Spec, default: &str) -> String {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(ENGINE_ANNOTATION))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn load_spec(bundle: &Path) -> Result<(PathBuf, Spec)> {
    let bundle =
        fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let config = bundle.join("config.json");
    let spec = Spec::load(&config).with_context(|| format!("{}", config.display()))?;
    Ok((bundle, spec))
}

/// Everything `create` and `run` do before the container exists: the `/dev` a rootfs without
/// one needs, the module compiled into the cache and opened, the bundle libcontainer reads
/// (kept until the create is done), the order for the zygote.
fn order_for(
    global: &Global,
    id: &str,
    bundle: &Path,
) -> Result<(CreateOrder, Option<OwnedFd>, UsernsBundle)> {
    let (bundle, spec) = load_spec(bundle)?;
    wasmbay_runtime_bridge::dev_setup::prepare_bundle_dev(&bundle, &spec)?;
    let engine = engine_for(&spec, &global.engine);
    let prepared = prepare(
        &bundle,
        &spec,
        &engine,
        Some(ModuleCache::default_location()),
    )?;
    fs::create_dir_all(&global.root)
        .with_context(|| format!("state directory {}", global.root.display()))?;
    let libcontainer_bundle = UsernsBundle::prepare(&bundle, &spec, &global.root, id)?;
    let mut order = CreateOrder::new(
        id,
        libcontainer_bundle.path().to_path_buf(),
        global.root.clone(),
        engine,
    );
    order.systemd = global.systemd_cgroup;
    let code = match prepared.as_ref().map(|p| p.to_wire()).transpose()? {
        Some((wire, fd)) => {
            order.prepared = Some(wire);
            Some(fd)
        }
        None => None,
    };
    Ok((order, code, libcontainer_bundle))
}

/// Forks the zygote: the first thing `create` and `run` do, while this process has one thread.
fn zygote() -> Result<Zygote> {
    Zygote::fork(false).context("forking the runtime's zygote")
}

pub fn create(global: &Global, args: Create) -> Result<()> {
    let zygote = zygote()?;
    wasmbay_runtime_bridge::cgroup_warmup::begin();
    let (mut order, code, staged) = order_for(global, &args.container_id, &args.bundle)?;
    order.pid_file = args.pid_file.clone();
    order.console_socket = args.console_socket.clone();
    order.preserve_fds = args.preserve_fds;
    order.no_pivot = args.no_pivot;
    // The caller (a shim, like runc's) is the subreaper that adopts the init.
    zygote
        .create(&order, None, code.as_ref().map(|fd| fd.as_fd()), false)
        .inspect_err(|_| userns_bundle::remove_bundle(&global.root, &args.container_id))
        .with_context(|| format!("creating container {}", args.container_id))?;
    // The container holds its own mounts now.
    drop(staged);
    Ok(())
}

fn load(global: &Global, id: &str) -> Result<Container> {
    let dir = global.root.join(id);
    if !dir.exists() {
        bail!("container {id} does not exist");
    }
    // libcontainer rewrites state.json in place, so a command running at the same moment as
    // another (a `kill` during `run`) can read it half-written; a short retry rides that out.
    let mut attempts = 0;
    let mut container = loop {
        match Container::load(dir.clone()) {
            Ok(container) => break container,
            Err(e) if attempts < 50 => {
                tracing::debug!(error = %e, "state not readable yet, retrying");
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => return Err(e).with_context(|| format!("loading container {id}")),
        }
    };
    container.refresh_status()?;
    Ok(container)
}

pub fn start(global: &Global, args: Start) -> Result<()> {
    let mut container = load(global, &args.container_id)?;
    container
        .start()
        .with_context(|| format!("starting container {}", args.container_id))
}

fn status_word(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

pub fn state(global: &Global, args: State) -> Result<()> {
    let container = load(global, &args.container_id)?;
    let status = container.status();
    let pid = match status {
        ContainerStatus::Stopped => 0,
        _ => container.pid().map(|p| p.as_raw()).unwrap_or(0),
    };
    let rootfs = load_spec(container.bundle())
        .ok()
        .and_then(|(bundle, spec)| {
            spec.root().as_ref().map(|r| {
                if r.path().is_absolute() {
                    r.path().clone()
                } else {
                    bundle.join(r.path())
                }
            })
        })
        .unwrap_or_default();
    let state = RuncState {
        oci_version: container.state.oci_version.clone(),
        id: container.id().to_string(),
        pid,
        status: status_word(status).to_string(),
        bundle: container.bundle().clone(),
        rootfs,
        created: container
            .created()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default(),
        owner: String::new(),
        annotations: container.state.annotations.clone(),
    };
    println!("{}", serde_json::to_string_pretty(&state)?);
    Ok(())
}

pub fn kill(global: &Global, args: Kill) -> Result<()> {
    let mut container = load(global, &args.container_id)?;
    let signal = Signal::try_from(args.signal.as_str())
        .with_context(|| format!("invalid signal {:?}", args.signal))?;
    match container.kill(signal, args.all) {
        Ok(()) => Ok(()),
        // The container ended of the signal and its foreground `run` deleted it before
        // libcontainer could record it as stopped: the kill did its work.
        Err(_) if !global.root.join(&args.container_id).exists() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("killing container {}", args.container_id)),
    }
}

pub fn delete(global: &Global, args: Delete) -> Result<()> {
    if !global.root.join(&args.container_id).exists() && args.force {
        return Ok(());
    }
    let mut container = load(global, &args.container_id)?;
    wasmbay_runtime_bridge::delete::delete_container(&mut container, args.force)
        .with_context(|| format!("deleting container {}", args.container_id))
}

pub fn run(global: &Global, args: Run) -> Result<i32> {
    let zygote = zygote()?;
    wasmbay_runtime_bridge::cgroup_warmup::begin();
    let (mut order, code, staged) = order_for(global, &args.container_id, &args.bundle)?;
    order.pid_file = args.pid_file.clone();
    order.console_socket = args.console_socket.clone();
    order.preserve_fds = args.preserve_fds;
    order.no_pivot = args.no_pivot;
    order.detach = args.detach;
    // The container's init is a grandchild; as subreaper this process inherits it when its
    // parent exits, and can wait for it.
    if !args.detach {
        // SAFETY: prctl changes only this process's attributes.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    zygote
        .create(
            &order,
            None,
            code.as_ref().map(|fd| fd.as_fd()),
            !args.detach,
        )
        .inspect_err(|_| userns_bundle::remove_bundle(&global.root, &args.container_id))
        .with_context(|| format!("creating container {}", args.container_id))?;
    // The container holds its own mounts now.
    drop(staged);
    // Nothing more to create: the zygote ends when its socket closes.
    drop(zygote);
    let mut container = load(global, &args.container_id)?;
    container
        .start()
        .with_context(|| format!("starting container {}", args.container_id))?;
    if args.detach {
        return Ok(0);
    }
    let pid = container
        .pid()
        .context("container has no init process")?
        .as_raw();
    forward_signals(pid)?;
    let code = wait_for(pid)?;
    if !args.keep {
        container.refresh_status()?;
        wasmbay_runtime_bridge::delete::delete_container(&mut container, true)
            .with_context(|| format!("deleting container {}", args.container_id))?;
    }
    Ok(code)
}

/// runc's `exec`: a new process in a running container's namespaces and cgroup (a
/// libcontainer tenant, made by the zygote like an init), from `--process FILE` or from the
/// container's own process with the command line (and `--cwd`, `--env`) replaced. Without
/// `--detach` it waits and answers the process's exit status.
pub fn exec(global: &Global, args: Exec) -> Result<i32> {
    let zygote = zygote()?;
    // The pty is made inside the container and its master sent to the caller, as runc's
    // shim asks; runc's own copying of a terminal in the foreground is not done here.
    if args.tty && args.console_socket.is_none() {
        bail!(
            "exec into {}: --tty needs --console-socket, where the terminal is sent",
            args.container_id
        );
    }
    let container = load(global, &args.container_id)?;
    let (bundle, spec) = load_spec(container.bundle())?;
    let engine = engine_for(&spec, &global.engine);
    let written = match &args.process {
        Some(_) => None,
        None => {
            if args.command.is_empty() {
                bail!(
                    "exec into {}: give a command or --process FILE",
                    args.container_id
                );
            }
            let mut process = spec
                .process()
                .clone()
                .with_context(|| format!("{}/config.json has no process", bundle.display()))?;
            process.set_args(Some(args.command.clone()));
            process.set_terminal(Some(args.tty));
            if let Some(cwd) = &args.cwd {
                process.set_cwd(cwd.clone());
            }
            if !args.env.is_empty() {
                let mut env = process.env().clone().unwrap_or_default();
                env.extend(args.env.iter().map(|(k, v)| format!("{k}={v}")));
                process.set_env(Some(env));
            }
            let file = container
                .root
                .join(format!("exec-{}.json", std::process::id()));
            fs::write(&file, serde_json::to_vec(&process)?)
                .with_context(|| format!("writing {}", file.display()))?;
            Some(file)
        }
    };
    let mut order = CreateOrder::new(&args.container_id, bundle, global.root.clone(), engine);
    order.exec_process = args.process.clone().or_else(|| written.clone());
    order.pid_file = args.pid_file.clone();
    order.console_socket = args.console_socket.clone();
    order.detach = args.detach;
    order.preserve_fds = args.preserve_fds;
    if !args.detach {
        // SAFETY: prctl changes only this process's attributes.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let created = zygote.create(&order, None, None, !args.detach);
    drop(zygote);
    if let Some(file) = &written {
        let _ = fs::remove_file(file);
    }
    let pid = created.with_context(|| format!("exec into container {}", args.container_id))?;
    if args.detach {
        return Ok(0);
    }
    forward_signals(pid)?;
    wait_for(pid)
}

/// Passes the signals a foreground `run` receives on to the container, as runc does.
fn forward_signals(pid: i32) -> Result<()> {
    use signal_hook::consts::*;
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
            .context("cannot install signal handlers")?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            // SAFETY: kill takes plain integers; pid is the container's init, which this process
            // started and has not reaped.
            unsafe { libc::kill(pid, signal) };
        }
    });
    Ok(())
}

/// Reaps children until `pid` exits; returns its exit status in shell form (128+n for signals).
fn wait_for(pid: i32) -> Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only `status`, which outlives the call.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("waiting for the container");
        }
        if reaped == pid {
            if let Some(code) = wasmbay_shim_core::exit::code_of_wait_status(status) {
                return Ok(code);
            }
        }
    }
}

pub fn features() -> Result<()> {
    let features = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "relatime", "private", "rprivate", "shared", "rshared", "slave", "rslave"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "cgroup": {"v1": true, "v2": true, "systemd": true},
            "seccomp": {"enabled": true}
        },
        "annotations": {
            "org.opencontainers.runc.checkpoint.enabled": "false",
            "io.github.wasmbay.engines": wasmbay_engines::compiled_in().join(","),
            "io.github.wasmbay.wasm.handlers": "run.oci.handler=wasm, module.wasm.image/variant=compat|compat-smart|wasm-smart, wasm magic"
        }
    });
    println!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}

pub fn ps(global: &Global, args: Ps) -> Result<()> {
    let container = load(global, &args.container_id)?;
    let config = container
        .spec()
        .with_context(|| format!("reading config of {}", args.container_id))?;
    let manager = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
        cgroup_path: config.cgroup_path.clone(),
        systemd_cgroup: container.systemd(),
        container_name: args.container_id.clone(),
    })
    .context("opening the container cgroup")?;
    use libcgroups::common::CgroupManager;
    let pids: Vec<i32> = manager
        .get_all_pids()
        .context("listing container processes")?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            println!("PID");
            for pid in pids {
                println!("{pid}");
            }
        }
        other => bail!("ps --format {other:?}: expected table or json"),
    }
    Ok(())
}
