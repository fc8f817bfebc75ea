//! An OCI image layout archive read back, as a push to a registry needs it: the images
//! `index.json` names, and every blob under them in an order a registry accepts (each blob
//! before the manifest that names it, each manifest before the index that lists it).
//!
//! The archive is input (it may come from any tool), so every blob's digest and size are
//! checked against its descriptor and nothing is assumed of a document's fields.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;
use thiserror::Error;

use crate::read::{is_sha256_digest, INDEX_MEDIA_TYPES};
use crate::{sha256_digest, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("not a tar archive: {0}")]
    Tar(#[source] std::io::Error),
    #[error("no index.json: not an OCI image layout")]
    NoIndex,
    #[error("{what}: not JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("index.json names no image")]
    NoImage,
    #[error("{what}: `{field}` is missing or not what OCI allows")]
    Field { what: String, field: &'static str },
    #[error("blob {digest} (named by {by}) is not in the archive")]
    MissingBlob { digest: String, by: String },
    #[error("blob {digest}: its content has digest {actual} or size {size}, not what {by} says")]
    Corrupt {
        digest: String,
        actual: String,
        size: u64,
        by: String,
    },
    #[error("{0}: documents nest deeper than 8 levels")]
    TooDeep(String),
}

/// A blob to push: its digest, media type, and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// A manifest or index (pushed to `/manifests/`), not a layer or config.
    pub is_manifest: bool,
}

/// An OCI image layout read from its archive.
#[derive(Debug, Clone)]
pub struct LayoutArchive {
    /// `index.json`'s `manifests`.
    pub images: Vec<Value>,
    blobs: BTreeMap<String, Vec<u8>>,
}

impl LayoutArchive {
    /// Reads an uncompressed tar of an OCI image layout.
    pub fn read(archive: &[u8]) -> Result<LayoutArchive, ArchiveError> {
        let mut tar = tar::Archive::new(archive);
        let mut index = None;
        let mut blobs = BTreeMap::new();
        for entry in tar.entries().map_err(ArchiveError::Tar)? {
            let mut entry = entry.map_err(ArchiveError::Tar)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(ArchiveError::Tar)?;
            let path = path.to_string_lossy().trim_start_matches("./").to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(ArchiveError::Tar)?;
            if path == "index.json" {
                index = Some(bytes);
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                blobs.insert(format!("sha256:{hex}"), bytes);
            }
        }
        let index = index.ok_or(ArchiveError::NoIndex)?;
        let index: Value = serde_json::from_slice(&index).map_err(|source| ArchiveError::Json {
            what: "index.json".into(),
            source,
        })?;
        let images = index["manifests"]
            .as_array()
            .filter(|m| !m.is_empty())
            .ok_or(ArchiveError::NoImage)?
            .clone();
        Ok(LayoutArchive { images, blobs })
    }

    /// The image `index.json` names as `reference` (by containerd's name annotation, else the
    /// OCI tag annotation), or its only image.
    pub fn image(&self, reference: Option<&str>, tag: Option<&str>) -> Option<&Value> {
        let annotated = |key: &str, want: Option<&str>| {
            let want = want?;
            self.images
                .iter()
                .find(|d| d["annotations"][key].as_str() == Some(want))
        };
        annotated(ANNOTATION_CONTAINERD_NAME, reference)
            .or_else(|| annotated(ANNOTATION_REF_NAME, tag))
            .or_else(|| (self.images.len() == 1).then(|| &self.images[0]))
    }

    /// Every blob under `image` (a descriptor from [`LayoutArchive::images`]), children before
    /// parents, `image`'s own document last; each checked against its descriptor.
    pub fn blobs_under(&self, image: &Value) -> Result<Vec<Blob>, ArchiveError> {
        let mut out = Vec::new();
        self.collect(image, "index.json", 0, &mut out)?;
        Ok(out)
    }

    fn collect(
        &self,
        descriptor: &Value,
        by: &str,
        depth: usize,
        out: &mut Vec<Blob>,
    ) -> Result<(), ArchiveError> {
        let field = |field| ArchiveError::Field {
            what: by.to_string(),
            field,
        };
        let digest = descriptor["digest"]
            .as_str()
            .filter(|d| is_sha256_digest(d))
            .ok_or_else(|| field("digest"))?;
        let media_type = descriptor["mediaType"]
            .as_str()
            .ok_or_else(|| field("mediaType"))?;
        let size = descriptor["size"].as_u64().ok_or_else(|| field("size"))?;
        if out.iter().any(|b| b.digest == digest) {
            return Ok(());
        }
        let bytes = self
            .blobs
            .get(digest)
            .ok_or_else(|| ArchiveError::MissingBlob {
                digest: digest.to_string(),
                by: by.to_string(),
            })?;
        let actual = sha256_digest(bytes);
        if actual != digest || bytes.len() as u64 != size {
            return Err(ArchiveError::Corrupt {
                digest: digest.to_string(),
                actual,
                size: bytes.len() as u64,
                by: by.to_string(),
            });
        }
        let is_index = INDEX_MEDIA_TYPES.contains(&media_type);
        let is_manifest = is_index || media_type.contains("manifest");
        if is_manifest {
            if depth >= 8 {
                return Err(ArchiveError::TooDeep(digest.to_string()));
            }
            let document: Value =
                serde_json::from_slice(bytes).map_err(|source| ArchiveError::Json {
                    what: digest.to_string(),
                    source,
                })?;
            let children: Vec<&Value> = if is_index {
                document["manifests"]
                    .as_array()
                    .ok_or_else(|| field("manifests"))?
                    .iter()
                    .collect()
            } else {
                std::iter::once(&document["config"])
                    .chain(
                        document["layers"]
                            .as_array()
                            .ok_or_else(|| field("layers"))?,
                    )
                    .collect()
            };
            for child in children {
                self.collect(child, digest, depth + 1, out)?;
            }
        }
        out.push(Blob {
            digest: digest.to_string(),
            media_type: media_type.to_string(),
            bytes: bytes.clone(),
            is_manifest,
        });
        Ok(())
    }
}
