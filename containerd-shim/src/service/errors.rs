//! The task API's error answers, with the ttrpc codes containerd maps to its own errors.

use containerd_shim::protos::ttrpc::{get_status, Code, Error};
use wasmbay_shim_core::lifecycle::LifecycleError;

pub(super) fn rpc_error(code: Code, message: String) -> Error {
    Error::RpcStatus(get_status(code, message))
}

pub(super) fn internal(e: impl std::fmt::Display) -> Error {
    rpc_error(Code::INTERNAL, format!("{e:#}"))
}

/// UNIMPLEMENTED rather than the generated NOT_FOUND default, which containerd would read as
/// "no such process".
pub(super) fn unsupported(what: &str) -> Error {
    rpc_error(
        Code::UNIMPLEMENTED,
        format!("wasmbay shim: {what} is not supported"),
    )
}

pub(super) fn invalid_argument(message: String) -> Error {
    rpc_error(Code::INVALID_ARGUMENT, message)
}

pub(super) fn not_found(id: &str) -> Error {
    rpc_error(Code::NOT_FOUND, format!("task {id} not found"))
}

pub(super) fn exec_not_found(id: &str, exec_id: &str) -> Error {
    rpc_error(
        Code::NOT_FOUND,
        format!("exec {exec_id} of task {id} not found"),
    )
}

pub(super) fn already_exists(message: String) -> Error {
    rpc_error(Code::ALREADY_EXISTS, message)
}

/// FAILED_PRECONDITION for a request the process's phase does not allow (containerd maps it
/// to its "failed precondition" error, as for runc's shim).
pub(super) fn refused(e: LifecycleError) -> Error {
    rpc_error(Code::FAILED_PRECONDITION, e.to_string())
}
