//! (e) Image build inputs: reference, platform, layout, module name, entrypoint, env and
//! extra files. A build that succeeds must give a well-formed OCI layout whose documents
//! agree with each other and with the input, and only paths inside the image.
#![no_main]

use std::collections::BTreeMap;
use std::io::Read;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wasmbay_oci_image::{sha256_digest, ExtraFile, ImageRef, ImageSpec, Layout, Platform};

#[derive(Arbitrary, Debug)]
struct Input {
    reference: String,
    platform: String,
    artifact: bool,
    module_name: String,
    module: Vec<u8>,
    entrypoint: Option<Vec<String>>,
    env: Vec<String>,
    extra: Vec<(String, Vec<u8>, bool)>,
}

/// Every regular file of a tar archive, refusing names that climb or are absolute.
fn read_tar(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        assert!(!path.starts_with('/'), "absolute tar entry {path:?}");
        assert!(
            !path.split('/').any(|c| c == ".."),
            "tar entry {path:?} climbs"
        );
        if entry.header().entry_type() == tar::EntryType::Regular {
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).expect("read entry");
            assert!(
                files.insert(path.clone(), contents).is_none(),
                "{path} twice"
            );
        }
    }
    files
}

fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, desc: &Value) -> &'a [u8] {
    let digest = desc["digest"].as_str().expect("digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = files
        .get(&format!("blobs/sha256/{hex}"))
        .expect("the blob a descriptor names is in the layout");
    assert_eq!(sha256_digest(bytes), digest);
    assert_eq!(desc["size"].as_u64(), Some(bytes.len() as u64));
    bytes
}

fuzz_target!(|input: Input| {
    // Parsing normalises; printing and parsing again must change nothing.
    if let Ok(reference) = ImageRef::parse(&input.reference) {
        let again = ImageRef::parse(&reference.to_string()).expect("a normalised ref parses");
        assert_eq!(again, reference);
    }
    if let Ok(platform) = Platform::parse(&input.platform) {
        assert_eq!(Platform::parse(&platform.to_string()).ok(), Some(platform));
    }
    let reference = ImageRef::parse(&input.reference)
        .unwrap_or_else(|_| ImageRef::parse("fuzz:latest").expect("fixed reference"));
    let mut spec = ImageSpec::new(reference, input.module_name.clone(), input.module.clone());
    spec.layout = if input.artifact {
        Layout::Artifact
    } else {
        Layout::App
    };
    spec.platform = Platform::parse(&input.platform).unwrap_or_default();
    spec.entrypoint = input.entrypoint.clone();
    spec.env = input.env.clone();
    spec.extra_files = input
        .extra
        .iter()
        .take(16)
        .map(|(path, contents, executable)| ExtraFile {
            image_path: path.clone(),
            contents: contents.clone(),
            executable: *executable,
        })
        .collect();

    let Ok(image) = spec.build() else {
        return;
    };
    // Deterministic: the same input gives the same bytes (and so the same digests).
    assert_eq!(spec.build().expect("builds again").archive, image.archive);

    let files = read_tar(&image.archive);
    let index: Value = serde_json::from_slice(&files["index.json"]).expect("index.json");
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["digest"].as_str(),
        Some(image.manifest_digest())
    );
    let manifest: Value = serde_json::from_slice(blob(&files, &manifests[0])).expect("manifest");
    let config: Value = serde_json::from_slice(blob(&files, &manifest["config"])).expect("config");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(spec.effective_entrypoint())
    );
    assert_eq!(config["os"].as_str(), Some(spec.platform.os.as_str()));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    let layer = blob(&files, &layers[0]);
    match spec.layout {
        Layout::Artifact => assert_eq!(layer, &input.module[..]),
        Layout::App => {
            let rootfs = read_tar(layer);
            assert_eq!(rootfs.get(&spec.module_name), Some(&input.module));
            for extra in &spec.extra_files {
                let rel = extra.image_path.trim_start_matches('/');
                assert_eq!(rootfs.get(rel), Some(&extra.contents), "{rel}");
            }
            assert_eq!(rootfs.len(), 1 + spec.extra_files.len());
        }
    }
});
