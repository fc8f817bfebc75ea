//! Asking containerd's CRI service, as kubelet would, whether it answers and which runtime
//! handlers it serves.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::StatusRequest;

/// What one `Status` call said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriStatus {
    /// The runtime handlers containerd serves.
    pub handlers: BTreeSet<String>,
}

/// One bounded `Status` call (verbose: containerd 1.x lists its runtimes only in the verbose
/// `config` it returns; 2.x also answers `runtime_handlers`).
pub fn status(socket: &Path, timeout: Duration) -> Result<CriStatus, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let call = async {
            let channel = containerd_client::connect(socket)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            RuntimeServiceClient::new(channel)
                .status(StatusRequest { verbose: true })
                .await
                .map(|r| r.into_inner())
                .map_err(|status| format!("CRI Status: {}", status.message()))
        };
        let answer = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))??;
        let mut handlers: BTreeSet<String> = answer
            .runtime_handlers
            .iter()
            .map(|h| h.name.clone())
            .filter(|name| !name.is_empty())
            .collect();
        if let Some(config) = answer.info.get("config") {
            handlers.extend(handlers_in_config(config));
        }
        Ok(CriStatus { handlers })
    })
}

/// The runtime names in the CRI's verbose `config` JSON (`containerd.runtimes`).
fn handlers_in_config(config: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(config)
        .ok()
        .and_then(|config| {
            config
                .get("containerd")?
                .get("runtimes")?
                .as_object()
                .map(|runtimes| runtimes.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// Polls until the CRI answers and serves every one of `handlers` (or, with `present` false,
/// none of them), for at most `limit`. The last answer or error comes back on a timeout.
pub fn wait_for(
    socket: &Path,
    handlers: &[String],
    present: bool,
    limit: Duration,
) -> Result<CriStatus, String> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(format!(
                "{} did not serve the runtime handlers as expected within {} s: {last}",
                socket.display(),
                limit.as_secs()
            ));
        }
        match status(socket, left.min(Duration::from_secs(5))) {
            Ok(status)
                if handlers
                    .iter()
                    .all(|h| status.handlers.contains(h) == present) =>
            {
                return Ok(status)
            }
            Ok(status) => {
                last = format!(
                    "it serves {}",
                    status
                        .handlers
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250).min(left));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_come_from_the_verbose_config() {
        let config = r#"{"containerd":{"snapshotter":"overlayfs","runtimes":{"runc":{"runtimeType":"io.containerd.runc.v2"},"wasmbay-wasmtime":{"runtimeType":"io.containerd.wasmbay-wasmtime.v1"}}}}"#;
        assert_eq!(handlers_in_config(config), ["runc", "wasmbay-wasmtime"]);
        assert!(handlers_in_config("{}").is_empty());
        assert!(handlers_in_config("not json").is_empty());
    }

    #[test]
    fn a_socket_nobody_serves_is_an_error_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let err = wait_for(
            &dir.path().join("none.sock"),
            &["wasmbay-wasmtime".into()],
            true,
            Duration::from_millis(600),
        )
        .unwrap_err();
        assert!(err.contains("none.sock"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
