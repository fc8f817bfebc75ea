//! The WASI view of a workload: what the guest sees as its arguments, environment, files and
//! standard streams. Engines translate this into their own WASI context; nothing of the host
//! leaks in unless it is listed here.

use std::fs::File;
use std::path::PathBuf;

/// A host directory made visible to the guest under `guest` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

/// Where one standard stream of the guest goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The calling process's own stream (inside a container, the one the runtime set up).
    #[default]
    Inherit,
    /// Nothing: reads see end-of-file, writes are discarded.
    Null,
    /// An open file or pipe.
    File(File),
}

/// Everything an engine needs to run a WASI command.
#[derive(Debug, Default)]
pub struct WasiConfig {
    /// `argv`, including `argv[0]` (the program name).
    pub args: Vec<String>,
    /// The guest environment, exactly; the host environment is never added.
    pub env: Vec<(String, String)>,
    /// The guest working directory (used by libc to resolve relative paths).
    pub cwd: String,
    pub preopens: Vec<Preopen>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// Upper bound, in bytes, for all linear memories of the instance together.
    pub memory_limit: Option<u64>,
    /// Whether the guest may use the network of the process it runs in (`wasi:sockets`,
    /// name lookup, outgoing `wasi:http`). Inside a container that is the container's own
    /// network namespace; for `wasmbay run` it is the host's, so off unless asked.
    pub network: bool,
}

impl WasiConfig {
    /// Parses `KEY=VALUE` strings as found in OCI specs. An entry without `=` is an empty variable.
    pub fn parse_env<I, S>(entries: I) -> Vec<(String, String)>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        entries
            .into_iter()
            .map(|entry| match entry.as_ref().split_once('=') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => (entry.as_ref().to_string(), String::new()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keeps_values_with_equals_and_empty_values() {
        let env = WasiConfig::parse_env(["A=1", "B=x=y", "C=", "D"]);
        assert_eq!(
            env,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("C".into(), String::new()),
                ("D".into(), String::new()),
            ]
        );
    }
}
