//! Host-side preparation of a wasm container, before it exists.
//!
//! The precompiled cache lives on the host; once the container's init process has entered its
//! mount namespace and pivoted into the rootfs, the cache directory is out of sight. So the
//! runtime finds the module in the bundle's rootfs, makes sure the cache holds its artifact,
//! and opens the artifact. The open file crosses into the container with the executor (the
//! init process is cloned from the runtime and does not exec for wasm), where the engine maps
//! it: the module is never compiled inside the container, and every container of the same
//! image maps the same file.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::entrypoint::{detect_file, resolve_program};
use wasmbay_shim_core::oci::{workload_from_spec, RootView};
use wasmbay_shim_core::oci_spec::runtime::Spec;
use wasmbay_shim_core::runner::{LoadError, ModuleLoader};
use wasmbay_shim_core::ModuleKind;

use crate::handler::{decide, Decision};

/// Identifies a module file so that the container side can check it sees the same file the
/// host compiled (a bind mount over the module path would show another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileIdentity {
    pub fn of(path: &Path) -> std::io::Result<FileIdentity> {
        let meta = std::fs::metadata(path)?;
        Ok(FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        })
    }
}

/// A precompiled artifact opened on the host for one container.
#[derive(Debug, Clone)]
pub struct PreparedArtifact {
    pub file: Arc<File>,
    /// Where the artifact is in the host cache (for messages).
    pub path: PathBuf,
    pub kind: ModuleKind,
    /// The module it was compiled from.
    pub module: FileIdentity,
}

/// Prepares the artifact for the container described by `spec` in `bundle`, if it runs wasm.
///
/// `Ok(None)` means there is nothing to prepare here (native entrypoint, module only reachable
/// through a mount, no cache): the container side then decides and reports on its own. A
/// module that is wasm but broken is an error now, so that `create` fails, naming the file.
pub fn prepare(
    bundle: &Path,
    spec: &Spec,
    engine_name: &str,
    cache: Option<ModuleCache>,
) -> Result<Option<PreparedArtifact>, LoadError> {
    let Some(root) = spec.root().as_ref() else {
        return Ok(None);
    };
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let Ok(workload) = workload_from_spec(
        spec,
        &RootView::Host {
            rootfs: rootfs.clone(),
        },
    ) else {
        return Ok(None);
    };
    let path_var = workload
        .config
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let Ok(module) = resolve_program(
        &rootfs,
        &workload.config.cwd,
        path_var,
        &workload.entrypoint.path,
    ) else {
        return Ok(None);
    };
    let Ok(format) = detect_file(&module) else {
        return Ok(None);
    };
    if decide(spec.annotations().as_ref(), format) != Decision::Wasm {
        return Ok(None);
    }
    // The engine is created only for wasm containers: pause containers and sidecars pay nothing.
    // An engine that is not compiled in is reported by the executor's validation, in the
    // container's own words.
    let Ok(engine) = wasmbay_engines::create(engine_name) else {
        return Ok(None);
    };
    let loader = ModuleLoader::new(engine.as_ref(), cache);
    let Some((artifact, kind)) = loader.prepare_artifact(&module)? else {
        return Ok(None);
    };
    let identity = FileIdentity::of(&module).map_err(|source| LoadError::MissingFile {
        path: module.clone(),
        source,
    })?;
    let file = File::open(&artifact).map_err(|source| LoadError::MissingFile {
        path: artifact.clone(),
        source,
    })?;
    tracing::debug!(module = %module.display(), artifact = %artifact.display(), "artifact prepared");
    Ok(Some(PreparedArtifact {
        file: Arc::new(file),
        path: artifact,
        kind,
        module: identity,
    }))
}
