//! The waits for the processes the service started: each init and exec is reaped by a thread
//! of its own, which records the exit in the process's [`Lifecycle`](wasmbay_shim_core::lifecycle::Lifecycle)
//! and publishes it; and the OOM watch of each container.

use std::time::SystemTime;

use containerd_shim::protos::events::task::{TaskExit, TaskOOM};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics;

use wasmbay_shim_core::exit::code_of_wait_status;

use super::Service;
use crate::console::Console;

/// Waits for this process's child `pid` to end and gives its status; 255 when it cannot be
/// waited for (already reaped elsewhere: the status is lost).
fn reap(pid: i32) -> u32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only `status`, which outlives the call.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        if reaped == pid {
            match code_of_wait_status(status) {
                Some(code) => return code as u32,
                None => continue,
            }
        }
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        tracing::warn!(pid, error = %err, "cannot wait for task");
        return 255;
    }
}

impl Service {
    /// Waits for the init process of `id` (or its exec `exec_id`) in a thread of its own,
    /// records its exit and publishes TaskExit. Only the first exit recorded for a process is
    /// told; a task already deleted (a created one that was never started) is told too, as
    /// containerd still waits for its init's exit.
    pub(super) fn watch(&self, id: String, exec_id: Option<String>, pid: i32) {
        let service = self.clone();
        std::thread::spawn(move || {
            let code = reap(pid);
            service.drain_terminal(&id, exec_id.as_deref());
            let at = SystemTime::now();
            let recorded = {
                let mut tasks = service.lock();
                match tasks.get_mut(&id) {
                    None => true,
                    Some(task) => match &exec_id {
                        None => task.life.exited(code, at),
                        Some(exec_id) => task
                            .execs
                            .get_mut(exec_id)
                            .is_none_or(|exec| exec.life.exited(code, at)),
                    },
                }
            };
            service.inner.exited.notify_all();
            if !recorded {
                return;
            }
            let event = TaskExit {
                container_id: id.clone(),
                id: exec_id.unwrap_or(id),
                pid: pid as u32,
                exit_status: code,
                exited_at: MessageField::some(Timestamp::from(at)),
                ..Default::default()
            };
            service.publish(topics::TASK_EXIT_EVENT_TOPIC, event);
        });
    }

    /// A terminal's last output reaches its fifo before the exit is told (bounded: a child
    /// the process left may keep the terminal open).
    fn drain_terminal(&self, id: &str, exec_id: Option<&str>) {
        let drained = {
            let mut tasks = self.lock();
            tasks.get_mut(id).and_then(|task| {
                let console = match exec_id {
                    None => task.console.as_mut(),
                    Some(exec_id) => task.execs.get_mut(exec_id).and_then(|e| e.console.as_mut()),
                };
                console.and_then(Console::take_output_done)
            })
        };
        if let Some(done) = drained {
            if let Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                done.recv_timeout(crate::console::DRAIN_TIMEOUT)
            {
                tracing::debug!(id, "terminal output still open at exit (a child keeps it)");
            }
        }
    }

    /// Publishes TaskOOM whenever the kernel OOM-kills inside the container of task `id`.
    pub(super) fn watch_oom(&self, id: &str) {
        let service = self.clone();
        let container_id = id.to_string();
        let on_oom = Box::new(move || {
            let event = TaskOOM {
                container_id: container_id.clone(),
                ..Default::default()
            };
            service.publish(topics::TASK_OOM_EVENT_TOPIC, event);
        });
        let mut tasks = self.lock();
        let Some(task) = tasks.get_mut(id) else {
            return;
        };
        match task.container.watch_oom(on_oom) {
            Ok(handle) => task.oom_watch = handle,
            Err(e) => tracing::warn!(id, error = %e, "cannot watch for OOM"),
        }
    }
}
