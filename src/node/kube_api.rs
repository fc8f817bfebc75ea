//! The one Kubernetes API call the installer makes from its pod: its node's labels set or
//! removed, so that RuntimeClasses schedule only onto nodes whose containerd serves wasmbay.
//!
//! In-cluster only: the API server named by `KUBERNETES_SERVICE_HOST`/`_PORT`, trusted through
//! the service account's CA, authenticated by its token, as every pod finds them. One JSON
//! merge patch over HTTPS (rustls) per call, every step bounded in time. A client library
//! would bring an HTTP stack and generated API types for this single request.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Where Kubernetes mounts a pod's service account credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[derive(Debug, thiserror::Error)]
pub enum KubeApiError {
    #[error(
        "{0} is not set: --label-node works in a pod, where Kubernetes sets it (run the \
         installer as deploy/ does, or leave --label-node out)"
    )]
    NotInCluster(&'static str),
    #[error("{path}: {source}")]
    Credentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no usable PEM certificate in the service account's CA bundle")]
    NoCertificate { path: PathBuf },
    #[error("{0:?} is not a valid Kubernetes node name")]
    NodeName(String),
    #[error("the API server's address {0:?} is not a host name or IP address")]
    ServerName(String),
    #[error("TLS to the API server at {server}: {source}")]
    Tls {
        server: String,
        #[source]
        source: rustls::Error,
    },
    #[error("the API server at {server}: {source}")]
    Io {
        server: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the API server at {server} answered {status} to {request}: {message}")]
    Refused {
        server: String,
        request: String,
        status: u16,
        message: String,
    },
}

/// An API server and the credentials to call it with.
pub struct KubeApi {
    host: String,
    port: u16,
    token: String,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl KubeApi {
    /// The API server as a pod sees it: its address from the environment, its CA and this
    /// pod's token from the service account directory.
    pub fn in_cluster(timeout: Duration) -> Result<KubeApi, KubeApiError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .map_err(|_| KubeApiError::NotInCluster("KUBERNETES_SERVICE_HOST"))?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .ok_or(KubeApiError::NotInCluster("KUBERNETES_SERVICE_PORT"))?;
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| KubeApiError::Credentials { path, source })
        };
        let ca = read("ca.crt")?;
        let token = String::from_utf8_lossy(&read("token")?).trim().to_string();
        KubeApi::new(&host, port, &ca, &dir.join("ca.crt"), token, timeout)
    }

    /// An API server at `host:port` whose certificate chains to a certificate in `ca_pem`
    /// (read from `ca_path`, named in errors), called with the bearer `token`.
    pub fn new(
        host: &str,
        port: u16,
        ca_pem: &[u8],
        ca_path: &Path,
        token: String,
        timeout: Duration,
    ) -> Result<KubeApi, KubeApiError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem).flatten() {
            // A bundle may hold certificates rustls cannot use; the others still count.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(KubeApiError::NoCertificate {
                path: ca_path.to_path_buf(),
            });
        }
        let provider = Arc::new(crypto_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| KubeApiError::Tls {
                server: format!("{host}:{port}"),
                source,
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(KubeApi {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            token,
            tls: Arc::new(tls),
            timeout,
        })
    }

    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sets each label given a value and removes each given `None`, on node `node`, in one
    /// merge patch; labels not named are left as they are.
    pub fn patch_node_labels(
        &self,
        node: &str,
        labels: &[(String, Option<String>)],
    ) -> Result<(), KubeApiError> {
        if !is_node_name(node) {
            return Err(KubeApiError::NodeName(node.to_string()));
        }
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone().map_or(serde_json::Value::Null, Into::into),
                )
            })
            .collect();
        let body = serde_json::json!({ "metadata": { "labels": labels } }).to_string();
        let path = format!("/api/v1/nodes/{node}");
        self.call("PATCH", &path, "application/merge-patch+json", &body)
            .map(drop)
    }

    /// One request; the response body when the status is 2xx.
    fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<String, KubeApiError> {
        let server = self.server();
        let io = |source| KubeApiError::Io {
            server: server.clone(),
            source,
        };
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| KubeApiError::ServerName(self.host.clone()))?;
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
        let tcp = TcpStream::connect_timeout(&address, self.timeout).map_err(io)?;
        tcp.set_read_timeout(Some(self.timeout)).map_err(io)?;
        tcp.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let connection =
            rustls::ClientConnection::new(self.tls.clone(), name).map_err(|source| {
                KubeApiError::Tls {
                    server: server.clone(),
                    source,
                }
            })?;
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        let response = crate::http1::exchange(
            &mut stream,
            &crate::http1::Request {
                method,
                target: path,
                host: &server,
                headers: vec![
                    ("Authorization", format!("Bearer {}", self.token)),
                    ("Content-Type", content_type.to_string()),
                    ("Accept", "application/json".to_string()),
                ],
                body: body.as_bytes(),
            },
        )
        .map_err(io)?;
        if response.is_success() {
            return Ok(String::from_utf8_lossy(&response.body).into_owned());
        }
        Err(KubeApiError::Refused {
            server,
            request: format!("{method} {path}"),
            status: response.status,
            message: response.message(),
        })
    }
}

/// rustls over *ring*. rustls 0.23.48 deprecates it for its lack of post-quantum key exchange,
/// pointing to aws-lc-rs, which needs cmake and a C build per target (the static aarch64
/// installer included); a cluster's own API server is what this talks to, over its own CA.
#[allow(deprecated)]
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A node name is a DNS subdomain (RFC 1123): it goes into the request path as it is.
fn is_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A TLS server on loopback with a certificate for 127.0.0.1 that answers one request as
    /// told and hands back the request it got. It stands in for a kube-apiserver, which no
    /// registry this project reaches packages.
    struct Peer {
        port: u16,
        ca_pem: String,
        request: mpsc::Receiver<(String, String)>,
    }

    fn peer(answer: &'static str) -> Peer {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(crypto_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // A client that gives up (another CA, a timeout) ends the exchange: nothing to send.
            let serve = || -> std::io::Result<(String, String)> {
                let (tcp, _) = listener.accept()?;
                tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
                let connection = rustls::ServerConnection::new(Arc::new(server))
                    .map_err(std::io::Error::other)?;
                let mut stream = std::io::BufReader::new(rustls::StreamOwned::new(connection, tcp));
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    stream.read_line(&mut line)?;
                    if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().map_err(std::io::Error::other)?;
                    }
                    head.push_str(&line);
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                let mut body = vec![0; length];
                stream.read_exact(&mut body)?;
                let mut stream = stream.into_inner();
                stream.write_all(answer.as_bytes())?;
                stream.conn.send_close_notify();
                stream.flush()?;
                Ok((head, String::from_utf8_lossy(&body).into_owned()))
            };
            if let Ok(request) = serve() {
                let _ = tx.send(request);
            }
        });
        Peer {
            port,
            ca_pem,
            request: rx,
        }
    }

    fn api(peer: &Peer) -> KubeApi {
        KubeApi::new(
            "127.0.0.1",
            peer.port,
            peer.ca_pem.as_bytes(),
            Path::new("ca.crt"),
            "the-token".to_string(),
            Duration::from_secs(10),
        )
        .unwrap()
    }

    #[test]
    fn labels_are_set_and_removed_in_one_merge_patch() {
        let peer = peer("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}");
        api(&peer)
            .patch_node_labels(
                "node-1.example",
                &[
                    ("wasmbay.dev/wasmtime".into(), Some("ready".into())),
                    ("wasmbay.dev/wasmer".into(), None),
                ],
            )
            .unwrap();
        let (head, body) = peer.request.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            head.starts_with("PATCH /api/v1/nodes/node-1.example HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("Authorization: Bearer the-token\r\n"),
            "{head}"
        );
        assert!(
            head.contains("Content-Type: application/merge-patch+json\r\n"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"metadata": {"labels": {
                "wasmbay.dev/wasmtime": "ready",
                "wasmbay.dev/wasmer": null,
            }}})
        );
    }

    #[test]
    fn a_refusal_names_the_status_and_the_servers_message() {
        let peer = peer(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n\
             {\"kind\":\"Status\",\"message\":\"nodes \\\"n\\\" is forbidden: User cannot patch\"}",
        );
        let err = api(&peer)
            .patch_node_labels("n", &[("wasmbay.dev/runtime".into(), None)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("answered 403 to PATCH /api/v1/nodes/n"),
            "{err}"
        );
        assert!(err.contains("User cannot patch"), "{err}");
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused() {
        let peer = peer("HTTP/1.1 200 OK\r\n\r\n{}");
        let other = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let api = KubeApi::new(
            "127.0.0.1",
            peer.port,
            other.pem().as_bytes(),
            Path::new("ca.crt"),
            "t".into(),
            Duration::from_secs(10),
        )
        .unwrap();
        let err = api
            .patch_node_labels("n", &[("wasmbay.dev/runtime".into(), None)])
            .unwrap_err();
        assert!(
            matches!(err, KubeApiError::Io { .. } | KubeApiError::Tls { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_silent_server_is_an_error_within_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer_ca = peer("HTTP/1.1 200 OK\r\n\r\n{}").ca_pem;
        let api = KubeApi::new(
            "127.0.0.1",
            port,
            peer_ca.as_bytes(),
            Path::new("ca.crt"),
            "t".into(),
            Duration::from_millis(300),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = api
            .patch_node_labels("n", &[("wasmbay.dev/runtime".into(), None)])
            .unwrap_err();
        assert!(matches!(err, KubeApiError::Io { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[test]
    fn bad_node_names_and_ca_files_are_refused_before_any_call() {
        let api = KubeApi::new(
            "127.0.0.1",
            1,
            peer("HTTP/1.1 200 OK\r\n\r\n{}").ca_pem.as_bytes(),
            Path::new("ca.crt"),
            "t".into(),
            Duration::from_secs(1),
        )
        .unwrap();
        for name in ["", "a/b", "../x", "Node", "-a", "a..b"] {
            assert!(
                matches!(
                    api.patch_node_labels(name, &[]),
                    Err(KubeApiError::NodeName(_))
                ),
                "{name:?}"
            );
        }
        let err = KubeApi::new(
            "127.0.0.1",
            1,
            b"not a certificate",
            Path::new("/sa/ca.crt"),
            "t".into(),
            Duration::from_secs(1),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("/sa/ca.crt"), "{err}");
    }
}
