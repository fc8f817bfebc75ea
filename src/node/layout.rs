//! Where a node keeps containerd's configuration, and how its containerd is restarted.
//!
//! Plain containerd reads `/etc/containerd/config.toml`. k3s and rke2 regenerate that file at
//! every start from a Go template, so the template is edited (`config.toml.tmpl`, or
//! `config-v3.toml.tmpl` where their containerd is 2.x). microk8s renders
//! `args/containerd-template.toml`. k0s merges every file in `/etc/k0s/containerd.d/` into
//! the configuration it writes, and reloads containerd itself when that directory changes.
//! containerd 2.x merges imported files table by table, so where its configuration imports a
//! directory the entries go there as a file of their own; containerd 1.x lets an imported
//! file replace a whole plugin section, so it is always the main file there.
//!
//! Every path here is the node's own; [`Node::path`] puts the host root in front.

use std::path::{Path, PathBuf};

use super::config_edit::{self, Schema};

/// The kinds of node this installer knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    Containerd,
    K3s,
    Rke2,
    Microk8s,
    K0s,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Containerd => "containerd",
            Distribution::K3s => "k3s",
            Distribution::Rke2 => "rke2",
            Distribution::Microk8s => "microk8s",
            Distribution::K0s => "k0s",
        }
    }
}

/// How the entries reach containerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigTarget {
    /// A TOML file containerd reads, edited in place (created when missing).
    Toml(PathBuf),
    /// A Go template the distribution renders into containerd's file: one marked block.
    Template { path: PathBuf, schema: Schema },
    /// A file of wasmbay's own in a directory that is merged in.
    DropIn { path: PathBuf, schema: Schema },
}

impl ConfigTarget {
    pub fn path(&self) -> &Path {
        match self {
            ConfigTarget::Toml(path)
            | ConfigTarget::Template { path, .. }
            | ConfigTarget::DropIn { path, .. } => path,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ConfigTarget::Toml(_) => "toml",
            ConfigTarget::Template { .. } => "template",
            ConfigTarget::DropIn { .. } => "drop-in",
        }
    }
}

/// How containerd takes up a new configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// `systemctl restart UNIT`.
    Systemd(String),
    /// `/etc/init.d/NAME restart`.
    InitScript(PathBuf),
    /// The distribution notices the change and restarts containerd (k0s).
    Reloads,
    /// A command given by the operator, run through `sh -c`.
    Command(String),
    /// No way found: the error says what was looked for.
    Unknown,
}

/// A node's containerd as found.
#[derive(Debug, Clone)]
pub struct Layout {
    pub distribution: Distribution,
    pub target: ConfigTarget,
    /// containerd's gRPC socket (the node's path).
    pub socket: PathBuf,
    pub restart: Restart,
    /// The containerd binary, when found (the node's path).
    pub containerd: Option<PathBuf>,
    /// Its version (`1.7.24`), when it could be asked or was given.
    pub containerd_version: Option<String>,
}

/// The node's file system as this process sees it: `/`, or where the host's root is mounted.
#[derive(Debug, Clone)]
pub struct Node {
    pub root: PathBuf,
}

impl Node {
    /// The node's `path` (absolute) as seen from here.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.path(path).exists()
    }

    /// Whether this process works on its own root, not on a mounted host root.
    pub fn is_own_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// A command run on the node, with the node's own binaries, libraries and sockets: in
    /// the mount namespace of the host's init when this process sees it (a pod with
    /// `hostPID: true`, as deploy/ runs the installer), else in a chroot of the host root.
    /// systemctl refuses to act from a chroot in another PID namespace ("Failed to connect to
    /// system scope bus"), so the first is what restarts containerd from a pod. Either is
    /// entered by this process between fork and exec: the installer image holds nothing but
    /// wasmbay's static binaries.
    pub fn command(&self, program: &str) -> std::process::Command {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(program);
        if self.is_own_root() {
            return command;
        }
        if let Some(namespace) = self.host_init_mount_namespace() {
            // SAFETY: the closure runs in the forked child before exec and only makes the
            // async-signal-safe setns(2) and chdir(2) calls, on a descriptor opened before the
            // fork and kept open by the closure; failure goes back to the parent as io::Error.
            unsafe {
                command.pre_exec(move || {
                    if libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNS) != 0
                        || libc::chdir(c"/".as_ptr()) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            return command;
        }
        // Made before the fork: the child may not allocate.
        let root = std::ffi::CString::new(self.root.as_os_str().as_bytes());
        // SAFETY: the closure runs in the forked child before exec and only makes the
        // async-signal-safe chroot(2) and chdir(2) calls on a string allocated before the
        // fork; it reports failure through the io::Error std sends back to the parent.
        unsafe {
            command.pre_exec(move || {
                let root = root
                    .as_ref()
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// The host init's mount namespace, when PID 1 here is the host's init: its root is the
    /// host root mounted here.
    fn host_init_mount_namespace(&self) -> Option<std::fs::File> {
        use std::os::unix::fs::MetadataExt;
        let init_root = std::fs::metadata("/proc/1/root").ok()?;
        let host_root = std::fs::metadata(&self.root).ok()?;
        if (init_root.dev(), init_root.ino()) != (host_root.dev(), host_root.ino()) {
            return None;
        }
        std::fs::File::open("/proc/1/ns/mnt").ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "no containerd configuration found under {root}: looked for plain containerd \
         (/etc/containerd/config.toml or a containerd binary), k3s and rke2 \
         (/var/lib/rancher/{{k3s,rke2}}/agent/etc/containerd/), microk8s \
         (/var/snap/microk8s/current/args/containerd-template.toml) and k0s (/etc/k0s); \
         pass --distribution and --config to name it"
    )]
    NotFound { root: String },
    #[error(
        "{0}: k3s or rke2 writes containerd's configuration at its first start, and there is \
         none yet: start it once, then install"
    )]
    NotStartedYet(String),
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Config {
        path: String,
        #[source]
        source: config_edit::ConfigError,
    },
}

/// What the operator said, each overriding what would be found.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub distribution: Option<Distribution>,
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub containerd_version: Option<String>,
    pub restart_command: Option<String>,
}

const RANCHER: [(&str, Distribution); 2] = [
    ("/var/lib/rancher/k3s", Distribution::K3s),
    ("/var/lib/rancher/rke2", Distribution::Rke2),
];
const MICROK8S_TEMPLATE: &str = "/var/snap/microk8s/current/args/containerd-template.toml";
const K0S_DROP_INS: &str = "/etc/k0s/containerd.d";
const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
/// What containerd 2.2 and later import when it has no configuration file.
const CONTAINERD_DEFAULT_DROP_INS: &str = "/etc/containerd/conf.d";
const DROP_IN_NAME: &str = "wasmbay.toml";

/// Finds the node's containerd.
pub fn find(node: &Node, overrides: &Overrides) -> Result<Layout, LayoutError> {
    let distribution = match overrides.distribution {
        Some(d) => d,
        None => detect(node, overrides).ok_or_else(|| LayoutError::NotFound {
            root: node.root.display().to_string(),
        })?,
    };
    let containerd = containerd_binary(node, distribution);
    let containerd_version = overrides.containerd_version.clone().or_else(|| {
        containerd
            .as_deref()
            .and_then(|binary| containerd_version(node, binary))
    });
    let version = containerd_version.as_deref();
    let (target, socket, restart) = match distribution {
        Distribution::Containerd => (
            containerd_target(node, overrides.config.as_deref(), version)?,
            PathBuf::from("/run/containerd/containerd.sock"),
            service_restart(node, &["containerd"]),
        ),
        Distribution::K3s | Distribution::Rke2 => {
            let name = distribution.name();
            let dir = PathBuf::from(format!("/var/lib/rancher/{name}/agent/etc/containerd"));
            let target = match &overrides.config {
                Some(path) => ConfigTarget::Template {
                    path: path.clone(),
                    schema: template_schema(path),
                },
                None => rancher_template(node, &dir)?,
            };
            let units: Vec<String> = match distribution {
                Distribution::K3s => vec!["k3s".into(), "k3s-agent".into()],
                _ => vec!["rke2-server".into(), "rke2-agent".into()],
            };
            let units: Vec<&str> = units.iter().map(String::as_str).collect();
            (
                target,
                PathBuf::from("/run/k3s/containerd/containerd.sock"),
                service_restart(node, &units),
            )
        }
        Distribution::Microk8s => (
            ConfigTarget::Toml(
                overrides
                    .config
                    .clone()
                    .unwrap_or_else(|| MICROK8S_TEMPLATE.into()),
            ),
            PathBuf::from("/var/snap/microk8s/common/run/containerd.sock"),
            service_restart(node, &["snap.microk8s.daemon-containerd"]),
        ),
        Distribution::K0s => (
            ConfigTarget::DropIn {
                path: overrides
                    .config
                    .clone()
                    .unwrap_or_else(|| Path::new(K0S_DROP_INS).join(DROP_IN_NAME)),
                schema: version
                    .and_then(config_edit::major_of)
                    .and_then(Schema::for_containerd)
                    .unwrap_or(Schema::V2),
            },
            PathBuf::from("/run/k0s/containerd.sock"),
            Restart::Reloads,
        ),
    };
    let restart = match &overrides.restart_command {
        Some(command) => Restart::Command(command.clone()),
        None => restart,
    };
    Ok(Layout {
        distribution,
        target,
        socket: overrides.socket.clone().unwrap_or(socket),
        restart,
        containerd,
        containerd_version,
    })
}

fn detect(node: &Node, overrides: &Overrides) -> Option<Distribution> {
    for (dir, distribution) in RANCHER {
        if node.exists(format!("{dir}/agent/etc/containerd")) {
            return Some(distribution);
        }
    }
    if node.exists(MICROK8S_TEMPLATE) {
        return Some(Distribution::Microk8s);
    }
    if node.exists("/etc/k0s") {
        return Some(Distribution::K0s);
    }
    let plain = overrides.config.is_some()
        || node.exists(CONTAINERD_CONFIG)
        || containerd_binary(node, Distribution::Containerd).is_some();
    plain.then_some(Distribution::Containerd)
}

fn containerd_binary(node: &Node, distribution: Distribution) -> Option<PathBuf> {
    let candidates: &[&str] = match distribution {
        Distribution::Containerd => &[
            "/usr/bin/containerd",
            "/usr/local/bin/containerd",
            "/usr/sbin/containerd",
        ],
        Distribution::K3s => &["/var/lib/rancher/k3s/data/current/bin/containerd"],
        Distribution::Rke2 => &["/var/lib/rancher/rke2/bin/containerd"],
        Distribution::Microk8s => &["/snap/microk8s/current/bin/containerd"],
        Distribution::K0s => &["/var/lib/k0s/bin/containerd"],
    };
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| node.path(path).is_file())
}

/// `containerd --version`: `containerd github.com/containerd/containerd v1.7.24 <commit>`, or
/// Debian's `containerd github.com/containerd/containerd 1.6.20~ds1 <commit>`.
fn containerd_version(node: &Node, binary: &Path) -> Option<String> {
    let output = node
        .command(&binary.to_string_lossy())
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_containerd_version(&String::from_utf8_lossy(&output.stdout))
}

pub fn parse_containerd_version(output: &str) -> Option<String> {
    let field = output.split_whitespace().nth(2)?;
    let version: String = field
        .trim_start_matches('v')
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    config_edit::major_of(&version).map(|_| version)
}

/// Plain containerd: a drop-in where containerd 2.x imports a directory, else the main file.
fn containerd_target(
    node: &Node,
    config: Option<&Path>,
    version: Option<&str>,
) -> Result<ConfigTarget, LayoutError> {
    let main = config.map_or_else(|| PathBuf::from(CONTAINERD_CONFIG), Path::to_path_buf);
    let major = version.and_then(config_edit::major_of);
    if major.is_none_or(|m| m < 2) {
        return Ok(ConfigTarget::Toml(main));
    }
    let text = match std::fs::read_to_string(node.path(&main)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(LayoutError::Read {
                path: main.display().to_string(),
                source,
            })
        }
    };
    let dir = match &text {
        Some(text) => imported_dir(text).map_err(|source| LayoutError::Config {
            path: main.display().to_string(),
            source,
        })?,
        // containerd 2.2 and later import conf.d when there is no file.
        None if version.is_some_and(at_least_2_2) => {
            Some(PathBuf::from(CONTAINERD_DEFAULT_DROP_INS))
        }
        None => None,
    };
    Ok(match dir {
        Some(dir) => ConfigTarget::DropIn {
            path: dir.join(DROP_IN_NAME),
            schema: Schema::V3,
        },
        None => ConfigTarget::Toml(main),
    })
}

fn at_least_2_2(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 2)
}

/// The directory of an `imports` entry of the form `DIR/*.toml`, the usual drop-in pattern.
fn imported_dir(text: &str) -> Result<Option<PathBuf>, config_edit::ConfigError> {
    let doc = text
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| config_edit::ConfigError::Parse(e.to_string()))?;
    let imports = doc.get("imports").and_then(toml_edit::Item::as_array);
    let dir = imports.into_iter().flatten().find_map(|value| {
        let pattern = value.as_str()?;
        let dir = pattern.strip_suffix("/*.toml")?;
        (dir.starts_with('/') && !dir.contains(['*', '?', '['])).then(|| PathBuf::from(dir))
    });
    Ok(dir)
}

/// k3s/rke2: the template there, else a new one named for the generated file's schema.
fn rancher_template(node: &Node, dir: &Path) -> Result<ConfigTarget, LayoutError> {
    for name in ["config-v3.toml.tmpl", "config.toml.tmpl"] {
        let path = dir.join(name);
        if node.path(&path).is_file() {
            return Ok(ConfigTarget::Template {
                schema: template_schema(&path),
                path,
            });
        }
    }
    let generated = dir.join("config.toml");
    let text = std::fs::read_to_string(node.path(&generated)).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LayoutError::NotStartedYet(generated.display().to_string())
        } else {
            LayoutError::Read {
                path: generated.display().to_string(),
                source,
            }
        }
    })?;
    let schema = config_edit::schema_of(&text, None).map_err(|source| LayoutError::Config {
        path: generated.display().to_string(),
        source,
    })?;
    let name = if schema == Schema::V3 {
        "config-v3.toml.tmpl"
    } else {
        "config.toml.tmpl"
    };
    Ok(ConfigTarget::Template {
        path: dir.join(name),
        schema,
    })
}

fn template_schema(path: &Path) -> Schema {
    if path.file_name().is_some_and(|n| n == "config-v3.toml.tmpl") {
        Schema::V3
    } else {
        Schema::V2
    }
}

/// systemd when it runs the node and has one of `units`, else an init script of that name.
fn service_restart(node: &Node, units: &[&str]) -> Restart {
    let systemd_runs = node.exists("/run/systemd/system");
    for unit in units {
        let file = format!("{unit}.service");
        let known = [
            "/etc/systemd/system",
            "/lib/systemd/system",
            "/usr/lib/systemd/system",
        ]
        .iter()
        .any(|dir| node.exists(Path::new(dir).join(&file)));
        if systemd_runs && known {
            return Restart::Systemd(file);
        }
    }
    for unit in units {
        let script = Path::new("/etc/init.d").join(unit);
        if node.path(&script).is_file() {
            return Restart::InitScript(script);
        }
    }
    Restart::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Node) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let node = Node {
            root: dir.path().to_path_buf(),
        };
        (dir, node)
    }

    #[test]
    fn plain_containerd_under_systemd() {
        let (_dir, node) = tree(&[
            ("/etc/containerd/config.toml", "version = 2\n"),
            ("/lib/systemd/system/containerd.service", "[Service]\n"),
            ("/run/systemd/system/.keep", ""),
        ]);
        let overrides = Overrides {
            containerd_version: Some("1.7.24".into()),
            ..Overrides::default()
        };
        let layout = find(&node, &overrides).unwrap();
        assert_eq!(layout.distribution, Distribution::Containerd);
        assert_eq!(layout.target, ConfigTarget::Toml(CONTAINERD_CONFIG.into()));
        assert_eq!(
            layout.restart,
            Restart::Systemd("containerd.service".into())
        );
        assert_eq!(layout.socket, Path::new("/run/containerd/containerd.sock"));
    }

    #[test]
    fn containerd_2_with_imports_gets_a_drop_in_and_1_x_never_does() {
        let config = "version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n";
        let (_dir, node) = tree(&[
            ("/etc/containerd/config.toml", config),
            ("/etc/init.d/containerd", "#!/bin/sh\n"),
        ]);
        let v2 = Overrides {
            containerd_version: Some("2.1.4".into()),
            ..Overrides::default()
        };
        let layout = find(&node, &v2).unwrap();
        assert_eq!(
            layout.target,
            ConfigTarget::DropIn {
                path: "/etc/containerd/conf.d/wasmbay.toml".into(),
                schema: Schema::V3
            }
        );
        assert_eq!(
            layout.restart,
            Restart::InitScript("/etc/init.d/containerd".into())
        );
        let v1 = Overrides {
            containerd_version: Some("1.7.24".into()),
            ..Overrides::default()
        };
        assert_eq!(
            find(&node, &v1).unwrap().target,
            ConfigTarget::Toml(CONTAINERD_CONFIG.into())
        );
        // No file: 2.2 imports conf.d by default, 2.0 does not.
        let (_dir, bare) = tree(&[("/usr/bin/containerd", "")]);
        let at = |v: &str| {
            find(
                &bare,
                &Overrides {
                    containerd_version: Some(v.into()),
                    ..Overrides::default()
                },
            )
            .unwrap()
            .target
        };
        assert!(matches!(at("2.2.0"), ConfigTarget::DropIn { .. }));
        assert_eq!(at("2.0.5"), ConfigTarget::Toml(CONTAINERD_CONFIG.into()));
    }

    #[test]
    fn k3s_and_rke2_templates() {
        let generated = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n";
        let (_dir, node) = tree(&[
            (
                "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
                generated,
            ),
            ("/etc/systemd/system/k3s-agent.service", ""),
            ("/run/systemd/system/.keep", ""),
        ]);
        let layout = find(&node, &Overrides::default()).unwrap();
        assert_eq!(layout.distribution, Distribution::K3s);
        assert_eq!(
            layout.target,
            ConfigTarget::Template {
                path: "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl".into(),
                schema: Schema::V2
            }
        );
        assert_eq!(layout.restart, Restart::Systemd("k3s-agent.service".into()));
        assert_eq!(
            layout.socket,
            Path::new("/run/k3s/containerd/containerd.sock")
        );

        let (_dir, node) = tree(&[(
            "/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
            "version = 3\n",
        )]);
        let layout = find(&node, &Overrides::default()).unwrap();
        assert_eq!(layout.distribution, Distribution::Rke2);
        assert_eq!(
            layout.target,
            ConfigTarget::Template {
                path: "/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.tmpl".into(),
                schema: Schema::V3
            }
        );
        assert_eq!(layout.restart, Restart::Unknown);

        // Installed but never started: no generated file to read the schema from.
        let (_dir, node) = tree(&[("/var/lib/rancher/k3s/agent/etc/containerd/.keep", "")]);
        let err = find(&node, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("start it once"), "{err}");
    }

    #[test]
    fn microk8s_and_k0s() {
        let (_dir, node) = tree(&[(MICROK8S_TEMPLATE, "version = 2\n")]);
        let layout = find(&node, &Overrides::default()).unwrap();
        assert_eq!(layout.distribution, Distribution::Microk8s);
        assert_eq!(layout.target, ConfigTarget::Toml(MICROK8S_TEMPLATE.into()));
        assert_eq!(
            layout.socket,
            Path::new("/var/snap/microk8s/common/run/containerd.sock")
        );

        let (_dir, node) = tree(&[("/etc/k0s/k0s.yaml", "")]);
        let layout = find(&node, &Overrides::default()).unwrap();
        assert_eq!(layout.distribution, Distribution::K0s);
        assert_eq!(
            layout.target,
            ConfigTarget::DropIn {
                path: "/etc/k0s/containerd.d/wasmbay.toml".into(),
                schema: Schema::V2
            }
        );
        assert_eq!(layout.restart, Restart::Reloads);
    }

    #[test]
    fn a_tree_without_containerd_is_named_in_the_error() {
        let (dir, node) = tree(&[("/etc/hostname", "node\n")]);
        let err = find(&node, &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("k0s"), "{err}");
    }

    #[test]
    fn containerd_versions_are_read_from_its_output() {
        assert_eq!(
            parse_containerd_version(
                "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n"
            )
            .as_deref(),
            Some("1.6.20")
        );
        assert_eq!(
            parse_containerd_version(
                "containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7\n"
            )
            .as_deref(),
            Some("2.1.4")
        );
        assert_eq!(
            parse_containerd_version("bash: containerd: not found"),
            None
        );
    }
}
