//! Turning the end of a guest call into an [`ExitStatus`].

use wasmbay_shim_core::{EngineError, ExitStatus, StopHandle};
use wasmer_wasix::{WasiError, WasiRuntimeError, WasiThreadError};

const SIGKILL: i32 = 9;

/// Classifies the error that ended a guest call.
///
/// A requested stop wins over whatever the call reports: wasix ends a blocking call woken by
/// the stop with an ordinary exit code, which must not be mistaken for the guest's own.
pub(crate) fn classify(error: wasmer::RuntimeError, stop: &StopHandle) -> ExitStatus {
    if let Some(signal) = stop.requested() {
        return ExitStatus::Killed(signal);
    }
    if let Some(WasiError::Exit(code)) = error.downcast_ref::<WasiError>() {
        return ExitStatus::Exited(code.raw());
    }
    if error.clone().to_trap() == Some(wasmer::sys::vm::TrapCode::HostInterrupt) {
        // Only a stop interrupts a store; the request was seen above unless it raced.
        return ExitStatus::Killed(SIGKILL);
    }
    ExitStatus::Trapped(one_line(&error.message()))
}

/// Classifies a failed instantiation: a trap in the start function or `_initialize` ended
/// the program like any trap; anything else (a missing import, a memory over the limit) means
/// the module could not be set up.
pub(crate) fn classify_instantiation(
    error: WasiRuntimeError,
    stop: &StopHandle,
) -> Result<ExitStatus, EngineError> {
    if let Some(signal) = stop.requested() {
        return Ok(ExitStatus::Killed(signal));
    }
    if let Some(code) = error.as_exit_code() {
        return Ok(ExitStatus::Exited(code.raw()));
    }
    match error {
        WasiRuntimeError::Runtime(trap) => Ok(classify(trap, stop)),
        WasiRuntimeError::Instantiation(wasmer::InstantiationError::Start(trap)) => {
            Ok(classify(trap, stop))
        }
        WasiRuntimeError::Thread(WasiThreadError::InstanceCreateFailed(inner)) => match *inner {
            wasmer::InstantiationError::Start(trap) => Ok(classify(trap, stop)),
            other => Err(EngineError::Instantiate(one_line(&other.to_string()))),
        },
        WasiRuntimeError::Init(e) => Err(EngineError::WasiSetup(one_line(&e.to_string()))),
        other => Err(EngineError::Instantiate(one_line(&other.to_string()))),
    }
}

/// Why a run failed after wasix's environment was made and before the entrypoint ran.
pub(crate) enum SetupError {
    /// wasix could not provide what the module needs.
    Wasi(String),
    /// The module could not be instantiated (a missing import, a memory over the limit…).
    Instantiate(String),
    /// From `Instance::new`: its start function may have trapped or exited.
    Instantiation(wasmer::InstantiationError),
    /// `_initialize` trapped or exited.
    Trap(wasmer::RuntimeError),
}

/// Classifies a [`SetupError`] like [`classify_instantiation`] does wasix's own errors.
pub(crate) fn classify_setup(
    error: SetupError,
    stop: &StopHandle,
) -> Result<ExitStatus, EngineError> {
    if let Some(signal) = stop.requested() {
        return Ok(ExitStatus::Killed(signal));
    }
    match error {
        SetupError::Wasi(e) => Err(EngineError::WasiSetup(one_line(&e))),
        SetupError::Instantiate(e) => Err(EngineError::Instantiate(one_line(&e))),
        SetupError::Instantiation(wasmer::InstantiationError::Start(trap))
        | SetupError::Trap(trap) => Ok(classify(trap, stop)),
        SetupError::Instantiation(other) => {
            Err(EngineError::Instantiate(one_line(&other.to_string())))
        }
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
