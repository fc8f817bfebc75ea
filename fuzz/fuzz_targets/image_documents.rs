//! (c) Reading image documents back: the manifest an index names and the wasm layer of a
//! manifest (the selection the containerd shim makes for artifact-layout images).
//!
//! Input: the first line is the entrypoint (`argv0`), the rest one JSON document, read both
//! as an index and as a manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wasmbay_oci_image::read::{
    is_sha256_digest, pick_manifest, select_wasm_layer, ReadError, WASM_LAYER_MEDIA_TYPES,
};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(argv0) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let Ok(doc) = serde_json::from_slice::<Value>(data.get(split + 1..).unwrap_or_default()) else {
        return;
    };

    for arch in ["amd64", "arm64"] {
        if let Some(digest) = pick_manifest(&doc, arch) {
            // The answer is the digest of one of the listed manifests, never made up.
            let listed = doc["manifests"]
                .as_array()
                .expect("a picked manifest comes from `manifests`")
                .iter()
                .any(|m| m["digest"].as_str() == Some(digest.as_str()));
            assert!(listed, "{digest} is not listed");
        }
    }

    let layers = doc.get("layers").and_then(Value::as_array);
    let wasm_layers: Vec<&Value> = layers
        .map(|l| {
            l.iter()
                .filter(|l| {
                    l["mediaType"]
                        .as_str()
                        .is_some_and(|t| WASM_LAYER_MEDIA_TYPES.contains(&t))
                })
                .collect()
        })
        .unwrap_or_default();
    match select_wasm_layer(&doc, argv0) {
        Ok(None) => assert!(wasm_layers.is_empty()),
        Ok(Some(layer)) => {
            // A chosen layer is a wasm layer of this manifest with a well-formed digest: the
            // hex part is used as a cache file name, so it must be plain hex.
            let listed = &layers.expect("a chosen layer is listed")[layer.index];
            assert_eq!(listed["digest"].as_str(), Some(layer.digest.as_str()));
            assert!(WASM_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()));
            assert!(is_sha256_digest(&layer.digest), "{layer:?}");
            assert_eq!(layer.sha256_hex().len(), 64);
            assert!(layer.sha256_hex().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        Err(ReadError::AmbiguousLayer { count, .. }) => {
            assert!(count >= 2 && count == wasm_layers.len());
        }
        Err(ReadError::NotSha256 { index, digest }) => {
            assert!(!is_sha256_digest(&digest));
            assert!(index < layers.map_or(0, Vec::len));
        }
    }
});
