//! runc-style logging: `--log FILE --log-format json` writes one JSON object per line with
//! `level`, `msg` and `time`, which containerd's runc shim reads to report the cause of a
//! failed command.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

pub fn init(log: Option<&Path>, format: Option<&str>, debug: bool) -> Result<()> {
    // Without a log file, messages share stderr with the container's own output (the init
    // process inherits it), so only errors go there.
    let level = match (debug, log.is_some()) {
        (true, _) => "debug",
        (false, true) => "warn",
        (false, false) => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false);
    let json = match format {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => bail!("--log-format {other:?}: expected text or json"),
    };
    match log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("{}", path.display()))?;
            let writer = Mutex::new(file);
            if json {
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(writer)
                    .init();
            } else {
                builder.with_writer(writer).init();
            }
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
