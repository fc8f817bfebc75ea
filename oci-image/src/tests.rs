//! Builds images, reads the archives back with an independent tar reader and checks every
//! digest, size and media type.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use super::*;

const CORE: &[u8] = b"\0asm\x01\0\0\0";
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
const WAT: &[u8] = b"(module (func (export \"_start\")))\n";

struct Entry {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    mtime: u64,
    uid: u64,
    contents: Vec<u8>,
}

fn read_tar(bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let header = entry.header().clone();
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).expect("read entry");
        out.push(Entry {
            path,
            kind: header.entry_type(),
            mode: header.mode().expect("mode"),
            mtime: header.mtime().expect("mtime"),
            uid: header.uid().expect("uid"),
            contents,
        });
    }
    out
}

fn files(entries: &[Entry]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .filter(|e| e.kind == tar::EntryType::Regular)
        .map(|e| (e.path.clone(), e.contents.clone()))
        .collect()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid json")
}

/// Returns the blob a descriptor names after checking its digest and size.
fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, desc: &Value) -> &'a [u8] {
    let digest = desc["digest"].as_str().expect("digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = files
        .get(&format!("blobs/sha256/{hex}"))
        .unwrap_or_else(|| panic!("blob {digest} missing"));
    assert_eq!(sha256_digest(bytes), digest, "digest of blob");
    assert_eq!(
        desc["size"].as_u64(),
        Some(bytes.len() as u64),
        "size of {digest}"
    );
    bytes
}

fn spec(reference: &str, name: &str, module: &[u8]) -> ImageSpec {
    ImageSpec::new(
        ImageRef::parse(reference).expect("valid reference"),
        name,
        module.to_vec(),
    )
}

fn check_sorted_and_fixed(entries: &[Entry]) {
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "entries sorted");
    for e in entries {
        assert_eq!(e.mtime, 0, "{} mtime", e.path);
        assert_eq!(e.uid, 0, "{} uid", e.path);
    }
}

#[test]
fn app_layout_round_trips() {
    let mut s = spec("hello:v1", "hello.wasm", CORE);
    s.env = vec!["A=1".to_string()];
    s.extra_files.push(ExtraFile {
        image_path: "/etc/motd".to_string(),
        contents: b"hi\n".to_vec(),
        executable: false,
    });
    let image = s.build().expect("build");
    let outer = read_tar(&image.archive);
    check_sorted_and_fixed(&outer);
    let files = files(&outer);

    assert_eq!(
        json(&files["oci-layout"]),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = json(&files["index.json"]);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], INDEX_MEDIA_TYPE);
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    let mdesc = &manifests[0];
    assert_eq!(mdesc["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(
        mdesc["annotations"][ANNOTATION_CONTAINERD_NAME],
        "docker.io/library/hello:v1"
    );
    assert_eq!(mdesc["annotations"][ANNOTATION_REF_NAME], "v1");
    assert_eq!(mdesc["platform"]["os"], "wasip1");
    assert_eq!(mdesc["platform"]["architecture"], "wasm");
    assert_eq!(mdesc["digest"], image.manifest_digest());

    let manifest = json(blob(&files, mdesc));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    let config = json(blob(&files, &manifest["config"]));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], TAR_LAYER_MEDIA_TYPE);
    let layer = blob(&files, &layers[0]);

    assert_eq!(config["os"], "wasip1");
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/hello.wasm"])
    );
    assert_eq!(config["config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([sha256_digest(layer)])
    );

    let inner = read_tar(layer);
    check_sorted_and_fixed(&inner);
    let summary: Vec<(String, u32)> = inner.iter().map(|e| (e.path.clone(), e.mode)).collect();
    assert_eq!(
        summary,
        vec![
            ("etc/".to_string(), 0o755),
            ("etc/motd".to_string(), 0o644),
            ("hello.wasm".to_string(), 0o755),
        ]
    );
    let inner_files = self::files(&inner);
    assert_eq!(inner_files["hello.wasm"], CORE);
    assert_eq!(inner_files["etc/motd"], b"hi\n");

    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.layers[0].digest, sha256_digest(layer));
    assert_eq!(manifest["config"]["digest"], image.config.digest);
}

#[test]
fn artifact_layout_is_the_module_itself() {
    for (module, name) in [(CORE, "m.wasm"), (COMPONENT, "c.wasm"), (WAT, "t.wat")] {
        let mut s = spec("ghcr.io/org/app:2", name, module);
        s.layout = Layout::Artifact;
        let image = s.build().expect("build");
        let files = files(&read_tar(&image.archive));
        let index = json(&files["index.json"]);
        let mdesc = &index["manifests"][0];
        assert_eq!(
            mdesc["annotations"][ANNOTATION_CONTAINERD_NAME],
            "ghcr.io/org/app:2"
        );
        assert_eq!(mdesc["annotations"][ANNOTATION_REF_NAME], "2");
        let manifest = json(blob(&files, mdesc));
        let layers = manifest["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        assert_eq!(layers[0]["annotations"][ANNOTATION_TITLE], name);
        assert_eq!(blob(&files, &layers[0]), module, "bytes kept as given");
        let config = json(blob(&files, &manifest["config"]));
        assert_eq!(
            config["rootfs"]["diff_ids"],
            serde_json::json!([]),
            "a wasm layer is no filesystem"
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!([format!("/{name}")])
        );
    }
}

#[test]
fn platform_and_entrypoint_are_honoured() {
    let mut s = spec("busybox-test:1", "busybox", b"ELF");
    s.platform = Platform::parse("linux/arm64/v8").expect("platform");
    s.entrypoint = Some(vec!["/busybox".to_string(), "echo".to_string()]);
    let image = s.build().expect("build");
    let files = files(&read_tar(&image.archive));
    let index = json(&files["index.json"]);
    let mdesc = &index["manifests"][0];
    assert_eq!(
        mdesc["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );
    let manifest = json(blob(&files, mdesc));
    let config = json(blob(&files, &manifest["config"]));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/busybox", "echo"])
    );
    assert!(config["config"].get("Env").is_none());
}

#[test]
fn same_input_same_bytes() {
    let build = |env: &str| {
        let mut s = spec("docker.io/library/hello-wasm:latest", "hello.wasm", WAT);
        s.env = vec![env.to_string()];
        s.extra_files.push(ExtraFile {
            image_path: "/bin/tool".to_string(),
            contents: vec![7; 5000],
            executable: true,
        });
        s.build().expect("build")
    };
    let a = build("X=1");
    let b = build("X=1");
    assert_eq!(a.archive, b.archive);
    assert_eq!(a.manifest_digest(), b.manifest_digest());
    let c = build("X=2");
    assert_ne!(a.manifest_digest(), c.manifest_digest());
    // The layer does not hold the env: only config and manifest change.
    assert_eq!(a.layers, c.layers);
}

#[test]
fn extra_files_order_does_not_matter() {
    let f = |p: &str| ExtraFile {
        image_path: p.to_string(),
        contents: p.as_bytes().to_vec(),
        executable: false,
    };
    let mut a = spec("x", "m.wasm", CORE);
    a.extra_files = vec![f("/b/x"), f("/a/y"), f("/a/b/c")];
    let mut b = a.clone();
    b.extra_files.reverse();
    assert_eq!(
        a.build().expect("a").manifest_digest(),
        b.build().expect("b").manifest_digest()
    );
}

#[test]
fn bad_inputs_are_refused() {
    let mut s = spec("x", "m.wasm", CORE);
    s.extra_files.push(ExtraFile {
        image_path: "/m.wasm".to_string(),
        contents: vec![],
        executable: false,
    });
    assert!(matches!(s.build(), Err(ImageError::DuplicatePath(_))));

    let mut s = spec("x", "m.wasm", CORE);
    s.extra_files.push(ExtraFile {
        image_path: "/m.wasm/inner".to_string(),
        contents: vec![],
        executable: false,
    });
    assert!(matches!(s.build(), Err(ImageError::DuplicatePath(_))));

    for bad in ["relative", "/", "/a/../b", "/a//b"] {
        let mut s = spec("x", "m.wasm", CORE);
        s.extra_files.push(ExtraFile {
            image_path: bad.to_string(),
            contents: vec![],
            executable: false,
        });
        assert!(
            matches!(s.build(), Err(ImageError::InvalidImagePath { .. })),
            "{bad:?} accepted"
        );
    }

    let mut s = spec("x", "m.wasm", CORE);
    s.layout = Layout::Artifact;
    s.extra_files.push(ExtraFile {
        image_path: "/etc/x".to_string(),
        contents: vec![],
        executable: false,
    });
    assert!(matches!(
        s.build(),
        Err(ImageError::ExtraFilesInArtifact(_))
    ));

    assert!(matches!(
        spec("x", "a/b.wasm", CORE).build(),
        Err(ImageError::InvalidModuleName(_))
    ));
    assert!(matches!(
        "oci".parse::<Layout>(),
        Err(ImageError::InvalidLayout(_))
    ));
}

#[test]
fn module_kinds() {
    assert_eq!(ModuleKind::detect(CORE), ModuleKind::CoreModule);
    assert_eq!(ModuleKind::detect(COMPONENT), ModuleKind::Component);
    assert_eq!(ModuleKind::detect(WAT), ModuleKind::Text);
    assert_eq!(ModuleKind::detect(b""), ModuleKind::Text);
}

#[test]
fn files_from_disk() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let module = dir.path().join("app.wat");
    std::fs::write(&module, WAT).expect("write module");
    let tool = dir.path().join("tool");
    std::fs::write(&tool, b"#!/bin/sh\n").expect("write tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o700)).expect("chmod");

    let mut s = ImageSpec::from_module_file(&module, "app:1").expect("spec");
    assert_eq!(s.module_name, "app.wat");
    assert_eq!(s.module, WAT);
    s.extra_files
        .push(ExtraFile::from_host(&tool, "/usr/bin/tool").expect("extra"));
    assert!(s.extra_files[0].executable);
    let image = s.build().expect("build");
    let out = dir.path().join("app.tar");
    image.write_to(&out).expect("write");
    assert_eq!(std::fs::read(&out).expect("read back"), image.archive);

    let missing = dir.path().join("missing.wasm");
    match ImageSpec::from_module_file(&missing, "app:1") {
        Err(ImageError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other:?}"),
    }
}

fn rootfs(platform: &str, files: &[(&str, &[u8])]) -> PlatformRootfs {
    PlatformRootfs {
        platform: Platform::parse(platform).unwrap(),
        files: files
            .iter()
            .map(|(path, contents)| ExtraFile {
                image_path: path.to_string(),
                contents: contents.to_vec(),
                executable: true,
            })
            .collect(),
    }
}

fn installer_spec() -> MultiPlatformSpec {
    MultiPlatformSpec {
        reference: ImageRef::parse("localhost:5000/wasmbay/node-installer:0.1.0").unwrap(),
        platforms: vec![
            rootfs(
                "linux/amd64",
                &[
                    ("/usr/local/bin/wasmbay", b"x86 cli"),
                    ("/usr/local/bin/shim", b"x86 shim"),
                ],
            ),
            rootfs(
                "linux/arm64",
                &[
                    ("/usr/local/bin/wasmbay", b"arm cli"),
                    ("/usr/local/bin/shim", b"arm shim"),
                ],
            ),
        ],
        entrypoint: vec!["/usr/local/bin/wasmbay".into()],
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
    }
}

#[test]
fn a_multi_platform_image_is_an_index_of_one_manifest_per_platform() {
    let image = installer_spec().build().unwrap();
    let entries = read_tar(&image.archive);
    check_sorted_and_fixed(&entries);
    let files = files(&entries);
    let top = json(&files["index.json"]);
    assert_eq!(top["manifests"].as_array().unwrap().len(), 1);
    let nested_desc = &top["manifests"][0];
    assert_eq!(nested_desc["mediaType"], INDEX_MEDIA_TYPE);
    assert_eq!(nested_desc["digest"], image.digest());
    assert_eq!(
        nested_desc["annotations"][ANNOTATION_CONTAINERD_NAME],
        "localhost:5000/wasmbay/node-installer:0.1.0"
    );
    assert_eq!(nested_desc["annotations"][ANNOTATION_REF_NAME], "0.1.0");
    let nested = json(blob(&files, nested_desc));
    assert_eq!(nested["mediaType"], INDEX_MEDIA_TYPE);
    let manifests = nested["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    for (desc, (arch, cli)) in manifests
        .iter()
        .zip([("amd64", &b"x86 cli"[..]), ("arm64", &b"arm cli"[..])])
    {
        assert_eq!(desc["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(desc["platform"]["os"], "linux");
        assert_eq!(desc["platform"]["architecture"], arch);
        let manifest = json(blob(&files, desc));
        let config = json(blob(&files, &manifest["config"]));
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/wasmbay");
        let layer_desc = &manifest["layers"][0];
        assert_eq!(layer_desc["mediaType"], TAR_LAYER_MEDIA_TYPE);
        assert_eq!(config["rootfs"]["diff_ids"][0], layer_desc["digest"]);
        let layer = read_tar(blob(&files, layer_desc));
        let layer_files = self::files(&layer);
        assert_eq!(layer_files["usr/local/bin/wasmbay"], cli);
        let cli_entry = layer
            .iter()
            .find(|e| e.path == "usr/local/bin/wasmbay")
            .unwrap();
        assert_eq!(cli_entry.mode, 0o755);
        assert!(layer
            .iter()
            .any(|e| e.path == "usr/local/bin/" && e.kind.is_dir()));
    }
    assert_eq!(image.manifests.len(), 2);
    // The same input, the same bytes.
    assert_eq!(installer_spec().build().unwrap().archive, image.archive);
}

#[test]
fn a_multi_platform_image_refuses_no_or_twice_the_same_platform() {
    let mut spec = installer_spec();
    spec.platforms.clear();
    assert!(matches!(spec.build(), Err(ImageError::NoPlatform)));
    let mut spec = installer_spec();
    spec.platforms[1].platform = Platform::parse("linux/amd64").unwrap();
    let err = spec.build().unwrap_err();
    assert!(
        matches!(err, ImageError::DuplicatePlatform(ref p) if p == "linux/amd64"),
        "{err}"
    );
    let mut spec = installer_spec();
    spec.platforms[0].files[0].image_path = "relative".into();
    assert!(matches!(
        spec.build(),
        Err(ImageError::InvalidImagePath { .. })
    ));
}

#[test]
fn an_archive_reads_back_with_children_before_parents() {
    use crate::archive::LayoutArchive;
    let multi = installer_spec().build().unwrap();
    let layout = LayoutArchive::read(&multi.archive).unwrap();
    let image = layout
        .image(Some("localhost:5000/wasmbay/node-installer:0.1.0"), None)
        .unwrap();
    let blobs = layout.blobs_under(image).unwrap();
    // Two platforms of layer, config and manifest, then the index.
    assert_eq!(blobs.len(), 7);
    let last = blobs.last().unwrap();
    assert_eq!(last.digest, multi.digest());
    assert!(last.is_manifest);
    for (at, blob) in blobs.iter().enumerate() {
        if blob.is_manifest && blob.media_type == MANIFEST_MEDIA_TYPE {
            let manifest = json(&blob.bytes);
            for child in
                std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap())
            {
                let position = blobs
                    .iter()
                    .position(|b| b.digest == child["digest"])
                    .unwrap();
                assert!(
                    position < at,
                    "{} comes after its manifest",
                    child["digest"]
                );
            }
        }
    }
    let single = spec("hello:v1", "hello.wasm", CORE).build().unwrap();
    let layout = LayoutArchive::read(&single.archive).unwrap();
    // The only image is taken whatever the name asked.
    let blobs = layout
        .blobs_under(layout.image(None, Some("other")).unwrap())
        .unwrap();
    assert_eq!(blobs.len(), 3);
    assert_eq!(blobs[2].digest, single.manifest_digest());
}

#[test]
fn an_archive_with_a_corrupt_or_missing_blob_is_refused() {
    use crate::archive::{ArchiveError, LayoutArchive};
    let image = spec("hello:v1", "hello.wasm", CORE).build().unwrap();
    let layer_hex = image.layers[0]
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    let rewrite = |change: &dyn Fn(&str, &mut Vec<u8>) -> bool| {
        let mut out = tar::Builder::new(Vec::new());
        for entry in read_tar(&image.archive) {
            let mut contents = entry.contents.clone();
            if !change(&entry.path, &mut contents) {
                continue;
            }
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(entry.kind);
            header.set_mode(entry.mode);
            header.set_size(contents.len() as u64);
            out.append_data(&mut header, &entry.path, contents.as_slice())
                .unwrap();
        }
        out.into_inner().unwrap()
    };
    let corrupt = rewrite(&|path, contents| {
        if path.ends_with(&layer_hex) {
            contents.push(0);
        }
        true
    });
    let layout = LayoutArchive::read(&corrupt).unwrap();
    let err = layout.blobs_under(&layout.images[0]).unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    let missing = rewrite(&|path, _| !path.ends_with(&layer_hex));
    let layout = LayoutArchive::read(&missing).unwrap();
    let err = layout.blobs_under(&layout.images[0]).unwrap_err();
    assert!(matches!(err, ArchiveError::MissingBlob { .. }), "{err}");
    let no_index = rewrite(&|path, _| path != "index.json");
    assert!(matches!(
        LayoutArchive::read(&no_index),
        Err(ArchiveError::NoIndex)
    ));
    assert!(LayoutArchive::read(b"not a tar at all, just some bytes").is_err());
}
