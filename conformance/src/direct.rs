//! The direct frontend: each case through `wasmbay run`, the way a user runs a module by hand.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::suite::{run_process, Frontend, Invocation, Observed};

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
        let spec = &inv.case.spec;
        let mut cmd = Command::new(&self.wasmbay);
        cmd.arg("run").arg("--engine").arg(&self.engine);
        if !self.use_cache {
            cmd.arg("--no-cache");
        }
        cmd.arg("--timeout-ms")
            .arg(inv.timeout.as_millis().to_string());
        if let Some(limit) = spec.memory_limit {
            cmd.arg("--memory-limit").arg(limit.to_string());
        }
        if let Some(root) = &inv.root {
            cmd.arg("--dir").arg(format!("{}::/", root.display()));
        }
        for (key, value) in &spec.env {
            cmd.arg("--env").arg(format!("{key}={value}"));
        }
        let mut module = inv.case.module.display().to_string();
        if let Some(func) = &spec.entrypoint {
            module = format!("{module}#{func}");
        }
        cmd.arg("--").arg(module).args(&spec.args);
        // Nothing of the runner's environment may reach the guest through the CLI either.
        cmd.env_clear();
        for key in ["PATH", "WASMBAY_CACHE_DIR", "RUST_LOG", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        run_process(cmd, &inv.stdin, inv.timeout + Duration::from_secs(10))
    }
}
