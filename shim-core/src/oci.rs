//! Deriving a workload's WASI configuration from an OCI runtime spec (`config.json`).
//!
//! The mapping, field by field:
//! - `process.args` → argv; `args[0]` loses its `#func` suffix (that selects the export),
//! - `process.env` → the guest environment, and nothing from the host,
//! - `process.cwd` → the guest working directory,
//! - `root` → the guest's `/`, read-only when `root.readonly`,
//! - bind mounts → extra preopened directories at their destination, read-only with `ro`,
//! - `linux.resources.memory.limit` → the memory limit of the instance,
//! - the `wasmbay.http.*` annotations → where and how an HTTP handler is served
//!   ([`crate::serve`]).
//!
//! Whether host paths are the spec's own or already re-rooted depends on where the frontend
//! runs, which [`RootView`] says.

use std::path::PathBuf;

use oci_spec::runtime::Spec;

use crate::entrypoint::Entrypoint;
use crate::serve::{BadServeAnnotation, ServeSettings};
use crate::wasi::{Preopen, WasiConfig};

/// Where the caller sees the container's files.
#[derive(Debug, Clone)]
pub enum RootView {
    /// On the host: the rootfs is this directory, bind mount sources are host paths.
    Host { rootfs: PathBuf },
    /// Inside the container after pivot_root: the rootfs is `/` and mounts are already in place
    /// at their destinations.
    InContainer,
}

/// Annotation naming the container directory that the guest sees as `/` (default `/`, the
/// rootfs). An empty value gives the guest no root preopen at all. A bind mount at that
/// destination is preopened as `/` instead of at its own path.
pub const WASI_ROOT_ANNOTATION: &str = "wasmbay.wasi.root";

/// Annotation capping the guest's linear memory in bytes, below `linux.resources.memory.limit`
/// when both are set.
pub const MEMORY_LIMIT_ANNOTATION: &str = "wasmbay.memory.limit";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("config.json: annotation `{key}`: {value:?} is not a number of bytes")]
    BadAnnotation { key: &'static str, value: String },
    #[error(transparent)]
    BadServeAnnotation(#[from] BadServeAnnotation),
    #[error("config.json: `process` is missing")]
    NoProcess,
    #[error("config.json: `process.args` is empty")]
    NoArgs,
    #[error("config.json: `{field}` is not valid UTF-8")]
    NotUtf8 { field: &'static str },
    #[error(
        "config.json: `{field}`: {value:?} has a `..` component; container paths may not climb"
    )]
    ParentDir { field: &'static str, value: String },
}

/// The field names [`SpecError::ParentDir`] reports.
const WASI_ROOT_FIELD: &str = "annotations.\"wasmbay.wasi.root\"";
const MOUNT_DESTINATION_FIELD: &str = "mounts[].destination";

/// Normalises a path inside the container to `/a/b`: relative paths are taken from `/` (as
/// runc does for mount destinations), empty and `.` components are dropped.
///
/// `..` is refused rather than resolved: the result becomes a preopen's guest name and, joined
/// onto the rootfs, its host path, and `/../x` joined onto a rootfs is a directory *beside* it
/// (the bundle, and from there the host). No real spec needs `..` in these paths.
fn container_path(field: &'static str, value: &str) -> Result<String, SpecError> {
    let mut out = String::new();
    for part in value.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(SpecError::ParentDir {
                    field,
                    value: value.to_string(),
                })
            }
            name => {
                out.push('/');
                out.push_str(name);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The program a spec asks to run and the WASI view it gets.
#[derive(Debug)]
pub struct WorkloadSpec {
    pub entrypoint: Entrypoint,
    pub config: WasiConfig,
    /// Host path of the guest's `/`.
    pub rootfs: PathBuf,
    /// Where and within what limits the module is served, should it be an HTTP handler.
    pub serve: ServeSettings,
}

impl WorkloadSpec {
    /// Drops preopens whose host side is not a directory. Runtimes bind-mount single files
    /// (`/etc/hosts`, `/etc/resolv.conf`, `/dev/termination-log`); WASI preopens only
    /// directories, and such files stay reachable through the root preopen.
    pub fn keep_directory_preopens(&mut self) {
        self.config
            .preopens
            .retain(|p| p.guest == "/" || p.host.is_dir());
    }
}

pub fn workload_from_spec(spec: &Spec, view: &RootView) -> Result<WorkloadSpec, SpecError> {
    let process = spec.process().as_ref().ok_or(SpecError::NoProcess)?;
    let args = process
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
        .ok_or(SpecError::NoArgs)?;
    let entrypoint = Entrypoint::parse(&args[0]);
    let mut argv = Vec::with_capacity(args.len());
    argv.push(entrypoint.path.clone());
    argv.extend(args[1..].iter().cloned());

    let env = WasiConfig::parse_env(process.env().as_deref().unwrap_or_default());
    let cwd = process
        .cwd()
        .to_str()
        .ok_or(SpecError::NotUtf8 {
            field: "process.cwd",
        })?
        .to_string();

    let (rootfs, root_read_only) = match view {
        RootView::Host { rootfs } => (
            rootfs.clone(),
            spec.root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
        ),
        RootView::InContainer => (
            PathBuf::from("/"),
            spec.root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
        ),
    };

    let annotations = spec.annotations().as_ref();
    // Empty means "no root preopen" and is kept as is; anything else is a container path,
    // normalised so that `/data/` still selects the mount at `/data`.
    let wasi_root = match annotations.and_then(|a| a.get(WASI_ROOT_ANNOTATION)) {
        None => "/".to_string(),
        Some(value) if value.is_empty() => String::new(),
        Some(value) => container_path(WASI_ROOT_FIELD, value)?,
    };

    let mut preopens = Vec::new();
    let mut root_from_mount = false;
    for mount in spec.mounts().as_deref().unwrap_or_default() {
        let options = mount.options().as_deref().unwrap_or_default();
        let is_bind = mount.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        if !is_bind {
            continue;
        }
        let Some(destination) = mount.destination().to_str() else {
            return Err(SpecError::NotUtf8 {
                field: MOUNT_DESTINATION_FIELD,
            });
        };
        let destination = container_path(MOUNT_DESTINATION_FIELD, destination)?;
        if destination == "/" {
            continue;
        }
        let host = match view {
            RootView::Host { .. } => match mount.source() {
                Some(source) => source.clone(),
                None => continue,
            },
            RootView::InContainer => PathBuf::from(&destination),
        };
        let read_only = options.iter().any(|o| o == "ro");
        // The mount chosen as the guest's `/` is preopened once, as `/`.
        let guest = if destination == wasi_root {
            root_from_mount = true;
            "/".to_string()
        } else {
            destination
        };
        let preopen = Preopen {
            host,
            guest,
            read_only,
        };
        // A later mount at the same destination shadows the earlier one, as in the kernel;
        // two preopens of one guest name would leave the choice to the engine.
        match preopens
            .iter_mut()
            .find(|p: &&mut Preopen| p.guest == preopen.guest)
        {
            Some(earlier) => *earlier = preopen,
            None => preopens.push(preopen),
        }
    }
    match wasi_root.as_str() {
        "" => {}
        _ if root_from_mount => {}
        "/" => preopens.insert(
            0,
            Preopen {
                host: rootfs.clone(),
                guest: "/".to_string(),
                read_only: root_read_only,
            },
        ),
        dir => preopens.insert(
            0,
            Preopen {
                host: rootfs.join(dir.trim_start_matches('/')),
                guest: "/".to_string(),
                read_only: root_read_only,
            },
        ),
    }
    preopens.sort_by_key(|p| p.guest != "/");

    // The annotation lets an operator cap linear memory below the cgroup limit, which also
    // has to hold the engine and compiled code.
    let annotated_limit = annotations
        .and_then(|a| a.get(MEMORY_LIMIT_ANNOTATION))
        .map(|v| {
            v.parse::<u64>().map_err(|_| SpecError::BadAnnotation {
                key: MEMORY_LIMIT_ANNOTATION,
                value: v.clone(),
            })
        })
        .transpose()?;

    let memory_limit = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|limit| *limit > 0)
        .map(|limit| limit as u64)
        .or(annotated_limit)
        .map(|limit| annotated_limit.map_or(limit, |a| a.min(limit)));

    Ok(WorkloadSpec {
        entrypoint,
        config: WasiConfig {
            args: argv,
            env,
            cwd,
            preopens,
            memory_limit,
            // A container's guest has the network a Linux process in the same container
            // would have: its own namespace (the pod's), or the host's when it shares it.
            network: true,
            ..WasiConfig::default()
        },
        rootfs,
        serve: ServeSettings::from_annotations(annotations)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    /// Each preopen as (guest name, host path, read-only).
    fn preopens_of(w: &WorkloadSpec) -> Vec<(&str, PathBuf, bool)> {
        w.config
            .preopens
            .iter()
            .map(|p| (p.guest.as_str(), p.host.clone(), p.read_only))
            .collect()
    }

    const BASE: &str = r#"{
        "ociVersion": "1.0.2",
        "process": {
            "cwd": "/work",
            "args": ["/app.wasm#serve", "--port", "8080", ""],
            "env": ["PATH=/bin", "EMPTY=", "UNI=héllo ✓"],
            "user": {"uid": 0, "gid": 0}
        },
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]},
            {"destination": "/scratch", "source": "/tmp/s", "options": ["bind", "rw"]}
        ],
        "linux": {"resources": {"memory": {"limit": 67108864}}}
    }"#;

    #[test]
    fn maps_every_field_from_the_host_view() {
        let w = workload_from_spec(
            &spec(BASE),
            &RootView::Host {
                rootfs: "/bundle/rootfs".into(),
            },
        )
        .unwrap();
        assert_eq!(w.entrypoint.path, "/app.wasm");
        assert_eq!(w.entrypoint.func.as_deref(), Some("serve"));
        assert_eq!(w.config.args, ["/app.wasm", "--port", "8080", ""]);
        assert_eq!(
            w.config.env,
            vec![
                ("PATH".into(), "/bin".into()),
                ("EMPTY".into(), String::new()),
                ("UNI".into(), "héllo ✓".into()),
            ]
        );
        assert_eq!(w.config.cwd, "/work");
        assert!(
            w.config.network,
            "a container's guest has the container's network"
        );
        assert_eq!(w.config.memory_limit, Some(64 << 20));
        assert_eq!(
            w.config.preopens,
            vec![
                Preopen {
                    host: "/bundle/rootfs".into(),
                    guest: "/".into(),
                    read_only: true
                },
                Preopen {
                    host: "/srv/data".into(),
                    guest: "/data".into(),
                    read_only: true
                },
                Preopen {
                    host: "/tmp/s".into(),
                    guest: "/scratch".into(),
                    read_only: false
                },
            ]
        );
    }

    #[test]
    fn file_mounts_are_not_preopened() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "").unwrap();
        let json = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["a.wasm"],"user":{{"uid":0,"gid":0}}}},
            "mounts":[{{"destination":"/etc/hosts","type":"bind","source":"{0}/hosts"}},
                      {{"destination":"/data","type":"bind","source":"{0}"}}]}}"#,
            dir.path().display()
        );
        let mut w = workload_from_spec(
            &spec(&json),
            &RootView::Host {
                rootfs: "/nonexistent".into(),
            },
        )
        .unwrap();
        w.keep_directory_preopens();
        let guests: Vec<_> = w.config.preopens.iter().map(|p| p.guest.as_str()).collect();
        assert_eq!(guests, ["/", "/data"]);
    }

    #[test]
    fn wasi_root_annotation_picks_the_guest_root() {
        let json = |root: &str| {
            format!(
                r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["a.wasm"],"user":{{"uid":0,"gid":0}}}},
                "annotations":{{"wasmbay.wasi.root":"{root}","wasmbay.memory.limit":"1048576"}},
                "mounts":[{{"destination":"/data","type":"bind","source":"/host/fixture","options":["rbind","rw"]}},
                          {{"destination":"/ro","type":"bind","source":"/host/ro","options":["rbind","ro"]}}],
                "linux":{{"resources":{{"memory":{{"limit":67108864}}}}}}}}"#
            )
        };
        let view = RootView::Host {
            rootfs: "/b/rootfs".into(),
        };
        let w = workload_from_spec(&spec(&json("/data")), &view).unwrap();
        assert_eq!(
            preopens_of(&w),
            vec![
                ("/", PathBuf::from("/host/fixture"), false),
                ("/ro", PathBuf::from("/host/ro"), true)
            ]
        );
        assert_eq!(w.config.memory_limit, Some(1 << 20));

        let w = workload_from_spec(&spec(&json("")), &view).unwrap();
        let guests: Vec<_> = w.config.preopens.iter().map(|p| p.guest.as_str()).collect();
        assert_eq!(guests, ["/data", "/ro"]);

        let w = workload_from_spec(&spec(&json("/srv")), &view).unwrap();
        assert_eq!(w.config.preopens[0].host, PathBuf::from("/b/rootfs/srv"));

        let bad = json("/").replace("1048576", "lots");
        let err = workload_from_spec(&spec(&bad), &view).unwrap_err();
        assert!(err.to_string().contains("wasmbay.memory.limit"), "{err}");
    }

    /// Found by `cargo fuzz run annotations` (fuzz/corpus/oci_spec_json/regression_*): a root
    /// annotation of `/../` preopened `<rootfs>/../`, the bundle directory beside the rootfs,
    /// as the guest's `/`; mount destinations with `..` became guest names that climb.
    #[test]
    fn container_paths_that_climb_are_refused_by_field() {
        let view = RootView::Host {
            rootfs: "/b/rootfs".into(),
        };
        let with = |annotations: &str, destination: &str| {
            spec(&format!(
                r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["a.wasm"],"user":{{"uid":0,"gid":0}}}},
                "annotations":{{{annotations}}},
                "mounts":[{{"destination":"{destination}","type":"bind","source":"/host/d"}}]}}"#
            ))
        };
        let err =
            workload_from_spec(&with(r#""wasmbay.wasi.root":"/../""#, "/data"), &view).unwrap_err();
        assert!(
            matches!(&err, SpecError::ParentDir { field, value } if *field == WASI_ROOT_FIELD && value == "/../"),
            "{err}"
        );
        assert!(err.to_string().contains("wasmbay.wasi.root"), "{err}");
        let err =
            workload_from_spec(&with("", "/data/../../etc"), &RootView::InContainer).unwrap_err();
        assert!(err.to_string().contains("mounts[].destination"), "{err}");

        // Spelling variants of one directory are one directory, and select the mount.
        let w = workload_from_spec(&with(r#""wasmbay.wasi.root":"/data/""#, "//data/."), &view)
            .unwrap();
        assert_eq!(
            w.config.preopens,
            vec![Preopen {
                host: "/host/d".into(),
                guest: "/".into(),
                read_only: false
            }]
        );
        let w = workload_from_spec(&with("", "data"), &RootView::InContainer).unwrap();
        assert_eq!(w.config.preopens[1].guest, "/data");
        assert_eq!(w.config.preopens[1].host, PathBuf::from("/data"));
    }

    #[test]
    fn a_later_mount_at_the_same_destination_shadows_the_earlier() {
        let json = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["a.wasm"],"user":{"uid":0,"gid":0}},
            "annotations":{"wasmbay.wasi.root":"/d"},
            "mounts":[{"destination":"/d","type":"bind","source":"/first"},
                      {"destination":"/d/","type":"bind","source":"/second"},
                      {"destination":"/e","type":"bind","source":"/third"},
                      {"destination":"/e","type":"bind","source":"/fourth","options":["ro"]}]}"#;
        let view = RootView::Host {
            rootfs: "/b/rootfs".into(),
        };
        let w = workload_from_spec(&spec(json), &view).unwrap();
        assert_eq!(
            preopens_of(&w),
            vec![
                ("/", PathBuf::from("/second"), false),
                ("/e", PathBuf::from("/fourth"), true)
            ]
        );
    }

    #[test]
    fn in_container_view_uses_destinations() {
        let w = workload_from_spec(&spec(BASE), &RootView::InContainer).unwrap();
        assert_eq!(w.rootfs, PathBuf::from("/"));
        assert_eq!(w.config.preopens[1].host, PathBuf::from("/data"));
    }

    #[test]
    fn missing_args_and_unlimited_memory() {
        let no_args =
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":[],"user":{"uid":0,"gid":0}}}"#;
        let err = workload_from_spec(&spec(no_args), &RootView::InContainer).unwrap_err();
        assert_eq!(err.to_string(), "config.json: `process.args` is empty");
        let unlimited = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["a.wasm"],"user":{"uid":0,"gid":0}},
            "linux":{"resources":{"memory":{"limit":-1}}}}"#;
        let w = workload_from_spec(&spec(unlimited), &RootView::InContainer).unwrap();
        assert_eq!(w.config.memory_limit, None);
        assert!(w.config.env.is_empty());
    }
}
