//! The direct frontend: each case through `wasmbay run`, the way a user runs a module by hand;
//! a served component (world `wasi:http/service`) through `wasmbay serve`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::suite::{end_child, run_process, spawn_piped, Frontend, Invocation, Observed, Workload};

pub struct DirectFrontend {
    /// The `wasmbay` binary to run.
    pub wasmbay: PathBuf,
    pub engine: String,
    pub use_cache: bool,
}

impl Frontend for DirectFrontend {
    fn name(&self) -> &str {
        "direct"
    }

    fn run(&self, inv: &Invocation<'_>) -> Result<Observed, String> {
        run_process(
            self.command(inv)?,
            &inv.stdin,
            inv.timeout + Duration::from_secs(10),
        )
    }

    fn spawn<'f>(&'f self, inv: &Invocation<'_>) -> Result<Box<dyn Workload + 'f>, String> {
        Ok(Box::new(DirectWorkload {
            child: spawn_piped(self.command(inv)?)?,
        }))
    }
}

/// `wasmbay run` or `serve`, signalled as a user's shell would, in the runner's own network
/// namespace.
struct DirectWorkload {
    child: std::process::Child,
}

impl Workload for DirectWorkload {
    fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    fn signal(&self, signal: i32) -> Result<(), String> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) on our own child, which is not reaped while this workload lives.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(format!("kill {pid}: {}", std::io::Error::last_os_error()))
        }
    }

    fn net_namespace(&self) -> Result<Option<PathBuf>, String> {
        Ok(None)
    }
}

impl Drop for DirectWorkload {
    fn drop(&mut self) {
        end_child(&mut self.child, Duration::ZERO);
    }
}

impl DirectFrontend {
    fn command(&self, inv: &Invocation<'_>) -> Result<Command, String> {
        let spec = &inv.case.spec;
        let served = inv.case.is_served();
        let mut cmd = Command::new(&self.wasmbay);
        cmd.arg(if served { "serve" } else { "run" })
            .arg("--engine")
            .arg(&self.engine);
        if !self.use_cache {
            cmd.arg("--no-cache");
        }
        if served {
            // A free port on the loopback, which `serve` names on its first stderr line. The
            // case's timeout bounds each request's guest code; the whole run is bounded by
            // the operations.
            cmd.arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--request-timeout-ms")
                .arg(inv.timeout.as_millis().to_string());
        } else {
            cmd.arg("--timeout-ms")
                .arg(inv.timeout.as_millis().to_string());
        }
        if let Some(limit) = spec.memory_limit {
            cmd.arg("--memory-limit").arg(limit.to_string());
        }
        if inv.case.needs_network() {
            cmd.arg("--inherit-network");
        }
        if let Some(root) = &inv.root {
            cmd.arg("--dir").arg(format!("{}::/", root.display()));
        }
        for (key, value) in &spec.env {
            cmd.arg("--env").arg(format!("{key}={value}"));
        }
        if served {
            // A handler is instantiated per request with no command line of its own.
            if !spec.args.is_empty() || spec.entrypoint.is_some() {
                return Err(
                    "a served component takes neither `args` nor an `entrypoint` (`wasmbay serve`)"
                        .into(),
                );
            }
            cmd.arg("--").arg(&inv.case.module);
        } else {
            let mut module = inv.case.module.display().to_string();
            if let Some(func) = &spec.entrypoint {
                module = format!("{module}#{func}");
            }
            cmd.arg("--").arg(module).args(&spec.args);
        }
        // Nothing of the runner's environment may reach the guest through the CLI either.
        cmd.env_clear();
        for key in ["PATH", "WASMBAY_CACHE_DIR", "RUST_LOG", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        Ok(cmd)
    }
}
