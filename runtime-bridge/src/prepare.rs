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
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmbay_shim_core::cache::ModuleCache;
use wasmbay_shim_core::entrypoint::{detect_file, resolve_program};
use wasmbay_shim_core::oci::{workload_from_spec, RootView};
use wasmbay_shim_core::oci_spec::runtime::Spec;
use wasmbay_shim_core::runner::{DigestArtifact, LoadError, ModuleLoader, Prepared};
use wasmbay_shim_core::{ModuleKind, StopMode};

use crate::handler::{decide, Decision};

/// Identifies a module file so that the container side can check it sees the same file the
/// host compiled (a bind mount over the module path would show another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Where the container's module comes from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ModuleSource {
    /// A file in the rootfs, as the host saw it when compiling.
    RootfsFile(FileIdentity),
    /// An image layer read from the frontend's content store (`image@digest`, for messages).
    /// The rootfs does not hold the module at all.
    ImageLayer(String),
}

/// The module's code as handed to the container's init.
#[derive(Debug, Clone)]
pub enum PreparedCode {
    /// A precompiled artifact opened in the host cache; the engine maps it.
    Artifact {
        file: Arc<File>,
        /// Where the artifact is in the host cache (for messages).
        path: PathBuf,
        kind: ModuleKind,
    },
    /// The module's bytes, compiled inside the container (no cache, or an engine that cannot
    /// precompile). Only image layers come this way: a rootfs file is read in place.
    Wasm(Arc<Vec<u8>>),
}

impl From<Prepared> for PreparedCode {
    /// The checked descriptor itself goes to the container: what the init maps is what the
    /// cache verified.
    fn from(prepared: Prepared) -> Self {
        PreparedCode::Artifact {
            file: Arc::new(prepared.artifact.file),
            path: prepared.artifact.path,
            kind: prepared.kind,
        }
    }
}

/// What the host prepared for one container.
#[derive(Debug, Clone)]
pub struct PreparedArtifact {
    pub source: ModuleSource,
    pub code: PreparedCode,
}

/// A [`PreparedArtifact`] as plain data, for handing it to another process beside one open
/// descriptor: the artifact file, or a memfd holding the module's bytes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PreparedWire {
    source: ModuleSource,
    /// The artifact's path in the host cache and its kind; None when the descriptor holds
    /// wasm bytes.
    artifact: Option<(PathBuf, ModuleKind)>,
}

impl PreparedArtifact {
    /// Splits this into plain data and the descriptor that carries its code.
    pub fn to_wire(&self) -> std::io::Result<(PreparedWire, std::os::fd::OwnedFd)> {
        let (artifact, fd) = match &self.code {
            PreparedCode::Artifact { file, path, kind } => (
                Some((path.clone(), *kind)),
                file.as_fd().try_clone_to_owned()?,
            ),
            PreparedCode::Wasm(bytes) => (None, bytes_in_memfd(bytes)?),
        };
        let wire = PreparedWire {
            source: self.source.clone(),
            artifact,
        };
        Ok((wire, fd))
    }

    /// Puts a [`PreparedWire`] and its descriptor back together.
    pub fn from_wire(wire: PreparedWire, fd: std::os::fd::OwnedFd) -> std::io::Result<Self> {
        use std::io::Read as _;
        let mut file = File::from(fd);
        let code = match wire.artifact {
            Some((path, kind)) => PreparedCode::Artifact {
                file: Arc::new(file),
                path,
                kind,
            },
            None => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                PreparedCode::Wasm(Arc::new(bytes))
            }
        };
        Ok(PreparedArtifact {
            source: wire.source,
            code,
        })
    }
}

/// An anonymous in-memory file holding `bytes`, positioned at its start.
fn bytes_in_memfd(bytes: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::{Seek as _, Write as _};
    use std::os::fd::FromRawFd as _;
    // SAFETY: the name is a NUL-terminated literal; a non-negative result is a new descriptor.
    let fd = unsafe { libc::memfd_create(c"wasmbay-module".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut file = File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file.into())
}

/// A module that is an image layer rather than a file in the rootfs. The frontend that owns
/// the content store supplies the digest from the layer's descriptor and a way to read it,
/// which runs only when the cache does not already hold the compiled module.
pub struct LayerModule<'a> {
    /// `image@sha256:...`, naming the layer in messages.
    pub name: String,
    /// Hex sha256 of the layer's bytes.
    pub sha256: String,
    pub fetch: Box<dyn FnOnce() -> std::io::Result<Vec<u8>> + 'a>,
}

/// The host path of the spec's root filesystem.
pub fn rootfs_of(bundle: &Path, spec: &Spec) -> Option<PathBuf> {
    let root = spec.root().as_ref()?;
    Some(if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    })
}

/// The host path of the container's entrypoint, when the rootfs holds it.
fn entrypoint_on_host(bundle: &Path, spec: &Spec) -> Option<PathBuf> {
    let rootfs = rootfs_of(bundle, spec)?;
    let workload = workload_from_spec(
        spec,
        &RootView::Host {
            rootfs: rootfs.clone(),
        },
    )
    .ok()?;
    let path_var = workload
        .config
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    resolve_program(
        &rootfs,
        &workload.config.cwd,
        path_var,
        &workload.entrypoint.path,
    )
    .ok()
}

/// Whether the rootfs holds the entrypoint named by the spec. When it does not, a frontend
/// with a content store looks for the module among the image's wasm layers.
pub fn entrypoint_in_rootfs(bundle: &Path, spec: &Spec) -> bool {
    entrypoint_on_host(bundle, spec).is_some()
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
    let Some(module) = entrypoint_on_host(bundle, spec) else {
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
    let Ok(engine) = wasmbay_engines::shared(engine_name, StopMode::ExitProcess) else {
        return Ok(None);
    };
    let loader = ModuleLoader::new(engine.as_ref(), cache);
    let Some(prepared) = loader.prepare_artifact(&module)? else {
        return Ok(None);
    };
    let identity = FileIdentity::of(&module).map_err(|source| LoadError::MissingFile {
        path: module.clone(),
        source,
    })?;
    tracing::debug!(
        module = %module.display(),
        artifact = %prepared.artifact.path.display(),
        provenance = ?prepared.provenance,
        "artifact prepared"
    );
    Ok(Some(PreparedArtifact {
        source: ModuleSource::RootfsFile(identity),
        code: PreparedCode::from(prepared),
    }))
}

/// Prepares a module that comes from an image layer: the cached artifact when there is one
/// (the layer is then not read at all), else the layer compiled into the cache, else its bytes.
pub fn prepare_layer(
    layer: LayerModule<'_>,
    engine_name: &str,
    cache: Option<ModuleCache>,
) -> Result<PreparedArtifact, LoadError> {
    let origin = PathBuf::from(&layer.name);
    let engine = wasmbay_engines::shared(engine_name, StopMode::ExitProcess).map_err(|e| {
        LoadError::Engine {
            path: origin.clone(),
            source: wasmbay_shim_core::EngineError::Internal(e.to_string()),
        }
    })?;
    let loader = ModuleLoader::new(engine.as_ref(), cache);
    let code = match loader.prepare_by_digest(&origin, &layer.sha256, layer.fetch)? {
        DigestArtifact::Precompiled(prepared) => PreparedCode::from(prepared),
        DigestArtifact::Bytes(bytes) => PreparedCode::Wasm(Arc::new(bytes)),
    };
    tracing::debug!(layer = %layer.name, "layer module prepared");
    Ok(PreparedArtifact {
        source: ModuleSource::ImageLayer(layer.name),
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_the_wire(prepared: &PreparedArtifact) -> PreparedArtifact {
        let (wire, fd) = prepared.to_wire().unwrap();
        let wire: PreparedWire =
            serde_json::from_slice(&serde_json::to_vec(&wire).unwrap()).unwrap();
        PreparedArtifact::from_wire(wire, fd).unwrap()
    }

    #[test]
    fn layer_bytes_cross_the_wire_in_a_memfd() {
        let prepared = PreparedArtifact {
            source: ModuleSource::ImageLayer("app@sha256:ab".into()),
            code: PreparedCode::Wasm(Arc::new(b"\0asm\x01\0\0\0".to_vec())),
        };
        let back = through_the_wire(&prepared);
        assert!(matches!(&back.source, ModuleSource::ImageLayer(n) if n == "app@sha256:ab"));
        assert!(matches!(&back.code, PreparedCode::Wasm(b) if b.as_slice() == b"\0asm\x01\0\0\0"));
    }

    #[test]
    fn an_artifact_crosses_with_its_file_identity_path_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifact");
        std::fs::write(&path, b"compiled").unwrap();
        let identity = FileIdentity::of(&path).unwrap();
        let prepared = PreparedArtifact {
            source: ModuleSource::RootfsFile(identity),
            code: PreparedCode::Artifact {
                file: Arc::new(File::open(&path).unwrap()),
                path: path.clone(),
                kind: ModuleKind::Component,
            },
        };
        let back = through_the_wire(&prepared);
        assert!(matches!(&back.source, ModuleSource::RootfsFile(id) if *id == identity));
        let PreparedCode::Artifact {
            file,
            path: p,
            kind,
        } = &back.code
        else {
            panic!("not an artifact: {:?}", back.code);
        };
        assert_eq!((p, *kind), (&path, ModuleKind::Component));
        let mut text = String::new();
        use std::io::Read as _;
        (&**file).read_to_string(&mut text).unwrap();
        assert_eq!(text, "compiled");
    }
}
