//! How the end of a wasm program becomes a process exit code.
//!
//! Containers report one number, so every way a workload can end needs a code that can be told
//! apart from the others:
//!
//! | outcome                          | code            |
//! |----------------------------------|-----------------|
//! | `proc_exit(n)` / return from main | `n & 0xff`      |
//! | wasm trap                        | [`TRAP_EXIT_CODE`] (251) |
//! | stopped by signal `n`            | `128 + n` (SIGKILL 137, SIGTERM 143, SIGINT 130) |
//!
//! 251 sits above the signal range (129..=192 for signals 1..=64) so that a trap is never
//! mistaken for a kill. Errors that happen before the program runs (missing file, bad module,
//! unknown export) have their own codes, listed in [`crate::engine::EngineError::exit_code`].

use std::fmt;

/// Exit code reported when the guest traps (unreachable, out-of-bounds access, stack overflow…).
pub const TRAP_EXIT_CODE: i32 = 251;

/// How a wasm program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The program exited on its own, with this WASI exit code.
    Exited(i32),
    /// The program trapped; the message is the engine's description of the trap.
    Trapped(String),
    /// The program was stopped from outside with this signal number.
    Killed(i32),
}

impl ExitStatus {
    /// The process exit code that represents this status (see the module docs).
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code & 0xff,
            ExitStatus::Trapped(_) => TRAP_EXIT_CODE,
            ExitStatus::Killed(signal) => 128 + signal,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::Trapped(msg) => write!(f, "wasm trap: {msg}"),
            ExitStatus::Killed(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// The code of a process that a `waitpid` status reports as ended, by the table above
/// (`128 + n` for signal `n`); `None` for a stop or continue report, after which it still lives.
pub fn code_of_wait_status(status: libc::c_int) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_become_exit_codes() {
        // The encodings of <sys/wait.h>: exit code in the second byte, signal in the first.
        assert_eq!(code_of_wait_status(3 << 8), Some(3));
        assert_eq!(code_of_wait_status(0), Some(0));
        assert_eq!(code_of_wait_status(libc::SIGKILL), Some(137));
        assert_eq!(code_of_wait_status(libc::SIGTERM), Some(143));
        // Stopped by SIGSTOP: still alive.
        assert_eq!(code_of_wait_status((libc::SIGSTOP << 8) | 0x7f), None);
    }

    #[test]
    fn codes_never_collide_between_traps_and_signals() {
        assert_eq!(ExitStatus::Exited(42).code(), 42);
        assert_eq!(ExitStatus::Exited(256 + 3).code(), 3);
        assert_eq!(ExitStatus::Killed(libc::SIGKILL).code(), 137);
        assert_eq!(ExitStatus::Killed(libc::SIGTERM).code(), 143);
        assert_eq!(ExitStatus::Killed(libc::SIGINT).code(), 130);
        let trap = ExitStatus::Trapped("unreachable".into()).code();
        for signal in 1..=64 {
            assert_ne!(trap, ExitStatus::Killed(signal).code());
        }
    }
}
