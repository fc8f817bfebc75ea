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
use wasmbay_oci_image::read::{is_index_media_type, pick_manifest, select_wasm_layer};

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
        if is_index_media_type(&target.media_type) {
            let index = self.document(&image, &target.digest)?;
            manifest_digest = pick_manifest(&index, host_architecture()).ok_or_else(|| {
                image_err("its index has no manifest for wasm or this host".into())
            })?;
        }
        let manifest = self.document(&image, &manifest_digest)?;
        let chosen = select_wasm_layer(&manifest, argv0)
            .map_err(|e| image_err(format!("manifest {manifest_digest}: {e}")))?;
        Ok(chosen.map(|layer| WasmLayer {
            image: image.clone(),
            digest: layer.digest,
            media_type: layer.media_type,
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

    // Which manifest and layer are chosen is oci-image's `read` module, tested (and fuzzed)
    // there; this is only the shim's naming of the result.
    #[test]
    fn a_layer_is_named_by_its_image_and_digest() {
        let layer = WasmLayer {
            image: "img".into(),
            digest: "sha256:bb".into(),
            media_type: "application/wasm".into(),
        };
        assert_eq!(layer.sha256_hex(), "bb");
        assert_eq!(layer.name(), "img@sha256:bb");
    }
}
