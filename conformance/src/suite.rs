//! Finding cases, running them through a frontend, collecting results.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::case::{Case, CaseError};
use crate::compare::{judge, Verdict};
use crate::fixture::copy_fixture;
use crate::operations::run_operations;
use crate::report::{CaseResult, Outcome};

/// What a frontend must run for one case.
#[derive(Debug)]
pub struct Invocation<'a> {
    pub case: &'a Case,
    /// Private copy of the root fixture, to preopen as `/`.
    pub root: Option<PathBuf>,
    /// A scratch directory owned by this run (bundles, logs…), removed afterwards.
    pub scratch: &'a Path,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
}

/// What the workload did, as a user of the frontend would see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A way to run a case: the direct CLI, an OCI runtime, containerd…
pub trait Frontend: Sync {
    fn name(&self) -> &str;
    /// Runs a case to its end with its whole stdin, capturing its output.
    fn run(&self, invocation: &Invocation<'_>) -> Result<Observed, String>;
    /// Starts a case and leaves it running, its standard streams piped to the runner, for an
    /// operation-based case (operations.rs) to talk to.
    fn spawn<'f>(&'f self, invocation: &Invocation<'_>) -> Result<Box<dyn Workload + 'f>, String>;
}

/// A workload a frontend started and the runner is talking to. Dropping it removes whatever
/// the frontend made for it (the container, its state).
pub trait Workload {
    /// The process the runner started (`wasmbay run`, `wasmbay-runtime run`, `ctr run`), with
    /// its standard streams still to be taken.
    fn child(&mut self) -> &mut std::process::Child;
    /// Sends `signal` to the guest, the way a user of this frontend would.
    fn signal(&self, signal: i32) -> Result<(), String>;
    /// The network namespace the guest runs in, when it is not the runner's own.
    fn net_namespace(&self) -> Result<Option<PathBuf>, String>;
}

/// Runs a runtime's control command (`kill`, `state`…) named `what` in messages; its stdout when
/// it succeeds, its stderr as the error when it does not.
pub fn run_checked(mut command: Command, what: &str) -> Result<Vec<u8>, String> {
    let output = command.output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The network namespace of process `pid`.
pub fn net_namespace_of(pid: u64) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

/// Ends a workload's process: waits up to `grace` for it (after its runtime was asked to stop
/// the guest), then kills it. Always reaps it, so nothing is left behind.
pub fn end_child(child: &mut std::process::Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    while let Ok(None) = child.try_wait() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `command` with its three standard streams piped.
pub fn spawn_piped(mut command: Command) -> Result<std::process::Child, String> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))
}

/// Lists the cases in `dir`: every `.wasm`/`.wat` file, with its `.json` spec when present.
pub fn discover(dir: &Path) -> Result<Vec<Case>, CaseError> {
    let read_err = |source| CaseError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let suite = suite_name(dir);
    let mut modules: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm" || e == "wat"))
        .collect();
    modules.sort();
    modules.iter().map(|m| Case::load(&suite, m)).collect()
}

/// A short, readable suite name: the path from the first `tests`/`conformance` component on.
fn suite_name(dir: &Path) -> String {
    let parts: Vec<String> = dir
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let start = parts
        .iter()
        .rposition(|p| p == "tests" || p == "conformance")
        .map(|i| i + 1)
        .unwrap_or(parts.len().saturating_sub(1));
    parts[start.min(parts.len().saturating_sub(1))..].join("/")
}

/// How a run of cases is paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Cases run at once.
    pub jobs: usize,
    /// Every case's timeout is multiplied by this (at least 1): under emulation a guest runs
    /// several times slower than the case's author measured, and a timeout that cuts a correct
    /// run short is the machine's verdict, not the engine's.
    pub timeout_scale: f64,
}

/// Runs `cases` at `pace`, calling `on_result` as each finishes (in completion order).
pub fn run_cases(
    frontend: &dyn Frontend,
    cases: &[Case],
    pace: Pace,
    on_result: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    let jobs = pace.jobs;
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(cases.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(index) else { break };
                let result = run_one(frontend, case, pace.timeout_scale);
                on_result(&result);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((index, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn run_one(frontend: &dyn Frontend, case: &Case, timeout_scale: f64) -> CaseResult {
    let started = Instant::now();
    let outcome = (|| {
        let scratch = tempfile::Builder::new()
            .prefix("wasmbay-case-")
            .tempdir()
            .map_err(|e| format!("cannot create scratch dir: {e}"))?;
        let root = match &case.root {
            Some(fixture) => {
                let copy = scratch.path().join("root");
                copy_fixture(fixture, &copy)
                    .map_err(|e| format!("cannot copy fixture {}: {e}", fixture.display()))?;
                Some(copy)
            }
            None => None,
        };
        let invocation = Invocation {
            case,
            root,
            scratch: scratch.path(),
            stdin: case.spec.stdin.clone().unwrap_or_default().into_bytes(),
            timeout: Duration::from_millis(case.timeout_ms()).mul_f64(timeout_scale.max(1.0)),
        };
        if let Some(operations) = &case.spec.operations {
            return run_operations(frontend, &invocation, operations);
        }
        let observed = frontend.run(&invocation)?;
        Ok::<_, String>(match judge(&case.spec, &observed) {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail(problems) => Outcome::Fail(problems.join("; ")),
        })
    })()
    .unwrap_or_else(|e| Outcome::Fail(format!("frontend error: {e}")));
    CaseResult {
        id: case.id.clone(),
        module: case.module.clone(),
        outcome,
        duration: started.elapsed(),
    }
}

/// Runs a prepared command with `stdin`, capturing stdout and stderr. The frontend under test
/// is expected to enforce the case timeout itself; `hard_limit` only guards the runner against
/// a frontend that hangs, and such a run is an error, never a pass.
pub fn run_process(
    command: Command,
    stdin: &[u8],
    hard_limit: Duration,
) -> Result<Observed, String> {
    run_process_with_timeout(command, stdin, None, hard_limit)
}

/// How soon a refused timeout kill is tried again.
pub const KILL_RETRY: Duration = Duration::from_millis(100);

/// Like [`run_process`], and when `timeout` is `(after, action)` runs `action` once the process
/// has run for `after` (a frontend that cannot enforce the case timeout itself asks the runtime
/// to kill the workload there). `action` answers whether the kill was delivered; on a slow
/// machine the container may not exist yet at `after`, so a refused kill is tried again
/// every [`KILL_RETRY`]. The process must still end within `hard_limit`.
pub fn run_process_with_timeout(
    mut command: Command,
    stdin: &[u8],
    timeout: Option<(Duration, &dyn Fn() -> bool)>,
    hard_limit: Duration,
) -> Result<Observed, String> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = format!("{:?}", command.get_program());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let mut input = child.stdin.take();
    let input_bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(pipe) = input.as_mut() {
            // The guest may exit without reading; a broken pipe is not the runner's problem.
            let _ = pipe.write_all(&input_bytes);
        }
        drop(input);
    });
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(pipe) = out.as_mut() {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(pipe) = err.as_mut() {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    });
    let started = Instant::now();
    let deadline = started + hard_limit;
    let mut timeout = timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if timeout.is_some_and(|(after, _)| started.elapsed() >= after) => {
                if let Some((_, action)) = timeout.take() {
                    if !action() {
                        timeout = Some((started.elapsed() + KILL_RETRY, action));
                    }
                }
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not finish within {} ms",
                    hard_limit.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    let exit_code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    };
    Ok(Observed {
        exit_code,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_are_short() {
        assert_eq!(
            suite_name(Path::new(
                "../shared/conformance/wasi-testsuite/tests/c/testsuite/wasm32-wasip1"
            )),
            "c/testsuite/wasm32-wasip1"
        );
        assert_eq!(suite_name(Path::new("conformance/corpus")), "corpus");
        assert_eq!(suite_name(Path::new("/tmp/x/cases")), "cases");
    }

    #[test]
    fn process_capture_reports_signals_as_128_plus_n() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo err >&2; kill -TERM $$"]);
        let observed = run_process(cmd, b"in", Duration::from_secs(10)).unwrap();
        assert_eq!(observed.stdout, b"in");
        assert_eq!(observed.stderr, b"err\n");
        assert_eq!(observed.exit_code, 143);
    }

    #[test]
    fn hung_process_is_an_error() {
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        let err = run_process(cmd, b"", Duration::from_millis(100)).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
    }
}
