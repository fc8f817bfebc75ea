//! Reading image documents back: choosing the manifest of an index and the wasm layer of a
//! manifest, as a runtime does when it runs an artifact-layout image.
//!
//! The documents come from a content store, so they are untrusted input: these functions take
//! parsed JSON ([`serde_json::Value`], so that unknown fields and other tools' extensions do
//! not stop a read) and never assume a field is present or has the expected type.
//!
//! This is the same selection the containerd shim makes (`containerd-shim/src/content.rs`), in
//! a library crate so that it can be fuzzed and shared.

use serde_json::Value;
use thiserror::Error;

use crate::{ANNOTATION_TITLE, INDEX_MEDIA_TYPE};

/// Layer media types that hold a wasm module or component: the one wasmbay writes and runwasi
/// reads, the CNCF Wasm OCI artifact's `application/wasm`, and the older variants other tools
/// still write.
pub const WASM_LAYER_MEDIA_TYPES: [&str; 4] = [
    crate::WASM_LAYER_MEDIA_TYPE,
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// Media types of documents that list manifests (OCI index, Docker manifest list).
pub const INDEX_MEDIA_TYPES: [&str; 2] = [
    INDEX_MEDIA_TYPE,
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Why a manifest names no layer to run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReadError {
    #[error(
        "manifest `layers`: {count} wasm layers and none titled `{wanted}` (the entrypoint); \
         set {ANNOTATION_TITLE} on the one to run"
    )]
    AmbiguousLayer { count: usize, wanted: String },
    #[error("manifest `layers[{index}].digest`: `{digest}` is not a sha256 digest")]
    NotSha256 { index: usize, digest: String },
}

/// The wasm layer of a manifest chosen to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// Position in the manifest's `layers`.
    pub index: usize,
    /// `sha256:<64 hex digits>`.
    pub digest: String,
    pub media_type: String,
}

impl LayerRef {
    /// The hex part of the digest.
    pub fn sha256_hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

/// Whether `media_type` is one of the index types.
pub fn is_index_media_type(media_type: &str) -> bool {
    INDEX_MEDIA_TYPES.contains(&media_type)
}

/// The digest of the manifest of `index` to use: one for wasm (`wasip1`/`wasip2`/`wasi` on
/// `wasm`) first, else one for `linux` on `host_architecture` (an OCI name: `amd64`, `arm64`),
/// else the only one. `None` when none fits or the chosen entry has no string digest.
pub fn pick_manifest(index: &Value, host_architecture: &str) -> Option<String> {
    let manifests = index.get("manifests")?.as_array()?;
    fn platform_of(m: &Value) -> (&str, &str) {
        let p = m.get("platform");
        let field = |k: &str| {
            p.and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        (field("os"), field("architecture"))
    }
    let digest = |m: &Value| m.get("digest").and_then(Value::as_str).map(str::to_string);
    let wasm = manifests.iter().find(|m| {
        let (os, arch) = platform_of(m);
        arch == "wasm" && matches!(os, "wasip1" | "wasip2" | "wasi")
    });
    let host = || {
        manifests.iter().find(|m| {
            let (os, arch) = platform_of(m);
            os == "linux" && arch == host_architecture
        })
    };
    let only = || match manifests.as_slice() {
        [only] => Some(only),
        _ => None,
    };
    wasm.or_else(host).or_else(only).and_then(digest)
}

/// The wasm layer of `manifest` to run for the entrypoint `argv0`. With several, the one whose
/// title annotation is the entrypoint's file name. `Ok(None)` when the manifest has no wasm
/// layer (it is then an ordinary image whose rootfs holds the program).
pub fn select_wasm_layer(manifest: &Value, argv0: &str) -> Result<Option<LayerRef>, ReadError> {
    let layers: Vec<(usize, &Value)> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .map(|layers| {
            layers
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    l.get("mediaType")
                        .and_then(Value::as_str)
                        .is_some_and(|t| WASM_LAYER_MEDIA_TYPES.contains(&t))
                })
                .collect()
        })
        .unwrap_or_default();
    let wanted = argv0.rsplit('/').next().unwrap_or(argv0);
    let title = |l: &Value| {
        l.get("annotations")
            .and_then(|a| a.get(ANNOTATION_TITLE))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (index, chosen) = match layers.as_slice() {
        [] => return Ok(None),
        [only] => *only,
        several => several
            .iter()
            .find(|(_, l)| title(l).as_deref() == Some(wanted))
            .copied()
            .ok_or_else(|| ReadError::AmbiguousLayer {
                count: several.len(),
                wanted: wanted.to_string(),
            })?,
    };
    let field = |k: &str| chosen.get(k).and_then(Value::as_str).unwrap_or_default();
    let digest = field("digest");
    // The digest names a blob in the content store and is the cache key of the compiled
    // module, so it must be exactly `sha256:` and 64 lowercase hex digits: anything else
    // (another algorithm, `sha256:../x`) must not reach a path or a cache lookup.
    if !is_sha256_digest(digest) {
        return Err(ReadError::NotSha256 {
            index,
            digest: digest.to_string(),
        });
    }
    Ok(Some(LayerRef {
        index,
        digest: digest.to_string(),
        media_type: field("mediaType").to_string(),
    }))
}

/// `sha256:` followed by exactly 64 lowercase hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WASM: &str = crate::WASM_LAYER_MEDIA_TYPE;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn the_only_wasm_layer_is_chosen_whatever_the_entrypoint() {
        let manifest = json!({"layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest('a')},
            {"mediaType": WASM, "digest": digest('b')},
        ]});
        let layer = select_wasm_layer(&manifest, "/x.wasm").unwrap().unwrap();
        assert_eq!(layer.index, 1);
        assert_eq!(layer.sha256_hex(), "b".repeat(64));
    }

    #[test]
    fn several_wasm_layers_are_told_apart_by_title() {
        let layer = |d: String, t: &str| {
            json!({"mediaType": "application/wasm", "digest": d,
                   "annotations": {ANNOTATION_TITLE: t}})
        };
        let manifest =
            json!({"layers": [layer(digest('1'), "a.wasm"), layer(digest('2'), "b.wasm")]});
        let chosen = select_wasm_layer(&manifest, "/app/b.wasm")
            .unwrap()
            .unwrap();
        assert_eq!(chosen.digest, digest('2'));
        let err = select_wasm_layer(&manifest, "c.wasm").unwrap_err();
        assert!(err.to_string().contains("c.wasm"), "{err}");
    }

    #[test]
    fn digests_must_be_sha256_with_64_hex_digits() {
        for bad in ["sha512:aa", "sha256:aa", "sha256:../../etc/shadow", ""] {
            let manifest = json!({"layers": [{"mediaType": WASM, "digest": bad}]});
            let err = select_wasm_layer(&manifest, "/x").unwrap_err();
            assert_eq!(
                err,
                ReadError::NotSha256 {
                    index: 0,
                    digest: bad.to_string()
                }
            );
            assert!(err.to_string().contains("layers[0].digest"), "{err}");
        }
        let no_wasm = json!({"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar"}]});
        assert_eq!(select_wasm_layer(&no_wasm, "/x"), Ok(None));
        assert_eq!(select_wasm_layer(&json!([1, 2]), "/x"), Ok(None));
    }

    #[test]
    fn index_prefers_wasm_then_host_platform_then_the_only_one() {
        let m = |d: &str, os: &str, arch: &str| json!({"digest": d, "platform": {"os": os, "architecture": arch}});
        let index = json!({"manifests": [m("sha256:l", "linux", "amd64"), m("sha256:w", "wasip1", "wasm")]});
        assert_eq!(pick_manifest(&index, "amd64").as_deref(), Some("sha256:w"));
        let index = json!({"manifests": [m("sha256:o", "linux", "s390x"), m("sha256:l", "linux", "amd64")]});
        assert_eq!(pick_manifest(&index, "amd64").as_deref(), Some("sha256:l"));
        assert_eq!(pick_manifest(&index, "arm64"), None);
        let index = json!({"manifests": [{"digest": "sha256:x"}]});
        assert_eq!(pick_manifest(&index, "amd64").as_deref(), Some("sha256:x"));
        assert_eq!(pick_manifest(&json!({"manifests": 3}), "amd64"), None);
    }
}
