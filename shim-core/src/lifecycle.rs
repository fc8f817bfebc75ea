//! The sandbox lifecycle as an explicit state machine.
//!
//! Frontends (OCI runtime, containerd shim) keep one [`Sandbox`] per container and ask it
//! whether an operation is allowed before doing the system work; the machine itself does no
//! I/O, so every transition is unit-tested here.
//!
//! ```text
//!   create ──► Created ──start──► Running ──exit──► Stopped ──delete──► (gone)
//!                 │                   │                ▲
//!                 └──────kill─────────┴──(kill: signal)┘
//! ```
//! A kill before start stops the sandbox without ever running it (exit 128+signal), as runc
//! does; deleting a running sandbox is refused unless forced, in which case the frontend must
//! kill it first.

use std::time::SystemTime;

/// Where a sandbox is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Created,
    Running {
        pid: u32,
        started_at: SystemTime,
    },
    Stopped {
        exit_code: i32,
        exited_at: SystemTime,
    },
}

impl State {
    /// The status word of the OCI runtime spec `state` output.
    pub fn status(&self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running { .. } => "running",
            State::Stopped { .. } => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("sandbox {id}: cannot {op} while {status}")]
    InvalidTransition {
        id: String,
        op: &'static str,
        status: &'static str,
    },
}

/// What a frontend must do to carry out a kill that the machine accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillAction {
    /// Deliver the signal to the running workload.
    Signal(i32),
    /// The workload never started: it is now stopped; release what `create` set up.
    StoppedBeforeStart,
}

/// What a frontend must do to carry out a delete that the machine accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteAction {
    /// Release resources; nothing is running.
    Release,
    /// Forced delete of a running sandbox: kill it (SIGKILL), wait, then release.
    KillThenRelease,
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    id: String,
    state: State,
    created_at: SystemTime,
}

impl Sandbox {
    pub fn new(id: impl Into<String>) -> Sandbox {
        Sandbox {
            id: id.into(),
            state: State::Created,
            created_at: SystemTime::now(),
        }
    }

    /// Rebuilds a sandbox from persisted state (frontends that keep state on disk).
    pub fn restore(id: impl Into<String>, state: State, created_at: SystemTime) -> Sandbox {
        Sandbox {
            id: id.into(),
            state,
            created_at,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self.state {
            State::Stopped { exit_code, .. } => Some(exit_code),
            _ => None,
        }
    }

    fn refuse(&self, op: &'static str) -> LifecycleError {
        LifecycleError::InvalidTransition {
            id: self.id.clone(),
            op,
            status: self.state.status(),
        }
    }

    /// Records that the workload process `pid` now runs.
    pub fn start(&mut self, pid: u32) -> Result<(), LifecycleError> {
        match self.state {
            State::Created => {
                self.state = State::Running {
                    pid,
                    started_at: SystemTime::now(),
                };
                Ok(())
            }
            _ => Err(self.refuse("start")),
        }
    }

    /// Records that the workload ended with `exit_code`. Repeated reports keep the first.
    pub fn exited(&mut self, exit_code: i32) -> Result<(), LifecycleError> {
        match self.state {
            State::Running { .. } => {
                self.state = State::Stopped {
                    exit_code,
                    exited_at: SystemTime::now(),
                };
                Ok(())
            }
            State::Stopped { .. } => Ok(()),
            State::Created => Err(self.refuse("exit")),
        }
    }

    /// Decides what a kill with `signal` means in the current state.
    pub fn kill(&mut self, signal: i32) -> Result<KillAction, LifecycleError> {
        match self.state {
            State::Created => {
                self.state = State::Stopped {
                    exit_code: 128 + signal,
                    exited_at: SystemTime::now(),
                };
                Ok(KillAction::StoppedBeforeStart)
            }
            State::Running { .. } => Ok(KillAction::Signal(signal)),
            State::Stopped { .. } => Err(self.refuse("kill")),
        }
    }

    /// Decides whether the sandbox may be deleted now.
    pub fn delete(&self, force: bool) -> Result<DeleteAction, LifecycleError> {
        match (&self.state, force) {
            (State::Created | State::Stopped { .. }, _) => Ok(DeleteAction::Release),
            (State::Running { .. }, true) => Ok(DeleteAction::KillThenRelease),
            (State::Running { .. }, false) => Err(self.refuse("delete")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_life() {
        let mut sb = Sandbox::new("c1");
        assert_eq!(sb.state().status(), "created");
        sb.start(42).unwrap();
        assert!(matches!(sb.state(), State::Running { pid: 42, .. }));
        assert_eq!(sb.kill(15).unwrap(), KillAction::Signal(15));
        sb.exited(143).unwrap();
        sb.exited(0).unwrap();
        assert_eq!(sb.exit_code(), Some(143));
        assert_eq!(sb.delete(false).unwrap(), DeleteAction::Release);
    }

    #[test]
    fn kill_before_start_stops_without_running() {
        let mut sb = Sandbox::new("c2");
        assert_eq!(sb.kill(9).unwrap(), KillAction::StoppedBeforeStart);
        assert_eq!(sb.exit_code(), Some(137));
        assert!(sb.start(1).is_err());
        assert!(sb.kill(9).is_err());
    }

    #[test]
    fn delete_of_running_needs_force() {
        let mut sb = Sandbox::new("c3");
        assert_eq!(sb.delete(false).unwrap(), DeleteAction::Release);
        sb.start(7).unwrap();
        let err = sb.delete(false).unwrap_err();
        assert_eq!(err.to_string(), "sandbox c3: cannot delete while running");
        assert_eq!(sb.delete(true).unwrap(), DeleteAction::KillThenRelease);
    }

    #[test]
    fn invalid_transitions_are_refused() {
        let mut sb = Sandbox::new("c4");
        assert!(sb.exited(0).is_err());
        sb.start(1).unwrap();
        assert!(sb.start(1).is_err());
        sb.exited(3).unwrap();
        assert!(sb.start(1).is_err());
        assert!(sb.kill(15).is_err());
        assert_eq!(sb.exit_code(), Some(3));
    }
}
