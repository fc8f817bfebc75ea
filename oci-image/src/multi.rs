//! Multi-platform images of plain root filesystems, such as the node installer's (static
//! binaries for linux/amd64 and linux/arm64).
//!
//! The layout's `index.json` names one nested image index, which carries the image's name
//! (as containerd's importer reads it) and lists one manifest per platform, each over one tar
//! layer. `ctr images import --all-platforms` keeps every platform; a pull or a plain import
//! keeps the node's. The same input always gives the same digests.

use std::collections::BTreeSet;
use std::path::Path;

use crate::{
    layout_archive, manifest_for, name_annotations, rootfs_layer, to_json, Descriptor, ExtraFile,
    ImageError, ImageRef, Index, Platform, INDEX_MEDIA_TYPE, TAR_LAYER_MEDIA_TYPE,
};

/// One platform's root filesystem.
#[derive(Debug, Clone)]
pub struct PlatformRootfs {
    pub platform: Platform,
    pub files: Vec<ExtraFile>,
}

/// The input of a multi-platform build: the same entrypoint and environment on every platform.
#[derive(Debug, Clone)]
pub struct MultiPlatformSpec {
    pub reference: ImageRef,
    pub platforms: Vec<PlatformRootfs>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
}

/// A built multi-platform image.
#[derive(Debug, Clone)]
pub struct MultiPlatformImage {
    pub reference: ImageRef,
    /// The nested index's descriptor as `index.json` names it.
    pub index: Descriptor,
    /// Each platform's manifest descriptor, with its platform, in the order given.
    pub manifests: Vec<Descriptor>,
    /// The OCI image layout as an uncompressed tar archive.
    pub archive: Vec<u8>,
}

impl MultiPlatformSpec {
    pub fn build(&self) -> Result<MultiPlatformImage, ImageError> {
        if self.platforms.is_empty() {
            return Err(ImageError::NoPlatform);
        }
        let mut seen = BTreeSet::new();
        let mut manifests = Vec::new();
        let mut blobs = Vec::new();
        for rootfs in &self.platforms {
            if !seen.insert(rootfs.platform.to_string()) {
                return Err(ImageError::DuplicatePlatform(rootfs.platform.to_string()));
            }
            let layer_bytes = rootfs_layer(&rootfs.files)?;
            let layer = Descriptor::of(TAR_LAYER_MEDIA_TYPE, &layer_bytes);
            // An uncompressed tar layer's diff id is its digest.
            let diff_ids = vec![layer.digest.clone()];
            let built = manifest_for(
                &rootfs.platform,
                self.entrypoint.clone(),
                self.env.clone(),
                (layer, layer_bytes),
                diff_ids,
            )?;
            manifests.push(built.manifest);
            blobs.extend(built.blobs);
        }
        let index_bytes = to_json(
            "image index",
            &Index {
                schema_version: 2,
                media_type: INDEX_MEDIA_TYPE,
                manifests: &manifests,
            },
        )?;
        let mut index = Descriptor::of(INDEX_MEDIA_TYPE, &index_bytes);
        index.annotations = name_annotations(&self.reference);
        let mut stored = index.clone();
        stored.annotations.clear();
        blobs.push((stored, index_bytes));
        let archive = layout_archive(&index, &blobs)?;
        Ok(MultiPlatformImage {
            reference: self.reference.clone(),
            index,
            manifests,
            archive,
        })
    }
}

impl MultiPlatformImage {
    /// `sha256:…` of the nested index: the image's digest in containerd and in a registry.
    pub fn digest(&self) -> &str {
        &self.index.digest
    }

    /// Writes the archive to `path` (through a temporary file renamed into place).
    pub fn write_to(&self, path: &Path) -> Result<(), ImageError> {
        crate::write_atomically(path, &self.archive)
    }
}
