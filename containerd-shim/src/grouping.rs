//! Which containers share one shim process.
//!
//! containerd runs the shim's `start` action for every container and connects to whatever
//! socket it answers, so the shim decides the grouping. Two policies:
//! - `pod` (the default): the containers of one Kubernetes pod share a shim, keyed by the
//!   sandbox id CRI puts in their annotations; a container outside a pod has a shim of its own.
//! - `namespace`: one shim serves every container of this runtime in a containerd namespace.
//!   That costs one process per node instead of one per pod, and a start skips spawning a shim;
//!   the price is a wider blast radius if the shim dies (the containers keep running, but
//!   containerd loses their status until it is restarted). The shim then stays up for a while
//!   after its last container, so a stream of short jobs does not respawn it each time.

use std::time::Duration;

/// containerd's environment, which the shim inherits, selects the policy.
pub const GROUPING_ENV: &str = "WASMBAY_SHIM_GROUPING";
/// How long an idle shim waits for a new container before it exits, in milliseconds.
pub const LINGER_ENV: &str = "WASMBAY_SHIM_LINGER_MS";

/// Containers with this annotation share one shim per pod.
pub const SANDBOX_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

const NAMESPACE_LINGER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Pod,
    Namespace,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupingError {
    #[error("{GROUPING_ENV}={0:?}: expected `pod` or `namespace`")]
    Policy(String),
    #[error("{LINGER_ENV}={0:?}: expected a number of milliseconds")]
    Linger(String),
}

impl Grouping {
    pub fn parse(value: Option<&str>) -> Result<Grouping, GroupingError> {
        match value.map(str::trim) {
            None | Some("") | Some("pod") => Ok(Grouping::Pod),
            Some("namespace") => Ok(Grouping::Namespace),
            Some(other) => Err(GroupingError::Policy(other.to_string())),
        }
    }

    pub fn from_env() -> Result<Grouping, GroupingError> {
        Grouping::parse(std::env::var(GROUPING_ENV).ok().as_deref())
    }

    /// The shim a container belongs to: its id names the shim's socket.
    pub fn key(&self, container_id: &str, sandbox_id: Option<&str>, engine: &str) -> String {
        match self {
            Grouping::Namespace => format!("wasmbay-{engine}"),
            Grouping::Pod => sandbox_id
                .filter(|s| !s.is_empty())
                .unwrap_or(container_id)
                .to_string(),
        }
    }

    /// How long the shim outlives its last container: at once for a pod's shim, whose pod is
    /// gone, a while for a namespace's.
    pub fn linger(&self, value: Option<&str>) -> Result<Duration, GroupingError> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            Some(ms) => ms
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| GroupingError::Linger(ms.to_string())),
            None => Ok(match self {
                Grouping::Pod => Duration::ZERO,
                Grouping::Namespace => NAMESPACE_LINGER,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_grouping_follows_the_sandbox_and_namespace_grouping_the_engine() {
        let pod = Grouping::parse(None).unwrap();
        assert_eq!(pod, Grouping::Pod);
        assert_eq!(pod.key("c1", Some("sb"), "wasmtime"), "sb");
        assert_eq!(pod.key("c1", None, "wasmtime"), "c1");
        assert_eq!(pod.key("c1", Some(""), "wasmtime"), "c1");
        let ns = Grouping::parse(Some("namespace")).unwrap();
        assert_eq!(ns.key("c1", Some("sb"), "wasmtime"), "wasmbay-wasmtime");
        assert_eq!(ns.key("c2", None, "wasmedge"), "wasmbay-wasmedge");
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let e = Grouping::parse(Some("node")).unwrap_err().to_string();
        assert!(e.contains(GROUPING_ENV) && e.contains("node"), "{e}");
        let e = Grouping::Pod.linger(Some("soon")).unwrap_err().to_string();
        assert!(e.contains(LINGER_ENV) && e.contains("soon"), "{e}");
    }

    #[test]
    fn a_namespace_shim_lingers_unless_told_otherwise() {
        assert_eq!(Grouping::Pod.linger(None).unwrap(), Duration::ZERO);
        assert_eq!(Grouping::Namespace.linger(None).unwrap(), NAMESPACE_LINGER);
        assert_eq!(
            Grouping::Namespace.linger(Some("250")).unwrap(),
            Duration::from_millis(250)
        );
    }
}
