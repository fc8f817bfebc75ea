//! Invariants of the OCI spec → WASI mapping, shared by the targets that produce specs.

use std::path::{Component, Path, PathBuf};

use wasmbay_shim_core::oci::{workload_from_spec, RootView, SpecError, MEMORY_LIMIT_ANNOTATION};
use wasmbay_shim_core::oci_spec::runtime::Spec;

/// The rootfs the host view uses; it need not exist, the mapping is lexical.
pub const ROOTFS: &str = "/bundle/rootfs";

fn has_parent_dir(path: &Path) -> bool {
    path.components().any(|c| c == Component::ParentDir)
}

/// Maps `spec` in both views and checks what `workload_from_spec` promises.
pub fn check_spec(spec: &Spec) {
    let host = RootView::Host {
        rootfs: PathBuf::from(ROOTFS),
    };
    for view in [host, RootView::InContainer] {
        check_view(spec, &view);
    }
}

fn bind_sources(spec: &Spec) -> Vec<PathBuf> {
    spec.mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.source().clone())
        .collect()
}

fn check_view(spec: &Spec, view: &RootView) {
    let annotations = spec.annotations().as_ref();
    let annotated_limit = annotations.and_then(|a| a.get(MEMORY_LIMIT_ANNOTATION));
    let workload = match workload_from_spec(spec, view) {
        Ok(w) => w,
        Err(SpecError::BadAnnotation { key, value }) => {
            // Only an unparsable annotation value is reported as one, and by its own key.
            assert_eq!(key, MEMORY_LIMIT_ANNOTATION);
            assert_eq!(Some(&value), annotated_limit);
            assert!(value.parse::<u64>().is_err(), "{value:?} is a number");
            return;
        }
        Err(_) => return,
    };
    let process = spec
        .process()
        .as_ref()
        .expect("a mapped spec has a process");
    let args = process.args().as_ref().expect("a mapped spec has args");
    assert_eq!(workload.config.args.len(), args.len());
    assert_eq!(workload.config.args[0], workload.entrypoint.path);
    assert_eq!(workload.config.args[1..], args[1..]);

    let preopens = &workload.config.preopens;
    let roots = preopens.iter().filter(|p| p.guest == "/").count();
    assert!(roots <= 1, "{roots} root preopens: {preopens:?}");
    if roots == 1 {
        assert_eq!(preopens[0].guest, "/", "the root preopen comes first");
    }
    let mut guests: Vec<&str> = preopens.iter().map(|p| p.guest.as_str()).collect();
    guests.sort_unstable();
    guests.dedup();
    assert_eq!(
        guests.len(),
        preopens.len(),
        "a guest name twice: {preopens:?}"
    );
    for preopen in preopens {
        // Guest names are absolute and never climb: an engine that joins them onto its own
        // root must not end up above it.
        let guest = Path::new(&preopen.guest);
        assert!(guest.is_absolute(), "guest {:?} is relative", preopen.guest);
        assert!(!has_parent_dir(guest), "guest {:?} has `..`", preopen.guest);
        match view {
            RootView::Host { rootfs } => {
                // A preopen's host side is either a bind mount's own source (the spec names
                // host paths there) or a directory of the rootfs, which must stay inside it.
                if !bind_sources(spec).contains(&preopen.host) {
                    assert!(
                        preopen.host.starts_with(rootfs) && !has_parent_dir(&preopen.host),
                        "preopen {preopen:?} leaves the rootfs {rootfs:?}"
                    );
                }
            }
            RootView::InContainer => {
                assert!(preopen.host.is_absolute(), "{preopen:?}");
                assert!(!has_parent_dir(&preopen.host), "{preopen:?} has `..`");
            }
        }
    }
    if let Some(limit) = annotated_limit.and_then(|v| v.parse::<u64>().ok()) {
        let got = workload
            .config
            .memory_limit
            .expect("an annotated limit is applied");
        assert!(got <= limit, "limit {got} above the annotated {limit}");
    }
}
