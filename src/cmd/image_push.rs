//! `wasmbay image push ARCHIVE REF`: an OCI image layout archive (from `wasmbay image build`,
//! `wasmbay image installer`, or any tool) sent to a registry by the OCI distribution API:
//! each blob not there yet uploaded (a POST, then a PUT of the whole blob), then each manifest
//! by digest, and the image's own document under the tag last, so that a tag never names an
//! image whose parts are missing. Plain HTTP only for now (`--plain-http`, a loopback or
//! in-cluster registry); TLS and registry credentials are not written yet.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use wasmbay_oci_image::archive::{Blob, LayoutArchive};
use wasmbay_oci_image::ImageRef;

use crate::http1::{self, Request, Response};

#[derive(Args)]
pub struct PushArgs {
    /// The OCI image layout archive (tar).
    archive: PathBuf,
    /// Where to push: `REGISTRY/REPOSITORY:TAG`, e.g. `localhost:5000/hello:v1`.
    reference: String,
    /// Which image of the archive, by the name it carries (default: the archive's only one).
    #[arg(long, value_name = "REF")]
    image: Option<String>,
    /// Talk HTTP, not HTTPS, to the registry (required for now).
    #[arg(long)]
    plain_http: bool,
    /// How long one request may take (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    timeout: u64,
}

pub fn push(args: PushArgs) -> Result<i32> {
    let target = ImageRef::parse(&args.reference)
        .with_context(|| format!("reference {:?}", args.reference))?;
    if !args.plain_http {
        bail!(
            "{}: only plain HTTP registries are supported for now: pass --plain-http for a \
             registry that serves HTTP (a loopback or in-cluster one)",
            target.domain()
        );
    }
    let bytes = std::fs::read(&args.archive)
        .with_context(|| format!("reading {}", args.archive.display()))?;
    let layout = LayoutArchive::read(&bytes).with_context(|| args.archive.display().to_string())?;
    let wanted = args
        .image
        .as_deref()
        .map(ImageRef::parse)
        .transpose()
        .context("--image")?;
    let image = layout
        .image(
            wanted.as_ref().map(ToString::to_string).as_deref(),
            wanted.as_ref().map(|w| w.tag()),
        )
        .with_context(|| {
            format!(
                "{}: holds {} images; name one with --image",
                args.archive.display(),
                layout.images.len()
            )
        })?;
    let blobs = layout
        .blobs_under(image)
        .with_context(|| args.archive.display().to_string())?;
    let registry = Registry {
        host: target.domain().to_string(),
        repository: target.path().to_string(),
        timeout: Duration::from_secs(args.timeout),
    };
    let (top, parts) = blobs.split_last().context("an image with no document")?;
    for blob in parts {
        if blob.is_manifest {
            registry.put_manifest(blob, &blob.digest)?;
        } else if registry.has_blob(&blob.digest)? {
            println!("{}: already there", blob.digest);
            continue;
        } else {
            registry.upload_blob(blob)?;
        }
        println!("{}: pushed", blob.digest);
    }
    registry.put_manifest(top, target.tag())?;
    println!("{target}: {}", top.digest);
    Ok(0)
}

/// A repository on a registry that speaks plain HTTP.
struct Registry {
    /// `host[:port]`.
    host: String,
    repository: String,
    timeout: Duration,
}

impl Registry {
    fn call(
        &self,
        method: &str,
        target: &str,
        headers: Vec<(&str, String)>,
        body: &[u8],
    ) -> Result<Response> {
        let shown = format!("{method} http://{}{target}", self.host);
        let address = self
            .host
            .to_socket_addrs()
            .or_else(|_| (self.host.as_str(), 80).to_socket_addrs())
            .with_context(|| format!("{shown}: resolving {}", self.host))?
            .next()
            .with_context(|| format!("{shown}: {} has no address", self.host))?;
        let mut tcp = TcpStream::connect_timeout(&address, self.timeout)
            .with_context(|| format!("{shown}: connecting"))?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_write_timeout(Some(self.timeout))?;
        http1::exchange(
            &mut tcp,
            &Request {
                method,
                target,
                host: &self.host,
                headers,
                body,
            },
        )
        .with_context(|| shown)
    }

    fn refused(&self, what: &str, response: &Response) -> anyhow::Error {
        anyhow::anyhow!(
            "{} refused {what}: {} {}",
            self.host,
            response.status,
            response.message()
        )
    }

    fn has_blob(&self, digest: &str) -> Result<bool> {
        let response = self.call(
            "HEAD",
            &format!("/v2/{}/blobs/{digest}", self.repository),
            Vec::new(),
            &[],
        )?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused(&format!("a look-up of {digest}"), &response)),
        }
    }

    fn upload_blob(&self, blob: &Blob) -> Result<()> {
        let started = self.call(
            "POST",
            &format!("/v2/{}/blobs/uploads/", self.repository),
            Vec::new(),
            &[],
        )?;
        if started.status != 202 {
            return Err(self.refused(&format!("an upload of {}", blob.digest), &started));
        }
        let location = started
            .header("location")
            .with_context(|| format!("{}: an upload with no Location", self.host))?;
        // The location may be absolute; the upload goes to the same registry either way.
        let path = match location.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
            None => location,
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let done = self.call(
            "PUT",
            &format!("{path}{separator}digest={}", blob.digest),
            vec![("Content-Type", "application/octet-stream".to_string())],
            &blob.bytes,
        )?;
        if done.status != 201 {
            return Err(self.refused(&format!("the content of {}", blob.digest), &done));
        }
        Ok(())
    }

    fn put_manifest(&self, blob: &Blob, reference: &str) -> Result<()> {
        let response = self.call(
            "PUT",
            &format!("/v2/{}/manifests/{reference}", self.repository),
            vec![("Content-Type", blob.media_type.clone())],
            &blob.bytes,
        )?;
        if response.status != 201 {
            return Err(self.refused(
                &format!("manifest {} as {reference}", blob.digest),
                &response,
            ));
        }
        Ok(())
    }
}
