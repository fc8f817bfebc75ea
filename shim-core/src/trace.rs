//! Start-up traces: the timing of every closed `tracing` span, written as JSON lines.
//!
//! A container start crosses several processes (the shim's `start` action, the shim daemon,
//! the container's init). Each of them, when [`TRACE_DIR_ENV`] names a directory, appends its
//! spans to one file there, `trace.jsonl`, with wall-clock times, so a reader can put the
//! processes on one timeline. One `write` per line on an `O_APPEND` descriptor keeps lines
//! from different processes whole.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Names the directory that receives `trace.jsonl`. Tracing is off when it is unset or the
/// directory does not exist, so a benchmark can turn it on for one start without restarting
/// containerd.
pub const TRACE_DIR_ENV: &str = "WASMBAY_TRACE_DIR";

/// The file name inside the trace directory.
pub const TRACE_FILE: &str = "trace.jsonl";

/// The descriptor of this process's trace file, or -1.
static TRACE_FD: AtomicI32 = AtomicI32::new(-1);

/// The open trace file's descriptor, which code that closes inherited descriptors (a
/// container's init that never execs) must leave open.
pub fn trace_fd() -> Option<i32> {
    Some(TRACE_FD.load(Ordering::Relaxed)).filter(|fd| *fd >= 0)
}

/// One closed span as written to the trace file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpanRecord {
    pub name: String,
    /// Which program wrote it: `shim-start`, `shim`, `runtime`, …
    pub process: String,
    pub pid: u32,
    /// Microseconds since the Unix epoch.
    pub start_us: u64,
    pub end_us: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl SpanRecord {
    pub fn duration_us(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us)
    }
}

/// Reads every record of the trace file in `dir`, skipping lines that do not parse (a process
/// killed mid-write).
pub fn read_trace(dir: &Path) -> std::io::Result<Vec<SpanRecord>> {
    let text = std::fs::read_to_string(dir.join(TRACE_FILE))?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// A `tracing` layer that appends each closed span to the trace file.
pub struct SpanRecorder {
    file: File,
    process: String,
}

impl SpanRecorder {
    /// The recorder for `process` when [`TRACE_DIR_ENV`] is set and its file can be opened.
    pub fn from_env(process: &str) -> Option<SpanRecorder> {
        let dir = PathBuf::from(std::env::var_os(TRACE_DIR_ENV)?);
        if !dir.is_dir() {
            return None;
        }
        match SpanRecorder::open(&dir, process) {
            Ok(recorder) => Some(recorder),
            Err(e) => {
                // No subscriber is installed yet, so the error can only go to stderr.
                eprintln!("wasmbay: trace file in {}: {e}", dir.display());
                None
            }
        }
    }

    pub fn open(dir: &Path, process: &str) -> std::io::Result<SpanRecorder> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(TRACE_FILE))?;
        {
            use std::os::fd::AsRawFd;
            TRACE_FD.store(file.as_raw_fd(), Ordering::Relaxed);
        }
        Ok(SpanRecorder {
            file,
            process: process.to_string(),
        })
    }
}

/// What the recorder keeps in a span's extensions between its creation and its close.
struct Open {
    start_us: u64,
    fields: BTreeMap<String, String>,
}

struct FieldsVisitor<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl<S> Layer<S> for SpanRecorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = BTreeMap::new();
        attrs.record(&mut FieldsVisitor(&mut fields));
        span.extensions_mut().insert(Open {
            start_us: now_us(),
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(open) = extensions.get_mut::<Open>() {
            values.record(&mut FieldsVisitor(&mut open.fields));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let removed = span.extensions_mut().remove::<Open>();
        let Some(open) = removed else { return };
        let record = SpanRecord {
            name: span.name().to_string(),
            process: self.process.clone(),
            pid: std::process::id(),
            start_us: open.start_us,
            end_us: now_us(),
            fields: open.fields,
        };
        if let Ok(mut line) = serde_json::to_vec(&record) {
            line.push(b'\n');
            // `&File` writes without a lock; O_APPEND places the whole line at the end.
            let _ = (&self.file).write_all(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn closed_spans_are_written_with_their_fields_and_nesting_times() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = SpanRecorder::open(dir.path(), "test").unwrap();
        let subscriber = tracing_subscriber::registry().with(recorder);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("task.create", id = "c1");
            let _outer = outer.enter();
            let inner = tracing::info_span!("module.load", cached = true);
            inner.in_scope(|| std::thread::sleep(std::time::Duration::from_millis(2)));
        });
        let records = read_trace(dir.path()).unwrap();
        assert_eq!(records.len(), 2, "{records:?}");
        let inner = &records[0];
        let outer = &records[1];
        assert_eq!(inner.name, "module.load");
        assert_eq!(inner.fields.get("cached").map(String::as_str), Some("true"));
        assert_eq!(outer.name, "task.create");
        assert_eq!(outer.fields.get("id").map(String::as_str), Some("c1"));
        assert_eq!(outer.process, "test");
        assert!(inner.duration_us() > 0, "{inner:?}");
        assert!(outer.start_us <= inner.start_us && inner.end_us <= outer.end_us);
    }
}
