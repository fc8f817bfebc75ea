//! Turning the result of a guest call into an [`ExitStatus`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wasmbay_shim_core::{EngineError, ExitStatus, StopHandle, StopMode};

/// Error raised from the epoch callback when the run was asked to stop.
#[derive(Debug)]
pub(crate) struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stopped {}

/// Arms `stop` for a store: the waker sets a flag and bumps the engine epoch, which makes every
/// running store call its epoch callback; only the store whose flag is set gives up. Without
/// epochs ([`StopMode::ExitProcess`]) nothing is armed and the process owner ends the guest.
/// A stop that came before the run means no guest code runs, whether or not the stop could
/// interrupt it: the status to report at once is returned then.
pub(crate) fn arm_stop<T: 'static>(
    engine: &wasmtime::Engine,
    mode: StopMode,
    store: &mut wasmtime::Store<T>,
    stop: &StopHandle,
) -> Option<ExitStatus> {
    if let Some(signal) = stop.requested() {
        return Some(ExitStatus::Killed(signal));
    }
    if mode == StopMode::ExitProcess {
        return None;
    }
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if seen.load(Ordering::SeqCst) {
            Err(wasmtime::Error::new(Stopped))
        } else {
            Ok(wasmtime::UpdateDeadline::Continue(1))
        }
    });
    let engine = engine.clone();
    stop.set_waker(move || {
        flag.store(true, Ordering::SeqCst);
        engine.increment_epoch();
    });
    None
}

/// Classifies the error that ended a guest call.
pub(crate) fn classify(
    error: wasmtime::Error,
    stop: &StopHandle,
) -> Result<ExitStatus, EngineError> {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Ok(ExitStatus::Exited(exit.0));
    }
    if error.is::<Stopped>() {
        return Ok(ExitStatus::Killed(
            stop.requested().unwrap_or(libc_sigkill()),
        ));
    }
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        let message = trap.to_string();
        let message = message.strip_prefix("wasm trap: ").unwrap_or(&message);
        return Ok(ExitStatus::Trapped(one_line(message)));
    }
    // Host functions fail with plain errors (e.g. a WASI call that cannot continue); to the
    // guest that is still an abnormal end of the program, reported like a trap. The root cause
    // says what went wrong; the outer layers only add a backtrace.
    Ok(ExitStatus::Trapped(one_line(
        &error.root_cause().to_string(),
    )))
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

const fn libc_sigkill() -> i32 {
    9
}
