//! The life of one process a frontend runs (a container's init, or a process exec'd into it),
//! as a state machine that does no I/O.
//!
//! The shim keeps one [`Lifecycle`] per init and per exec and asks it before doing the system
//! work, so what the task API allows in each phase is decided here, and tested here:
//!
//! ```text
//!   create ──► Created ──start──► Running ──exit──► Stopped ──delete──► (gone)
//!                 │                 │  ▲               ▲
//!                 │             pause  resume          │
//!                 │                 ▼  │               │
//!                 │               Paused ──exit────────┤
//!                 └──────────────exit (killed)─────────┘
//! ```
//!
//! The rules are runc's shim's: a running or paused process is not deleted (containerd kills
//! and waits first), an exit is recorded once (the first report wins, later ones are the same
//! process seen twice), a stopped process is not started, paused or updated again, and a kill
//! of a stopped process is a no-op.

use std::time::SystemTime;

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Made, waiting for `start` (an init), or registered (an exec).
    Created,
    Running,
    /// Frozen by `pause` (the cgroup freezer) until `resume`.
    Paused,
    Stopped,
}

impl Phase {
    /// The task API's word for the phase, as containerd prints it.
    pub fn word(self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Stopped => "stopped",
        }
    }
}

/// How a process ended: its status as containerd reports it (128 + signal for a signal) and
/// when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The request is not allowed in the process's phase.
    #[error("cannot {op} {what}: it is {}, not {needed}", phase.word())]
    Refused {
        /// The process, as the error names it (`task c1`, `exec e1 of task c1`).
        what: String,
        op: &'static str,
        phase: Phase,
        needed: &'static str,
    },
}

/// What a kill that the machine accepted asks of the frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPlan {
    /// Signal the process; when `thaw` is set it is paused and the signal is SIGKILL, so thaw
    /// it after signalling (a frozen process acts on no signal) and call [`Lifecycle::thawed`].
    Signal { thaw: bool },
    /// It has already ended: nothing to do, and no error (runc's shim answers the same).
    AlreadyStopped,
}

/// One process's phase and exit.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    what: String,
    phase: Phase,
    exit: Option<Exit>,
}

/// SIGKILL's number, which needs no libc here.
const SIGKILL: i32 = 9;

impl Lifecycle {
    /// A new process in phase [`Phase::Created`]; `what` names it in refusals.
    pub fn new(what: impl Into<String>) -> Lifecycle {
        Lifecycle {
            what: what.into(),
            phase: Phase::Created,
            exit: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The exit, once recorded.
    pub fn exit(&self) -> Option<Exit> {
        self.exit
    }

    fn refuse(&self, op: &'static str, needed: &'static str) -> LifecycleError {
        LifecycleError::Refused {
            what: self.what.clone(),
            op,
            phase: self.phase,
            needed,
        }
    }

    fn require(&self, phase: Phase, op: &'static str) -> Result<(), LifecycleError> {
        if self.phase == phase {
            Ok(())
        } else {
            Err(self.refuse(op, phase.word()))
        }
    }

    /// Whether `start` may run the process: only once, from [`Phase::Created`].
    pub fn may_start(&self) -> Result<(), LifecycleError> {
        self.require(Phase::Created, "start")
    }

    /// Records a successful start. The process may have been seen to exit already (a kill
    /// raced the start), and then stays stopped.
    pub fn started(&mut self) {
        if self.phase == Phase::Created {
            self.phase = Phase::Running;
        }
    }

    /// Records the exit. Only the first report counts; returns whether this one did.
    pub fn exited(&mut self, status: u32, at: SystemTime) -> bool {
        if self.exit.is_some() {
            return false;
        }
        self.exit = Some(Exit { status, at });
        self.phase = Phase::Stopped;
        true
    }

    /// Whether the process may be frozen (`pause`): it must be running.
    pub fn may_pause(&self) -> Result<(), LifecycleError> {
        self.require(Phase::Running, "pause")
    }

    /// Records a successful freeze.
    pub fn paused(&mut self) {
        if self.phase == Phase::Running {
            self.phase = Phase::Paused;
        }
    }

    /// Whether the process may be thawed (`resume`): it must be paused.
    pub fn may_resume(&self) -> Result<(), LifecycleError> {
        self.require(Phase::Paused, "resume")
    }

    /// Records a thaw, by `resume` or after a kill's [`KillPlan::Signal`] with `thaw`.
    pub fn thawed(&mut self) {
        if self.phase == Phase::Paused {
            self.phase = Phase::Running;
        }
    }

    /// What a kill with `signal` takes now.
    pub fn kill(&self, signal: i32) -> KillPlan {
        match self.phase {
            Phase::Stopped => KillPlan::AlreadyStopped,
            Phase::Paused => KillPlan::Signal {
                thaw: signal == SIGKILL,
            },
            Phase::Created | Phase::Running => KillPlan::Signal { thaw: false },
        }
    }

    /// Whether something may be exec'd into the process, or an exec of it started: it must
    /// be running.
    pub fn may_exec_in(&self, op: &'static str) -> Result<(), LifecycleError> {
        self.require(Phase::Running, op)
    }

    /// Whether the process's resources may change: it must not have ended.
    pub fn may_update(&self) -> Result<(), LifecycleError> {
        if self.phase == Phase::Stopped {
            Err(self.refuse("update", "created, running or paused"))
        } else {
            Ok(())
        }
    }

    /// Whether the process may be deleted: never started, or ended. A running or paused
    /// one is killed and waited for first (containerd does so, `ctr task delete --force`
    /// included).
    pub fn may_delete(&self) -> Result<(), LifecycleError> {
        match self.phase {
            Phase::Created | Phase::Stopped => Ok(()),
            Phase::Running | Phase::Paused => Err(self.refuse("delete", "created or stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    #[test]
    fn a_normal_life() {
        let mut task = Lifecycle::new("task c1");
        assert_eq!(task.phase(), Phase::Created);
        task.may_start().unwrap();
        task.started();
        assert_eq!(task.phase(), Phase::Running);
        assert_eq!(task.kill(15), KillPlan::Signal { thaw: false });
        assert!(task.exited(143, at(1)));
        assert_eq!(task.exit().map(|e| e.status), Some(143));
        task.may_delete().unwrap();
    }

    #[test]
    fn an_exit_is_recorded_once() {
        let mut task = Lifecycle::new("task c1");
        task.started();
        assert!(task.exited(3, at(1)));
        assert!(!task.exited(0, at(2)));
        assert_eq!(
            task.exit(),
            Some(Exit {
                status: 3,
                at: at(1)
            })
        );
    }

    #[test]
    fn a_running_or_paused_task_is_not_deleted() {
        let mut task = Lifecycle::new("task c3");
        task.may_delete().unwrap();
        task.started();
        let err = task.may_delete().unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot delete task c3: it is running, not created or stopped"
        );
        task.may_pause().unwrap();
        task.paused();
        assert!(task.may_delete().is_err());
    }

    #[test]
    fn pause_and_resume_only_from_their_phases() {
        let mut task = Lifecycle::new("task c4");
        assert!(task.may_pause().is_err());
        task.started();
        assert!(task.may_resume().is_err());
        task.paused();
        let err = task.may_pause().unwrap_err().to_string();
        assert!(err.contains("it is paused, not running"), "{err}");
        task.may_resume().unwrap();
        task.thawed();
        assert_eq!(task.phase(), Phase::Running);
    }

    #[test]
    fn a_paused_task_is_thawed_after_sigkill_only() {
        let mut task = Lifecycle::new("task c5");
        task.started();
        task.paused();
        assert_eq!(task.kill(15), KillPlan::Signal { thaw: false });
        assert_eq!(task.kill(9), KillPlan::Signal { thaw: true });
    }

    #[test]
    fn an_ended_process_is_not_started_updated_or_killed_again() {
        let mut task = Lifecycle::new("task c6");
        // Killed before it was started: the exit comes from the created phase.
        assert!(task.exited(137, at(1)));
        assert!(task.may_start().is_err());
        assert!(task.may_update().is_err());
        assert!(task.may_exec_in("exec in").is_err());
        assert_eq!(task.kill(9), KillPlan::AlreadyStopped);
        // A start that raced the exit does not revive it.
        task.started();
        assert_eq!(task.phase(), Phase::Stopped);
        task.may_delete().unwrap();
    }
}
