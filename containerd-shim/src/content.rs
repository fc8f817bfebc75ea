//! Wasm modules stored as image layers (the artifact layout), read from containerd's content
//! store through its gRPC API.
//!
//! An artifact image has no rootfs layer holding the module: the module *is* a layer, which
//! containerd keeps in its content store and never unpacks. The shim asks containerd for the
//! container's image, walks its manifest to the wasm layer and reads that blob. The layer's
//! descriptor carries its sha256, which is also the cache key of the precompiled module, so a
//! warm start reads only the image's manifest, never the layer.
//!
//! This is consulted only when the rootfs does not hold the entrypoint, so app-layout images,
//! pause containers and sidecars never pay for a gRPC connection.

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetContainerRequest, GetImageRequest, ReadContentRequest};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::Request;
use serde_json::Value;

/// Layer media types that hold a wasm module or component: the one wasmbay writes and runwasi
/// reads, the CNCF Wasm OCI artifact's `application/wasm`, and the older variants other tools
/// still write.
pub const WASM_LAYER_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The blob read limit for manifests and indexes; anything larger is not an image document.
const MAX_DOCUMENT_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("cannot reach containerd at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("cannot start the gRPC client runtime: {0}")]
    Runtime(std::io::Error),
    #[error("container {id}: {message}")]
    Container { id: String, message: String },
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    #[error("image {image}: blob {digest}: {message}")]
    Blob {
        image: String,
        digest: String,
        message: String,
    },
}

/// One wasm layer of a container's image.
#[derive(Debug, Clone)]
pub struct WasmLayer {
    pub image: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub media_type: String,
}

impl WasmLayer {
    /// `image@digest`, naming the layer in messages.
    pub fn name(&self) -> String {
        format!("{}@{}", self.image, self.digest)
    }

    /// The hex part of a sha256 digest; other algorithms are refused when the layer is found.
    pub fn sha256_hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

/// A connection to containerd's containers, images and content services in one namespace.
pub struct ContentStore {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    namespace: String,
}

fn namespaced<T>(message: T, namespace: &str) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = namespace.parse() {
        request.metadata_mut().insert("containerd-namespace", value);
    }
    request
}

impl ContentStore {
    /// Connects to containerd's gRPC socket (`unix://` prefix optional).
    pub fn connect(address: &str, namespace: &str) -> Result<ContentStore, ContentError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ContentError::Runtime)?;
        let socket = address.strip_prefix("unix://").unwrap_or(address);
        let channel = runtime
            .block_on(containerd_client::connect(socket))
            .map_err(|e| ContentError::Connect {
                address: address.to_string(),
                message: e.to_string(),
            })?;
        Ok(ContentStore {
            runtime,
            channel,
            namespace: namespace.to_string(),
        })
    }

    /// The image the container `id` was created from; `None` for containers without one
    /// (e.g. `ctr run --rootfs`).
    fn image_of(&self, id: &str) -> Result<Option<String>, ContentError> {
        let mut client = ContainersClient::new(self.channel.clone());
        let request = namespaced(GetContainerRequest { id: id.to_string() }, &self.namespace);
        let response = self
            .runtime
            .block_on(client.get(request))
            .map_err(|status| ContentError::Container {
                id: id.to_string(),
                message: status.message().to_string(),
            })?;
        Ok(response
            .into_inner()
            .container
            .map(|c| c.image)
            .filter(|image| !image.is_empty()))
    }

    /// Reads the whole blob `digest` (`size` 0) or its first `size` bytes.
    fn read(
        &self,
        image: &str,
        digest: &str,
        limit: Option<usize>,
    ) -> Result<Vec<u8>, ContentError> {
        let blob_err = |message: String| ContentError::Blob {
            image: image.to_string(),
            digest: digest.to_string(),
            message,
        };
        let mut client =
            ContentClient::new(self.channel.clone()).max_decoding_message_size(usize::MAX);
        let request = namespaced(
            ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            },
            &self.namespace,
        );
        self.runtime.block_on(async {
            let mut stream = client
                .read(request)
                .await
                .map_err(|status| blob_err(status.message().to_string()))?
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(chunk) = stream
                .message()
                .await
                .map_err(|status| blob_err(status.message().to_string()))?
            {
                bytes.extend_from_slice(&chunk.data);
                if limit.is_some_and(|limit| bytes.len() > limit) {
                    return Err(blob_err(format!(
                        "larger than {} bytes; not an image document",
                        limit.unwrap_or_default()
                    )));
                }
            }
            Ok(bytes)
        })
    }

    fn document(&self, image: &str, digest: &str) -> Result<Value, ContentError> {
        let bytes = self.read(image, digest, Some(MAX_DOCUMENT_BYTES))?;
        serde_json::from_slice(&bytes).map_err(|e| ContentError::Blob {
            image: image.to_string(),
            digest: digest.to_string(),
            message: format!("not a JSON document: {e}"),
        })
    }

    /// The wasm layer to run for container `id`, whose entrypoint is `argv0`. `None` when the
    /// container has no image or its image has no wasm layer.
    pub fn wasm_layer(&self, id: &str, argv0: &str) -> Result<Option<WasmLayer>, ContentError> {
        let Some(image) = self.image_of(id)? else {
            return Ok(None);
        };
        let image_err = |message: String| ContentError::Image {
            image: image.clone(),
            message,
        };
        let mut client = ImagesClient::new(self.channel.clone());
        let request = namespaced(
            GetImageRequest {
                name: image.clone(),
            },
            &self.namespace,
        );
        let target = self
            .runtime
            .block_on(client.get(request))
            .map_err(|status| image_err(status.message().to_string()))?
            .into_inner()
            .image
            .and_then(|i| i.target)
            .ok_or_else(|| image_err("has no target descriptor".to_string()))?;
        let mut manifest_digest = target.digest.clone();
        if INDEX_MEDIA_TYPES.contains(&target.media_type.as_str()) {
            let index = self.document(&image, &target.digest)?;
            manifest_digest = pick_manifest(&index).ok_or_else(|| {
                image_err("its index has no manifest for wasm or this host".into())
            })?;
        }
        let manifest = self.document(&image, &manifest_digest)?;
        select_layer(&image, &manifest, argv0)
    }

    /// Reads the layer's bytes.
    pub fn read_layer(&self, layer: &WasmLayer) -> Result<Vec<u8>, ContentError> {
        self.read(&layer.image, &layer.digest, None)
    }
}

/// The OCI architecture name of this host.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The manifest of an index to use: one for wasm (`wasip1`/`wasip2`/`wasi` on `wasm`) first,
/// else one for this host, else the only one.
fn pick_manifest(index: &Value) -> Option<String> {
    let manifests = index.get("manifests")?.as_array()?;
    let platform_of = |m: &Value| {
        let p = m.get("platform");
        let field = |k: &str| {
            p.and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        (field("os"), field("architecture"))
    };
    let digest = |m: &Value| m.get("digest").and_then(Value::as_str).map(str::to_string);
    let wasm = manifests.iter().find(|m| {
        let (os, arch) = platform_of(m);
        arch == "wasm" && matches!(os.as_str(), "wasip1" | "wasip2" | "wasi")
    });
    let host = || {
        manifests.iter().find(|m| {
            let (os, arch) = platform_of(m);
            os == "linux" && arch == host_architecture()
        })
    };
    let only = || (manifests.len() == 1).then(|| &manifests[0]);
    wasm.or_else(host).or_else(only).and_then(digest)
}

/// The wasm layer of `manifest` to run. With several, the one whose title annotation is the
/// entrypoint's file name.
fn select_layer(
    image: &str,
    manifest: &Value,
    argv0: &str,
) -> Result<Option<WasmLayer>, ContentError> {
    let layers: Vec<&Value> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .map(|layers| {
            layers
                .iter()
                .filter(|l| {
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
            .and_then(|a| a.get("org.opencontainers.image.title"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let chosen = match layers.as_slice() {
        [] => return Ok(None),
        [only] => *only,
        several => several
            .iter()
            .find(|l| title(l).as_deref() == Some(wanted))
            .copied()
            .ok_or_else(|| ContentError::Image {
                image: image.to_string(),
                message: format!(
                    "{} wasm layers and none titled `{wanted}` (the entrypoint); set \
                     org.opencontainers.image.title on the one to run",
                    several.len()
                ),
            })?,
    };
    let field = |k: &str| chosen.get(k).and_then(Value::as_str).unwrap_or_default();
    let digest = field("digest");
    if !digest.starts_with("sha256:") {
        return Err(ContentError::Image {
            image: image.to_string(),
            message: format!("wasm layer digest `{digest}` is not sha256"),
        });
    }
    Ok(Some(WasmLayer {
        image: image.to_string(),
        digest: digest.to_string(),
        media_type: field("mediaType").to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WASM: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

    #[test]
    fn the_only_wasm_layer_is_chosen_whatever_the_entrypoint() {
        let manifest = json!({"layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:aa"},
            {"mediaType": WASM, "digest": "sha256:bb"},
        ]});
        let layer = select_layer("img", &manifest, "/x.wasm").unwrap().unwrap();
        assert_eq!(layer.digest, "sha256:bb");
        assert_eq!(layer.sha256_hex(), "bb");
        assert_eq!(layer.name(), "img@sha256:bb");
    }

    #[test]
    fn several_wasm_layers_are_told_apart_by_title() {
        let layer = |d: &str, t: &str| {
            json!({"mediaType": "application/wasm", "digest": d,
                   "annotations": {"org.opencontainers.image.title": t}})
        };
        let manifest =
            json!({"layers": [layer("sha256:01", "a.wasm"), layer("sha256:02", "b.wasm")]});
        let chosen = select_layer("img", &manifest, "/app/b.wasm")
            .unwrap()
            .unwrap();
        assert_eq!(chosen.digest, "sha256:02");
        let err = select_layer("img", &manifest, "c.wasm")
            .unwrap_err()
            .to_string();
        assert!(err.contains("img") && err.contains("c.wasm"), "{err}");
    }

    #[test]
    fn images_without_wasm_layers_and_odd_digests() {
        let tar_only = json!({"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:aa"}]});
        assert!(select_layer("img", &tar_only, "/x").unwrap().is_none());
        let sha512 = json!({"layers": [{"mediaType": WASM, "digest": "sha512:aa"}]});
        let err = select_layer("img", &sha512, "/x").unwrap_err().to_string();
        assert!(err.contains("sha512:aa"), "{err}");
    }

    #[test]
    fn index_prefers_wasm_then_host_platform() {
        let m = |d: &str, os: &str, arch: &str| json!({"digest": d, "platform": {"os": os, "architecture": arch}});
        let index = json!({"manifests": [m("sha256:l", "linux", host_architecture()), m("sha256:w", "wasip1", "wasm")]});
        assert_eq!(pick_manifest(&index).as_deref(), Some("sha256:w"));
        let index = json!({"manifests": [m("sha256:o", "linux", "s390x"), m("sha256:l", "linux", host_architecture())]});
        assert_eq!(pick_manifest(&index).as_deref(), Some("sha256:l"));
        let index = json!({"manifests": [m("sha256:o", "linux", "s390x"), m("sha256:p", "linux", "ppc64le")]});
        assert_eq!(pick_manifest(&index), None);
    }
}
