//! `wasmbay node install | uninstall | status`: wasmbay's shims put on a Kubernetes node and
//! declared to its containerd, so that a RuntimeClass with `handler: wasmbay-<engine>` runs.
//!
//! Run on the node, or in a privileged container with the host's root mounted
//! (`--host-root /host`, as `deploy/` does it). An install is idempotent (a second one changes
//! no byte) and an uninstall puts the configuration back byte for byte; containerd is
//! restarted only when its configuration changed, and a configuration it does not come back
//! with is rolled back.

pub mod binaries;
pub mod config_edit;
mod cri_probe;
pub mod kube_api;
pub mod layout;
mod record;
mod restart;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use wasmbay_shim_core::names;

use config_edit::{RuntimeEntry, Schema};
use layout::{ConfigTarget, Distribution, Layout, Node, Overrides, Restart};
use record::Record;
use restart::{Content, Expect};

#[derive(Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Put the shims on the node and declare them to containerd.
    Install(InstallArgs),
    /// Take out what install put in: the configuration back as it was, the shims removed.
    Uninstall(UninstallArgs),
    /// Say what is installed and whether containerd serves it.
    Status(WhereArgs),
}

/// Where the node's containerd is; each found by itself unless given.
#[derive(Args, Clone)]
struct WhereArgs {
    /// The node's root as mounted here (a privileged pod mounts the host's `/` there).
    #[arg(long, value_name = "DIR", default_value = "/")]
    host_root: PathBuf,
    /// The kind of node, when it is not found by itself.
    #[arg(long, value_enum)]
    distribution: Option<Distribution>,
    /// The configuration file to edit (the node's path).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// containerd's gRPC socket (the node's path).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// containerd's version, when its binary cannot be asked (`1.7.24`, `2.1.4`).
    #[arg(long, value_name = "VERSION")]
    containerd_version: Option<String>,
}

#[derive(Args, Clone)]
struct ChangeArgs {
    #[command(flatten)]
    at: WhereArgs,
    /// Print what would change (the configuration as a diff) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How to restart containerd, run with `sh -c` (default: the node's systemd unit or init
    /// script).
    #[arg(long, value_name = "COMMAND", conflicts_with = "no_restart")]
    restart_command: Option<String>,
    /// Write the configuration but do not restart containerd.
    #[arg(long)]
    no_restart: bool,
    /// How long containerd may take to come back and answer (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    timeout: u64,
}

/// What the installer does as a Kubernetes pod (deploy/).
#[derive(Args, Clone)]
struct PodArgs {
    /// Label this Kubernetes node (`wasmbay.dev/<engine>` and `wasmbay.dev/runtime`, `ready`)
    /// once containerd serves the handlers, or take the labels off (uninstall, or a failed
    /// install), through the API server of the pod this runs in.
    #[arg(long, value_name = "NODE")]
    label_node: Option<String>,
    /// After a successful change, stay until SIGTERM or SIGINT, then exit 0, as a DaemonSet's
    /// container must; the change itself is not undone.
    #[arg(long)]
    keep_running: bool,
}

#[derive(Args, Clone)]
struct UninstallArgs {
    #[command(flatten)]
    change: ChangeArgs,
    #[command(flatten)]
    pod: PodArgs,
}

#[derive(Args, Clone)]
struct InstallArgs {
    #[command(flatten)]
    change: ChangeArgs,
    #[command(flatten)]
    pod: PodArgs,
    /// Engines to declare (default: every engine compiled into this build).
    #[arg(long = "engine", value_name = "ENGINE")]
    engines: Vec<String>,
    /// Where the shims go on the node (the node's path). The entries name the shim by its
    /// path (`runtime_path`), but containerd 1.6 ignores that and looks on its `PATH`, which
    /// holds /usr/local/bin under systemd, k3s and rke2.
    #[arg(long, value_name = "DIR", default_value = "/usr/local/bin")]
    bin_dir: PathBuf,
    /// The shim binary to install (default: the one next to this binary).
    #[arg(long, value_name = "PATH")]
    shim: Option<PathBuf>,
}

pub fn main(args: NodeArgs) -> Result<i32> {
    match args.action {
        Action::Install(args) => {
            let installed = install(&args).and_then(|code| {
                if args.change.dry_run {
                    return Ok(code);
                }
                let engines = engines(&args.engines)?;
                if let Some(node) = &args.pod.label_node {
                    label_when_served(&args.change.at, node, &engines, args.change.no_restart)?;
                }
                Ok(code)
            });
            if let (Err(problem), Some(node)) = (&installed, &args.pod.label_node) {
                // No pod may be scheduled here for a runtime that is not served.
                if let Err(e) = set_labels(node, None) {
                    return Err(anyhow::anyhow!(
                        "{problem:#}; and taking the node's labels off failed: {e:#}"
                    ));
                }
            }
            stay_if_asked(installed?, &args.pod)
        }
        Action::Uninstall(args) => {
            // The labels go first, so that no new wasm pod is scheduled while the runtime goes.
            if let (Some(node), false) = (&args.pod.label_node, args.change.dry_run) {
                set_labels(node, None)?;
            }
            stay_if_asked(uninstall(&args.change)?, &args.pod)
        }
        Action::Status(args) => status(&args),
    }
}

/// Labels `node` ready for `engines` once containerd's CRI serves each engine's handler (not
/// asked with `--no-restart`, where containerd has not taken the file up yet).
fn label_when_served(
    at: &WhereArgs,
    node: &str,
    engines: &[String],
    no_restart: bool,
) -> Result<()> {
    if no_restart {
        println!("node {node}: not labelled: containerd was not restarted (--no-restart)");
        return Ok(());
    }
    let host = at.node()?;
    let record = record::load(&host)?;
    let layout = layout::find(&host, &at.overrides(None).after(record.as_ref()))?;
    let cri = cri_probe::status(&host.path(&layout.socket), Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("containerd's CRI at {}: {e}", layout.socket.display()))?;
    let missing: Vec<String> = engines
        .iter()
        .map(|e| names::runtime_handler(e))
        .filter(|h| !cri.handlers.contains(h))
        .collect();
    if !missing.is_empty() {
        bail!(
            "containerd does not serve {} after the install; node {node} not labelled",
            missing.join(", ")
        );
    }
    set_labels(node, Some(engines))?;
    println!(
        "node {node}: labelled {} ready",
        engines
            .iter()
            .map(|e| names::node_label(e))
            .chain([names::node_label_any()])
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Sets wasmbay's labels on `node`: `ready` for `engines` (every other engine's taken off), or
/// every one taken off for `None`.
fn set_labels(node: &str, engines: Option<&[String]>) -> Result<()> {
    let ready = Some(names::LABEL_READY.to_string());
    let mut labels: Vec<(String, Option<String>)> = wasmbay_engines::KNOWN
        .iter()
        .map(|known| {
            let on = engines.is_some_and(|e| e.iter().any(|e| e == known));
            (
                names::node_label(known),
                if on { ready.clone() } else { None },
            )
        })
        .collect();
    labels.push((
        names::node_label_any(),
        engines.is_some().then(|| ready.clone()).flatten(),
    ));
    kube_api::KubeApi::in_cluster(Duration::from_secs(30))
        .and_then(|api| api.patch_node_labels(node, &labels))
        .with_context(|| format!("labelling node {node}"))
}

/// With `--keep-running`, waits for SIGTERM or SIGINT after a successful change.
fn stay_if_asked(code: i32, pod: &PodArgs) -> Result<i32> {
    if !pod.keep_running || code != 0 {
        return Ok(code);
    }
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing signal handlers for --keep-running")?;
    println!("done; staying until SIGTERM (--keep-running)");
    // A service's lifetime: it ends when the pod is stopped, which is what the DaemonSet wants.
    let signal = signals.forever().next();
    tracing::info!(?signal, "stopping");
    Ok(0)
}

impl WhereArgs {
    fn node(&self) -> Result<Node> {
        let root = std::fs::canonicalize(&self.host_root)
            .with_context(|| format!("--host-root {}", self.host_root.display()))?;
        Ok(Node { root })
    }

    fn overrides(&self, restart_command: Option<&str>) -> Overrides {
        Overrides {
            distribution: self.distribution,
            config: self.config.clone(),
            socket: self.socket.clone(),
            containerd_version: self.containerd_version.clone(),
            restart_command: restart_command.map(str::to_string),
        }
    }
}

impl Overrides {
    /// What an earlier install recorded fills in what the operator did not say: uninstall and
    /// status look where the install wrote, whatever the node looks like now.
    fn after(mut self, record: Option<&Record>) -> Overrides {
        if let Some(r) = record {
            self.distribution = self.distribution.or(Some(r.distribution));
            self.config = self.config.or_else(|| Some(r.config.clone()));
        }
        self
    }
}

/// A file's content on the node, `None` when there is none.
fn read(node: &Node, path: &Path) -> Result<Content> {
    let here = node.path(path);
    match std::fs::read(&here) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", here.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", here.display())),
    }
}

/// What K3s' and rke2's own template renders; a new template starts from it.
const RANCHER_BASE: &str = "{{ template \"base\" . }}\n";

/// The configuration with the entries in, for the layout's kind of file.
fn with_entries(layout: &Layout, current: &Content, entries: &[RuntimeEntry]) -> Result<String> {
    let path = layout.target.path().display().to_string();
    let edited = match &layout.target {
        ConfigTarget::Toml(_) => config_edit::add(
            current.as_deref().unwrap_or_default(),
            layout.containerd_version.as_deref(),
            entries,
        )
        .map(|e| e.text),
        ConfigTarget::Template { schema, .. } => {
            config_edit::add_block(current.as_deref().unwrap_or(RANCHER_BASE), *schema, entries)
        }
        ConfigTarget::DropIn { schema, .. } => config_edit::fresh(*schema, entries),
    };
    edited.with_context(|| path)
}

/// The configuration without wasmbay's entries, found by their names alone (no record, or
/// the file was edited since the install).
fn without_entries(layout: &Layout, current: &Content) -> Result<Content> {
    let Some(text) = current else {
        return Ok(None);
    };
    let path = layout.target.path().display().to_string();
    Ok(match &layout.target {
        ConfigTarget::Toml(_) => Some(config_edit::remove(text, false).with_context(|| path)?.0),
        ConfigTarget::Template { .. } => {
            Some(config_edit::without_block(text).with_context(|| path)?.0)
        }
        ConfigTarget::DropIn { .. } => {
            let (rest, _) = config_edit::remove(text, true).with_context(|| path)?;
            // The file is wasmbay's own: it goes when nothing else is left in it.
            (!rest.trim().is_empty()).then_some(rest)
        }
    })
}

fn engines(asked: &[String]) -> Result<Vec<String>> {
    let engines: Vec<String> = if asked.is_empty() {
        wasmbay_engines::compiled_in()
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        asked.to_vec()
    };
    for engine in &engines {
        if !wasmbay_engines::KNOWN.contains(&engine.as_str()) {
            bail!(
                "--engine {engine}: not an engine wasmbay has (known: {})",
                wasmbay_engines::KNOWN.join(", ")
            );
        }
    }
    Ok(engines)
}

fn print_diff(path: &Path, old: &Content, new: &Content) {
    let (old, new) = (
        old.as_deref().unwrap_or_default(),
        new.as_deref().unwrap_or_default(),
    );
    if old == new {
        println!("{}: unchanged", path.display());
        return;
    }
    let shown = path.display().to_string();
    print!(
        "{}",
        similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .header(&shown, &shown)
    );
}

fn describe(layout: &Layout) {
    let binary = layout
        .containerd
        .as_deref()
        .map_or_else(|| "not found".to_string(), |b| b.display().to_string());
    println!(
        "node: {} (containerd {}, {binary}), {} {}, socket {}",
        layout.distribution.name(),
        layout
            .containerd_version
            .as_deref()
            .unwrap_or("of unknown version"),
        layout.target.kind(),
        layout.target.path().display(),
        layout.socket.display()
    );
}

fn install(args: &InstallArgs) -> Result<i32> {
    let change = &args.change;
    let node = change.at.node()?;
    let layout = layout::find(
        &node,
        &change.at.overrides(change.restart_command.as_deref()),
    )?;
    describe(&layout);
    let engines = engines(&args.engines)?;
    let bin_dir = args.bin_dir.to_string_lossy().into_owned();
    if ignores_runtime_path(layout.containerd_version.as_deref())
        && !ON_SERVICE_PATH.contains(&bin_dir.trim_end_matches('/'))
    {
        eprintln!(
            "wasmbay: warning: containerd {} ignores runtime_path (fixed in 1.7.1) and looks \
             for the shims on its PATH: {bin_dir} must be on it",
            layout.containerd_version.as_deref().unwrap_or_default()
        );
    }
    let entries: Vec<RuntimeEntry> = engines
        .iter()
        .map(|e| RuntimeEntry::for_engine(e, &bin_dir))
        .collect();
    let handlers: Vec<String> = entries.iter().map(|e| e.handler.clone()).collect();
    let config = layout.target.path().to_path_buf();
    let current = read(&node, &config)?;
    let new = Some(with_entries(&layout, &current, &entries)?);
    let config_changes = new != current;
    let shim = match &args.shim {
        Some(shim) => shim.clone(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name(names::shim_binary("wasmtime")),
    };
    if !shim.is_file() {
        bail!("{}: no shim binary there (pass --shim)", shim.display());
    }
    let bin_here = node.path(&args.bin_dir);
    if change.dry_run {
        print_diff(&config, &current, &new);
        for placed in binaries::place_shim(&shim, &bin_here, &engines, true)? {
            let what = if placed.changed {
                "would be written"
            } else {
                "unchanged"
            };
            println!("{}: {what}", placed.path.display());
        }
        if config_changes && !change.no_restart {
            match &layout.restart {
                Restart::Unknown => println!(
                    "containerd would need a restart, and no way to restart it was found \
                     (pass --restart-command or --no-restart)"
                ),
                how => println!("containerd would be restarted ({how:?})"),
            }
        }
        return Ok(0);
    }
    if config_changes && !change.no_restart && layout.restart == Restart::Unknown {
        bail!(
            "{}: no way to restart {} was found (no systemd unit, no init script); nothing was \
             changed: pass --restart-command, or --no-restart and restart it yourself",
            config.display(),
            layout.distribution.name()
        );
    }
    if config_changes && !change.no_restart {
        // A containerd that does not serve the CRI now would not after the restart either, and
        // the rollback could not tell a refused file from that: say so before changing anything.
        if let Err(e) = cri_probe::status(&node.path(&layout.socket), Duration::from_secs(10)) {
            bail!(
                "containerd's CRI at {} does not answer before any change ({e}); nothing was \
                 changed. Start containerd with its CRI plugin (not in `disabled_plugins`), or \
                 pass --no-restart to only write the configuration",
                layout.socket.display()
            );
        }
    }

    let record_before = record::load(&node)?;
    // The file before wasmbay: kept from the first install while the file still holds what
    // that install wrote, else what is there now without wasmbay's entries.
    let original = match &record_before {
        Some(r)
            if r.config == config
                && current.as_deref().map(record::sha256) == Some(r.written_sha256.clone()) =>
        {
            r.original.clone()
        }
        _ => without_entries(&layout, &current)?,
    };
    let mut created_dirs = missing_dirs(&node, &config);
    created_dirs.extend(missing_dirs(&node, &args.bin_dir.join("shim")));
    created_dirs.extend(missing_dirs(&node, Path::new(record::RECORD)));
    let placed = binaries::place_shim(&shim, &bin_here, &engines, false)?;
    let undo_binaries = |placed: &[binaries::Placed]| {
        let created: Vec<PathBuf> = placed
            .iter()
            .filter(|p| p.created)
            .map(|p| p.path.clone())
            .collect();
        let _ = binaries::remove(&created, false);
    };
    if config_changes {
        let expect = Expect {
            handlers: &handlers,
            present: true,
            timeout: Duration::from_secs(change.timeout),
        };
        let applied = if change.no_restart {
            restart::write_content(&node, &config, &new)
        } else {
            restart::apply(&node, &layout, &config, &current, &new, &expect)
        };
        if let Err(e) = applied {
            undo_binaries(&placed);
            remove_empty_dirs(&node, &created_dirs);
            return Err(e);
        }
    }
    let record = Record {
        distribution: layout.distribution,
        config: config.clone(),
        config_kind: layout.target.kind().to_string(),
        original,
        written_sha256: record::sha256(new.as_deref().unwrap_or_default()),
        created_dirs: {
            let mut all = record_before
                .as_ref()
                .map(|r| r.created_dirs.clone())
                .unwrap_or_default();
            all.extend(
                created_dirs
                    .into_iter()
                    .filter(|d| !all.contains(d))
                    .collect::<Vec<_>>(),
            );
            all
        },
        binaries: placed
            .iter()
            .map(|p| Path::new("/").join(p.path.strip_prefix(&node.root).unwrap_or(&p.path)))
            .collect(),
        handlers: handlers.clone(),
    };
    if record_before.as_ref() != Some(&record) {
        record::store(&node, &record)?;
    }
    for placed in &placed {
        let what = if placed.changed {
            "installed"
        } else {
            "unchanged"
        };
        println!("{}: {what}", placed.path.display());
    }
    match (config_changes, change.no_restart) {
        (false, _) => println!("{}: unchanged; containerd not restarted", config.display()),
        (true, true) => println!(
            "{}: written; restart containerd to take it up",
            config.display()
        ),
        (true, false) => println!(
            "{}: written; containerd restarted and serves {}",
            config.display(),
            handlers.join(", ")
        ),
    }
    Ok(0)
}

/// What systemd (and so containerd's unit, k3s' and rke2's) puts on a service's `PATH`.
const ON_SERVICE_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// containerd 1.6 reads `runtime_path` but starts the shim found on its `PATH` anyway
/// (containerd/containerd#8207, fixed for 1.7 only).
fn ignores_runtime_path(version: Option<&str>) -> bool {
    version.is_some_and(|v| v.starts_with("1.6.") || v.starts_with("1.5.") || v == "1.6")
}

/// The directories above `path` that do not exist yet (the node's paths), outermost first.
fn missing_dirs(node: &Node, path: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = path
        .ancestors()
        .skip(1)
        .take_while(|dir| !node.exists(dir))
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// Removes `dirs` (the node's paths) innermost first, each only when empty.
fn remove_empty_dirs(node: &Node, dirs: &[PathBuf]) {
    for dir in dirs.iter().rev() {
        let _ = std::fs::remove_dir(node.path(dir));
    }
}

fn uninstall(args: &ChangeArgs) -> Result<i32> {
    let node = args.at.node()?;
    let record = record::load(&node)?;
    let overrides = args
        .at
        .overrides(args.restart_command.as_deref())
        .after(record.as_ref());
    let mut layout = layout::find(&node, &overrides)?;
    if let Some(r) = &record {
        // The file's kind is the one the install wrote, whatever the node looks like now.
        layout.target = match r.config_kind.as_str() {
            "template" => ConfigTarget::Template {
                path: r.config.clone(),
                schema: Schema::V2,
            },
            "drop-in" => ConfigTarget::DropIn {
                path: r.config.clone(),
                schema: Schema::V2,
            },
            _ => ConfigTarget::Toml(r.config.clone()),
        };
    }
    describe(&layout);
    let config = layout.target.path().to_path_buf();
    let current = read(&node, &config)?;
    let new = match &record {
        Some(r) if current.as_deref().map(record::sha256) == Some(r.written_sha256.clone()) => {
            r.original.clone()
        }
        _ => without_entries(&layout, &current)?,
    };
    let handlers: Vec<String> = match &record {
        Some(r) => r.handlers.clone(),
        None => wasmbay_engines::KNOWN
            .iter()
            .map(|e| names::runtime_handler(e))
            .collect(),
    };
    let binaries: Vec<PathBuf> = match &record {
        Some(r) => r.binaries.iter().map(|b| node.path(b)).collect(),
        None => wasmbay_engines::KNOWN
            .iter()
            .map(|e| node.path("/usr/local/bin").join(names::shim_binary(e)))
            .collect(),
    };
    let config_changes = new != current;
    if args.dry_run {
        print_diff(&config, &current, &new);
        for path in binaries::remove(&binaries, true)? {
            println!("{}: would be removed", path.display());
        }
        return Ok(0);
    }
    if config_changes {
        if args.no_restart {
            restart::write_content(&node, &config, &new)?;
        } else {
            let expect = Expect {
                handlers: &handlers,
                present: false,
                timeout: Duration::from_secs(args.timeout),
            };
            restart::apply(&node, &layout, &config, &current, &new, &expect)?;
        }
        println!("{}: restored", config.display());
    } else {
        println!("{}: unchanged", config.display());
    }
    for path in binaries::remove(&binaries, false)? {
        println!("{}: removed", path.display());
    }
    record::delete(&node)?;
    if let Some(r) = &record {
        remove_empty_dirs(&node, &r.created_dirs);
    }
    Ok(0)
}

fn status(args: &WhereArgs) -> Result<i32> {
    let node = args.node()?;
    let record = record::load(&node)?;
    let overrides = args.overrides(None).after(record.as_ref());
    let layout = match (layout::find(&node, &overrides), &record) {
        (Ok(layout), _) => layout,
        (Err(e), None) => {
            println!("wasmbay: not installed (no {}); {e}", record::RECORD);
            return Ok(3);
        }
        (Err(e), Some(_)) => return Err(e.into()),
    };
    describe(&layout);
    let Some(record) = record else {
        println!("wasmbay: not installed (no {})", record::RECORD);
        return Ok(3);
    };
    let mut healthy = true;
    for binary in &record.binaries {
        let present = node.path(binary).is_file();
        healthy &= present;
        println!(
            "{}: {}",
            binary.display(),
            if present { "present" } else { "missing" }
        );
    }
    match cri_probe::status(&node.path(&layout.socket), Duration::from_secs(10)) {
        Ok(cri) => {
            for handler in &record.handlers {
                let served = cri.handlers.contains(handler);
                healthy &= served;
                println!(
                    "handler {handler}: {}",
                    if served {
                        "served by containerd"
                    } else {
                        "not served"
                    }
                );
            }
        }
        Err(e) => {
            healthy = false;
            println!("containerd's CRI at {}: {e}", layout.socket.display());
        }
    }
    Ok(if healthy { 0 } else { 1 })
}
