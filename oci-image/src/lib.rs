//! `wasmbay-oci-image` writes an OCI image layout, as a tar archive, holding one WebAssembly
//! module (binary or WAT text, stored byte for byte as given), in a form that containerd 1.6's
//! `ctr image import` accepts and names.
//!
//! Owns: image reference normalisation ([`ImageRef`]), platforms ([`Platform`]), the two image
//! layouts ([`Layout`]), the image config, manifest, `index.json` and `oci-layout` documents and
//! the deterministic tar writing (fixed mtimes, owners and modes, sorted entries: the same input
//! always gives the same digests).
//!
//! Must not depend on containerd (or any client of it), on engines or on `wasmbay-shim-core`:
//! it is pure Rust and only formats bytes.
//!
//! # Layouts
//!
//! - [`Layout::App`]: one uncompressed tar layer (`application/vnd.oci.image.layer.v1.tar`)
//!   holding the module at `/<file name>` plus any extra files; the config's `Entrypoint` is
//!   `["/<file name>"]` unless overridden. Any runtime that unpacks layers can run it.
//! - [`Layout::Artifact`]: the module itself is the single layer blob, with media type
//!   [`WASM_LAYER_MEDIA_TYPE`] (`application/vnd.bytecodealliance.wasm.component.layer.v0+wasm`).
//!   That is the type runwasi's shims (containerd-shim-wasmtime and friends) select layers by,
//!   for core modules (WASI preview 1) as well as components (preview 2); runwasi also accepts
//!   `application/wasm`, which the CNCF Wasm OCI artifact draft uses. The config stays a
//!   standard OCI image config with `os`/`architecture` from the platform and an empty
//!   `rootfs.diff_ids`: the module is not a filesystem layer. containerd 1.7.7+ and 1.6.25+
//!   unpack such an image into an empty snapshot; older ones (Debian 12's 1.6.20) refuse with
//!   "mismatched image rootfs and manifest layers", so there import it with `--no-unpack` and
//!   create containers through the API with an empty snapshot. The shim reads the module
//!   from containerd's content store either way.
//!
//! # Names
//!
//! The manifest descriptor in `index.json` carries `io.containerd.image.name` (the full,
//! normalised reference: containerd's importer names the image after it) and
//! `org.opencontainers.image.ref.name` (the tag, as the OCI layout spec says), and the
//! manifest's platform.

pub mod archive;
mod multi;
mod platform;
pub mod read;
mod reference;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use multi::{MultiPlatformImage, MultiPlatformSpec, PlatformRootfs};
pub use platform::Platform;
pub use reference::ImageRef;

/// Media type of an OCI image index (`index.json`).
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an uncompressed tar layer.
pub const TAR_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of the module layer in [`Layout::Artifact`] images (runwasi's wasm layer type).
pub const WASM_LAYER_MEDIA_TYPE: &str =
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// Annotation containerd's importer names an image after.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI annotation for a reference's tag in an image layout.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// OCI annotation naming a layer's file (ORAS convention for artifact layers).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// Everything that can go wrong building an image.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid platform {0:?}: expected OS/ARCH or OS/ARCH/VARIANT (e.g. wasip1/wasm)")]
    InvalidPlatform(String),
    #[error("invalid layout {0:?}: expected `app` or `artifact`")]
    InvalidLayout(String),
    #[error("invalid module file name {0:?}: it must be a plain file name")]
    InvalidModuleName(String),
    #[error("invalid path in image {path:?}: {reason}")]
    InvalidImagePath { path: String, reason: &'static str },
    #[error("{0} is given twice (or as both a file and a directory) in the image")]
    DuplicatePath(String),
    #[error("a multi-platform image needs at least one platform")]
    NoPlatform,
    #[error("platform {0} is given twice")]
    DuplicatePlatform(String),
    #[error("the artifact layout holds only the module: extra files ({0}) need the app layout")]
    ExtraFilesInArtifact(String),
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot build tar archive")]
    Tar(#[source] io::Error),
    #[error("cannot serialise {what}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// How the module is packaged; see the crate documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// One tar layer holding the module (and extra files) in a root filesystem.
    #[default]
    App,
    /// The module itself is the only layer (OCI wasm artifact, as runwasi consumes).
    Artifact,
}

impl std::str::FromStr for Layout {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "app" => Ok(Self::App),
            "artifact" => Ok(Self::Artifact),
            other => Err(ImageError::InvalidLayout(other.to_string())),
        }
    }
}

/// What a module file holds, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// Binary core module (`\0asm`, version 1).
    CoreModule,
    /// Binary component (`\0asm`, layer 1).
    Component,
    /// Anything else; expected to be WebAssembly text.
    Text,
}

impl ModuleKind {
    /// Classifies `bytes` by the wasm preamble.
    pub fn detect(bytes: &[u8]) -> Self {
        match bytes {
            [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => Self::CoreModule,
            [0, b'a', b's', b'm', _, _, 1, 0, ..] => Self::Component,
            _ => Self::Text,
        }
    }
}

/// A file added to an [`Layout::App`] image's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Absolute path inside the image, e.g. `/bin/busybox`.
    pub image_path: String,
    pub contents: Vec<u8>,
    /// Stored with mode 0755 when true, 0644 otherwise.
    pub executable: bool,
}

impl ExtraFile {
    /// Reads `host` and places it at `image_path`, executable when any execute bit is set on
    /// the host file.
    pub fn from_host(host: &Path, image_path: &str) -> Result<Self, ImageError> {
        use std::os::unix::fs::PermissionsExt;
        let read_err = |source| ImageError::Read {
            path: host.to_path_buf(),
            source,
        };
        let contents = std::fs::read(host).map_err(read_err)?;
        let mode = std::fs::metadata(host)
            .map_err(read_err)?
            .permissions()
            .mode();
        Ok(Self {
            image_path: image_path.to_string(),
            contents,
            executable: mode & 0o111 != 0,
        })
    }
}

/// The input of an image build.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub reference: ImageRef,
    /// File name of the module inside the image (`/<module_name>`).
    pub module_name: String,
    /// The module's bytes, stored unchanged (binary wasm or WAT text).
    pub module: Vec<u8>,
    pub layout: Layout,
    pub platform: Platform,
    /// `config.Entrypoint`; `None` means `["/<module_name>"]`.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Env`, `KEY=VALUE` strings.
    pub env: Vec<String>,
    /// Extra files for the root filesystem ([`Layout::App`] only).
    pub extra_files: Vec<ExtraFile>,
}

impl ImageSpec {
    /// A spec with the default layout (app), platform (`wasip1/wasm`) and entrypoint.
    pub fn new(reference: ImageRef, module_name: impl Into<String>, module: Vec<u8>) -> Self {
        Self {
            reference,
            module_name: module_name.into(),
            module,
            layout: Layout::default(),
            platform: Platform::default(),
            entrypoint: None,
            env: Vec::new(),
            extra_files: Vec::new(),
        }
    }

    /// Reads the module at `path`; its file name becomes the module name.
    pub fn from_module_file(path: &Path, reference: &str) -> Result<Self, ImageError> {
        let reference = ImageRef::parse(reference)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ImageError::InvalidModuleName(path.display().to_string()))?
            .to_string();
        let module = std::fs::read(path).map_err(|source| ImageError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::new(reference, name, module))
    }

    /// The entrypoint the config will carry.
    pub fn effective_entrypoint(&self) -> Vec<String> {
        self.entrypoint
            .clone()
            .unwrap_or_else(|| vec![format!("/{}", self.module_name)])
    }

    /// Builds the image archive in memory.
    pub fn build(&self) -> Result<Image, ImageError> {
        validate_module_name(&self.module_name)?;
        let (layer_bytes, layer_media_type, layer_annotations) = match self.layout {
            Layout::App => (self.app_layer()?, TAR_LAYER_MEDIA_TYPE, BTreeMap::new()),
            Layout::Artifact => {
                if let Some(extra) = self.extra_files.first() {
                    return Err(ImageError::ExtraFilesInArtifact(extra.image_path.clone()));
                }
                let annotations =
                    BTreeMap::from([(ANNOTATION_TITLE.to_string(), self.module_name.clone())]);
                (self.module.clone(), WASM_LAYER_MEDIA_TYPE, annotations)
            }
        };
        let layer = Descriptor::of(layer_media_type, &layer_bytes).annotated(layer_annotations);
        // The rootfs lists filesystem layers only. An uncompressed tar's diff id is its
        // digest; a wasm layer is not a filesystem, and containerd (1.7.7 and 1.6.25 on) skips
        // layers of non-filesystem media types when unpacking, so the artifact's rootfs is empty.
        let diff_ids = match self.layout {
            Layout::App => vec![layer.digest.clone()],
            Layout::Artifact => Vec::new(),
        };

        let built = manifest_for(
            &self.platform,
            self.effective_entrypoint(),
            self.env.clone(),
            (layer, layer_bytes),
            diff_ids,
        )?;
        let mut manifest = built.manifest.clone();
        manifest.annotations = name_annotations(&self.reference);
        let archive = layout_archive(&manifest, &built.blobs)?;
        Ok(Image {
            reference: self.reference.clone(),
            manifest,
            config: built.config,
            layers: vec![built.layer],
            archive,
        })
    }

    fn app_layer(&self) -> Result<Vec<u8>, ImageError> {
        let module = ExtraFile {
            image_path: format!("/{}", self.module_name),
            contents: self.module.clone(),
            executable: true,
        };
        rootfs_layer(std::iter::once(&module).chain(&self.extra_files))
    }
}

/// One uncompressed tar layer holding `files`, with their parent directories.
pub(crate) fn rootfs_layer<'a>(
    files: impl IntoIterator<Item = &'a ExtraFile>,
) -> Result<Vec<u8>, ImageError> {
    let mut entries: BTreeMap<String, TarEntry> = BTreeMap::new();
    for file in files {
        let rel = normalize_image_path(&file.image_path)?;
        let components: Vec<&str> = rel.split('/').collect();
        for depth in 1..components.len() {
            let dir = components[..depth].join("/");
            match entries.get(&dir) {
                Some(TarEntry::File { .. }) => return Err(ImageError::DuplicatePath(dir)),
                Some(TarEntry::Dir) => {}
                None => {
                    entries.insert(dir, TarEntry::Dir);
                }
            }
        }
        if entries.contains_key(&rel) {
            return Err(ImageError::DuplicatePath(format!("/{rel}")));
        }
        let mode = if file.executable { 0o755 } else { 0o644 };
        entries.insert(
            rel,
            TarEntry::File {
                contents: file.contents.clone(),
                mode,
            },
        );
    }
    write_tar(&entries)
}

/// One platform's manifest over one layer: the config, the manifest, and every blob with its
/// descriptor.
pub(crate) struct BuiltManifest {
    /// The manifest's descriptor, with its platform.
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layer: Descriptor,
    /// Layer, config and manifest, each with its bytes.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
}

pub(crate) fn manifest_for(
    platform: &Platform,
    entrypoint: Vec<String>,
    env: Vec<String>,
    (layer, layer_bytes): (Descriptor, Vec<u8>),
    diff_ids: Vec<String>,
) -> Result<BuiltManifest, ImageError> {
    let config_doc = ImageConfig {
        architecture: &platform.architecture,
        os: &platform.os,
        variant: platform.variant.as_deref(),
        config: ExecConfig { entrypoint, env },
        rootfs: RootFs {
            kind: "layers",
            diff_ids,
        },
    };
    let config_bytes = to_json("image config", &config_doc)?;
    let config = Descriptor::of(CONFIG_MEDIA_TYPE, &config_bytes);
    let manifest_doc = Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: &config,
        layers: std::slice::from_ref(&layer),
    };
    let manifest_bytes = to_json("manifest", &manifest_doc)?;
    let mut manifest = Descriptor::of(MANIFEST_MEDIA_TYPE, &manifest_bytes);
    manifest.platform = Some(DescriptorPlatform {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
    });
    let blobs = vec![
        (layer.clone(), layer_bytes),
        (config.clone(), config_bytes),
        (manifest.clone(), manifest_bytes),
    ];
    Ok(BuiltManifest {
        manifest,
        config,
        layer,
        blobs,
    })
}

/// The annotations by which containerd's importer names an image, and the OCI layout its tag.
pub(crate) fn name_annotations(reference: &ImageRef) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            ANNOTATION_CONTAINERD_NAME.to_string(),
            reference.to_string(),
        ),
        (ANNOTATION_REF_NAME.to_string(), reference.tag().to_string()),
    ])
}

/// An OCI image layout tar: `index.json` naming `top`, the `oci-layout` marker, and `blobs`.
pub(crate) fn layout_archive(
    top: &Descriptor,
    blobs: &[(Descriptor, Vec<u8>)],
) -> Result<Vec<u8>, ImageError> {
    let index_doc = Index {
        schema_version: 2,
        media_type: INDEX_MEDIA_TYPE,
        manifests: std::slice::from_ref(top),
    };
    let index_bytes = to_json("index.json", &index_doc)?;
    let layout_bytes = to_json(
        "oci-layout",
        &OciLayout {
            image_layout_version: "1.0.0",
        },
    )?;
    let mut entries: BTreeMap<String, TarEntry> = BTreeMap::new();
    entries.insert("blobs".to_string(), TarEntry::Dir);
    entries.insert("blobs/sha256".to_string(), TarEntry::Dir);
    for (descriptor, bytes) in blobs {
        let hex = descriptor.digest.trim_start_matches("sha256:");
        entries.insert(
            format!("blobs/sha256/{hex}"),
            TarEntry::File {
                contents: bytes.clone(),
                mode: 0o644,
            },
        );
    }
    for (name, contents) in [("index.json", index_bytes), ("oci-layout", layout_bytes)] {
        entries.insert(
            name.to_string(),
            TarEntry::File {
                contents,
                mode: 0o644,
            },
        );
    }
    write_tar(&entries)
}

/// A built image: its descriptors and the OCI layout tar archive.
#[derive(Debug, Clone)]
pub struct Image {
    pub reference: ImageRef,
    /// The manifest's descriptor as it appears in `index.json`.
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The OCI image layout as an uncompressed tar archive.
    pub archive: Vec<u8>,
}

impl Image {
    /// `sha256:…` of the manifest: the image's digest in containerd.
    pub fn manifest_digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Writes the archive to `path` (through a temporary file renamed into place).
    pub fn write_to(&self, path: &Path) -> Result<(), ImageError> {
        write_atomically(path, &self.archive)
    }
}

/// Writes `bytes` to `path` through a temporary file renamed into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let write_err = |source| ImageError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    std::fs::write(&tmp, bytes).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }

    fn annotated(mut self, annotations: BTreeMap<String, String>) -> Self {
        self.annotations = annotations;
        self
    }
}

/// The `platform` of a descriptor in an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DescriptorPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    config: ExecConfig,
    rootfs: RootFs,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExecConfig {
    entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: &'a [Descriptor],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciLayout {
    image_layout_version: &'static str,
}

fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(value).map_err(|source| ImageError::Json { what, source })
}

fn validate_module_name(name: &str) -> Result<(), ImageError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ImageError::InvalidModuleName(name.to_string()));
    }
    Ok(())
}

/// `/a/b` → `a/b`; refuses relative paths, `.`/`..` components, empty components and NUL.
fn normalize_image_path(path: &str) -> Result<String, ImageError> {
    let invalid = |reason| ImageError::InvalidImagePath {
        path: path.to_string(),
        reason,
    };
    let rel = path
        .strip_prefix('/')
        .ok_or_else(|| invalid("must be absolute"))?;
    if rel.is_empty() {
        return Err(invalid("names no file"));
    }
    if rel.contains('\0') {
        return Err(invalid("contains NUL"));
    }
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(invalid("has an empty, `.` or `..` component"));
    }
    Ok(rel.to_string())
}

enum TarEntry {
    Dir,
    File { contents: Vec<u8>, mode: u32 },
}

/// Writes `entries` in key order with fixed metadata (mtime 0, uid/gid 0, no user names).
fn write_tar(entries: &BTreeMap<String, TarEntry>) -> Result<Vec<u8>, ImageError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, entry) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            TarEntry::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), io::empty())
                    .map_err(ImageError::Tar)?;
            }
            TarEntry::File { contents, mode } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(contents.len() as u64);
                builder
                    .append_data(&mut header, path, contents.as_slice())
                    .map_err(ImageError::Tar)?;
            }
        }
    }
    builder.into_inner().map_err(ImageError::Tar)
}

#[cfg(test)]
mod tests;
