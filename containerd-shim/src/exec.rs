//! Processes exec'd into a running task (`ctr task exec`, the CRI's `ExecSync` and streaming
//! exec, so `kubectl exec`).
//!
//! containerd's `Exec` only registers the process; `Start` with its exec id makes it. The
//! process is created by the zygote as libcontainer's tenant of the task's container: it joins
//! the container's namespaces and cgroup and takes the spec's process, so a Linux program is
//! exec'd there and a WebAssembly file runs on the task's engine, as for an init. Its pid is
//! then this shim's child, waited for like an init's.

use std::path::{Path, PathBuf};

use wasmbay_shim_core::lifecycle::Lifecycle;
use wasmbay_shim_core::oci_spec::runtime::Process;

/// One exec'd process of a task.
pub(crate) struct ExecProc {
    /// The process spec as libcontainer's tenant reads it, in the task's bundle.
    pub spec_file: PathBuf,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub pid: u32,
    /// Registered, running or ended (with its status).
    pub life: Lifecycle,
    /// Set while `start` makes the process outside the task lock.
    pub starting: bool,
    /// Whether the process gets a terminal (`process.terminal`).
    pub terminal: bool,
    /// Its terminal once started with one.
    pub console: Option<crate::console::Console>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecError {
    #[error(
        "exec {exec_id}: the process spec ({type_url}) is not runtime-spec Process JSON: {source}"
    )]
    Spec {
        exec_id: String,
        type_url: String,
        source: serde_json::Error,
    },
    #[error("exec {exec_id}: the process spec names no arguments (`args`)")]
    NoArgs { exec_id: String },
    #[error("exec {exec_id}: an exec id is a plain name, not {exec_id:?}")]
    BadId { exec_id: String },
    #[error(
        "exec {exec_id}: the process spec's `terminal` is {in_spec} but the request's is {in_request}"
    )]
    Terminal {
        exec_id: String,
        in_spec: bool,
        in_request: bool,
    },
    #[error("exec {exec_id}: cannot write {}: {source}", path.display())]
    Write {
        exec_id: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ExecProc {
    /// Checks the process spec containerd sent for exec `exec_id` of task `task_id` and writes
    /// it into the bundle, where the zygote's worker reads it at start.
    pub(crate) fn register(
        bundle: &Path,
        task_id: &str,
        exec_id: &str,
        type_url: &str,
        spec: &[u8],
        stdio: [&str; 3],
        terminal: bool,
    ) -> Result<ExecProc, ExecError> {
        // The id becomes part of a file name.
        if exec_id.is_empty()
            || exec_id.contains('/')
            || exec_id.starts_with('.')
            || exec_id.len() > 200
        {
            return Err(ExecError::BadId {
                exec_id: exec_id.to_string(),
            });
        }
        let process: Process = serde_json::from_slice(spec).map_err(|source| ExecError::Spec {
            exec_id: exec_id.to_string(),
            type_url: type_url.to_string(),
            source,
        })?;
        // libcontainer obeys the spec's flag, containerd's fifos follow the request's.
        let in_spec = process.terminal().unwrap_or(false);
        if terminal != in_spec {
            return Err(ExecError::Terminal {
                exec_id: exec_id.to_string(),
                in_spec,
                in_request: terminal,
            });
        }
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(ExecError::NoArgs {
                exec_id: exec_id.to_string(),
            });
        }
        let spec_file = bundle.join(format!(".wasmbay-exec-{exec_id}.json"));
        std::fs::write(&spec_file, spec).map_err(|source| ExecError::Write {
            exec_id: exec_id.to_string(),
            path: spec_file.clone(),
            source,
        })?;
        let [stdin, stdout, stderr] = stdio.map(str::to_string);
        Ok(ExecProc {
            spec_file,
            stdin,
            stdout,
            stderr,
            pid: 0,
            life: Lifecycle::new(format!("exec {exec_id} of task {task_id}")),
            starting: false,
            terminal,
            console: None,
        })
    }

    /// Removes what `register` wrote.
    pub(crate) fn remove_files(&self) {
        let _ = std::fs::remove_file(&self.spec_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: &str = r#"{"args":["/bin/echo","hi"],"cwd":"/","user":{"uid":0,"gid":0}}"#;

    fn register(exec_id: &str, spec: &str, terminal: bool) -> Result<ExecProc, ExecError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc = ExecProc::register(
            dir.path(),
            "c1",
            exec_id,
            "types.containerd.io/opencontainers/runtime-spec/1/Process",
            spec.as_bytes(),
            ["", "/o", "/e"],
            terminal,
        )?;
        assert_eq!(
            std::fs::read_to_string(&proc.spec_file).expect("spec file"),
            spec
        );
        proc.remove_files();
        assert!(!proc.spec_file.exists());
        Ok(proc)
    }

    #[test]
    fn a_process_spec_is_kept_for_the_tenant() {
        let proc = register("e1", ECHO, false).expect("registered");
        assert_eq!(
            proc.life.phase(),
            wasmbay_shim_core::lifecycle::Phase::Created
        );
        assert_eq!(proc.stdout, "/o");
    }

    #[test]
    fn bad_exec_requests_are_refused_naming_the_field() {
        let err = register("e1", "{", false)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("not runtime-spec Process JSON"), "{err}");
        let err = register(
            "e1",
            r#"{"args":[],"cwd":"/","user":{"uid":0,"gid":0}}"#,
            false,
        )
        .err()
        .expect("refused")
        .to_string();
        assert!(err.contains("`args`"), "{err}");
        let err = register("../x", ECHO, false)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("plain name"), "{err}");
        let err = register("e1", ECHO, true)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("`terminal` is false"), "{err}");
        let tty = r#"{"args":["/bin/sh"],"terminal":true,"cwd":"/","user":{"uid":0,"gid":0}}"#;
        let err = register("e1", tty, false)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("`terminal` is true"), "{err}");
        assert!(register("e1", tty, true).expect("a terminal exec").terminal);
    }
}
