//! Serving an HTTP handler component: where it listens and the limits each request runs
//! under. Frontends take these from flags (`wasmbay serve`) or from a container's annotations;
//! engines that serve receive them with a listening socket (see
//! [`crate::CompiledModule::serve`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Annotation with the address a served container listens on, inside its network namespace.
pub const LISTEN_ANNOTATION: &str = "wasmbay.http.listen";
/// Annotation with the wall-clock budget of one request in milliseconds.
pub const REQUEST_TIMEOUT_ANNOTATION: &str = "wasmbay.http.request-timeout-ms";
/// Annotation bounding the requests handled at once; further ones wait for a slot.
pub const MAX_CONCURRENCY_ANNOTATION: &str = "wasmbay.http.max-concurrency";
/// Annotation capping the linear memory of one request's instance, in bytes.
pub const REQUEST_MEMORY_ANNOTATION: &str = "wasmbay.http.request-memory-limit";

/// Where a handler listens when nothing says otherwise: every address of its network, the
/// port HTTP services on Kubernetes conventionally expose.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);

/// What one request may use. A request over a limit is answered 500 and the server goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// Linear memory of one request's instance; `None` leaves the workload's own limit
    /// ([`crate::WasiConfig::memory_limit`]) as the only bound.
    pub request_memory: Option<u64>,
    /// Wall-clock budget from accepting a request to its response head; guest code still
    /// running then is interrupted.
    pub request_timeout: Duration,
    /// Requests handled at once; the rest wait in the accept queue's order.
    pub max_concurrency: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            request_memory: None,
            request_timeout: Duration::from_secs(30),
            max_concurrency: 256,
        }
    }
}

/// Everything about serving that a container's annotations decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub limits: ServeLimits,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: DEFAULT_LISTEN,
            limits: ServeLimits::default(),
        }
    }
}

/// A serving annotation whose value cannot be used; the text names the annotation.
#[derive(Debug, thiserror::Error)]
#[error("config.json: annotation `{key}`: {value:?} is not {expected}")]
pub struct BadServeAnnotation {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl ServeSettings {
    /// Reads the serving annotations; absent ones keep their defaults.
    pub fn from_annotations(
        annotations: Option<&HashMap<String, String>>,
    ) -> Result<Self, BadServeAnnotation> {
        let mut settings = ServeSettings::default();
        let Some(annotations) = annotations else {
            return Ok(settings);
        };
        let get = |key: &'static str| annotations.get(key).map(|v| (key, v.trim()));
        fn bad(key: &'static str, value: &str, expected: &'static str) -> BadServeAnnotation {
            BadServeAnnotation {
                key,
                value: value.to_string(),
                expected,
            }
        }
        if let Some((key, value)) = get(LISTEN_ANNOTATION) {
            settings.listen = parse_listen(value).ok_or_else(|| {
                bad(
                    key,
                    value,
                    "an address and port such as 0.0.0.0:8080 or :8080",
                )
            })?;
        }
        if let Some((key, value)) = get(REQUEST_TIMEOUT_ANNOTATION) {
            let ms = value
                .parse::<u64>()
                .ok()
                .filter(|&ms| ms > 0)
                .ok_or_else(|| bad(key, value, "a positive number of milliseconds"))?;
            settings.limits.request_timeout = Duration::from_millis(ms);
        }
        if let Some((key, value)) = get(MAX_CONCURRENCY_ANNOTATION) {
            settings.limits.max_concurrency = value
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(key, value, "a positive number of requests"))?;
        }
        if let Some((key, value)) = get(REQUEST_MEMORY_ANNOTATION) {
            settings.limits.request_memory = Some(
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad(key, value, "a positive number of bytes"))?,
            );
        }
        Ok(settings)
    }
}

/// `HOST:PORT`, `[V6]:PORT`, or `:PORT` for every IPv4 address.
pub fn parse_listen(value: &str) -> Option<SocketAddr> {
    if let Some(port) = value.strip_prefix(':') {
        return Some(SocketAddr::new(DEFAULT_LISTEN.ip(), port.parse().ok()?));
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<ServeSettings, BadServeAnnotation> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServeSettings::from_annotations(Some(&map))
    }

    #[test]
    fn absent_annotations_keep_the_defaults() {
        assert_eq!(with(&[]).unwrap(), ServeSettings::default());
        assert_eq!(
            ServeSettings::from_annotations(None).unwrap().listen,
            "0.0.0.0:8080".parse().unwrap()
        );
    }

    #[test]
    fn each_annotation_sets_its_field() {
        let s = with(&[
            (LISTEN_ANNOTATION, ":9000"),
            (REQUEST_TIMEOUT_ANNOTATION, "250"),
            (MAX_CONCURRENCY_ANNOTATION, "4"),
            (REQUEST_MEMORY_ANNOTATION, "1048576"),
        ])
        .unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.limits.request_timeout, Duration::from_millis(250));
        assert_eq!(s.limits.max_concurrency, 4);
        assert_eq!(s.limits.request_memory, Some(1 << 20));
        assert_eq!(
            with(&[(LISTEN_ANNOTATION, "[::1]:80")]).unwrap().listen,
            "[::1]:80".parse().unwrap()
        );
    }

    #[test]
    fn a_bad_value_names_its_annotation() {
        for (key, value) in [
            (LISTEN_ANNOTATION, "localhost"),
            (REQUEST_TIMEOUT_ANNOTATION, "0"),
            (MAX_CONCURRENCY_ANNOTATION, "-1"),
            (REQUEST_MEMORY_ANNOTATION, "1G"),
        ] {
            let error = with(&[(key, value)]).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
            assert!(error.contains(value), "{error}");
        }
    }
}
