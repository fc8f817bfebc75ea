//! Processes exec'd into a running task: `exec` registers one, `start` with its exec id makes
//! it through the containers' backend, `delete` with its exec id forgets it.

use std::path::{Path, PathBuf};

use containerd_shim::api;
use containerd_shim::protos::events::task::{TaskExecAdded, TaskExecStarted};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::TtrpcResult;

use super::errors::{already_exists, internal, invalid_argument, not_found, refused, rpc_error};
use super::{exec_of, exit_of, Service, Task};
use crate::containers::{ExecStartError, ExecTarget};
use crate::exec::ExecProc;

impl Service {
    /// Registers a process to exec into task `req.id`; `start` with its exec id makes it.
    pub(crate) fn exec(&self, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let _span =
            tracing::info_span!("task.exec", id = %req.id, exec_id = %req.exec_id).entered();
        let mut tasks = self.lock();
        let task = tasks.get_mut(&req.id).ok_or_else(|| not_found(&req.id))?;
        task.life.may_exec_in("exec in").map_err(refused)?;
        if task.execs.contains_key(&req.exec_id) {
            return Err(already_exists(format!(
                "exec {} of task {} already exists",
                req.exec_id, req.id
            )));
        }
        let (type_url, spec) = req
            .spec
            .as_ref()
            .map(|any| (any.type_url.as_str(), any.value.as_slice()))
            .unwrap_or_default();
        let exec = ExecProc::register(
            Path::new(&task.bundle),
            &req.id,
            &req.exec_id,
            type_url,
            spec,
            [&req.stdin, &req.stdout, &req.stderr],
            req.terminal,
        )
        .map_err(|e| invalid_argument(e.to_string()))?;
        task.execs.insert(req.exec_id.clone(), exec);
        drop(tasks);
        self.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: req.id,
                exec_id: req.exec_id,
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    /// Makes exec `exec_id` of task `id`, outside the task lock (a create takes milliseconds
    /// to seconds); the exec is marked as starting meanwhile, so a second start or a delete
    /// of it is refused.
    pub(super) fn start_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<api::StartResponse> {
        let target = {
            let mut tasks = self.lock();
            let task = tasks.get_mut(id).ok_or_else(|| not_found(id))?;
            task.life.may_exec_in("start an exec in").map_err(refused)?;
            let bundle = PathBuf::from(&task.bundle);
            let engine = task.engine.clone();
            let exec = task
                .execs
                .get_mut(exec_id)
                .ok_or_else(|| super::errors::exec_not_found(id, exec_id))?;
            exec.life.may_start().map_err(refused)?;
            if exec.starting {
                return Err(rpc_error(
                    Code::FAILED_PRECONDITION,
                    format!("exec {exec_id} of task {id} is already starting"),
                ));
            }
            exec.starting = true;
            ExecTarget {
                id: id.to_string(),
                bundle,
                engine,
                spec_file: exec.spec_file.clone(),
                stdio: [exec.stdin.clone(), exec.stdout.clone(), exec.stderr.clone()],
                terminal: exec.terminal,
            }
        };
        let started = match self.inner.containers.start_exec(target) {
            Ok(started) => started,
            Err(e) => {
                // containerd does not delete an exec whose start failed: it is gone now.
                let removed = self
                    .lock()
                    .get_mut(id)
                    .and_then(|t| t.execs.remove(exec_id));
                if let Some(exec) = removed {
                    exec.remove_files();
                }
                let message = format!("exec {exec_id} of task {id}: {e}");
                return Err(match e {
                    ExecStartError::Invalid(_) => invalid_argument(message),
                    ExecStartError::Failed(_) => internal(message),
                });
            }
        };
        let pid = started.pid;
        {
            let mut tasks = self.lock();
            if let Some(exec) = tasks.get_mut(id).and_then(|t| t.execs.get_mut(exec_id)) {
                exec.pid = pid as u32;
                exec.starting = false;
                exec.life.started();
                exec.console = started.console;
            }
        }
        self.watch(id.to_string(), Some(exec_id.to_string()), pid);
        self.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Signals a running exec; one that has not started or has ended gets nothing (runc's
    /// shim answers the same).
    pub(super) fn kill_exec(
        task: &Task,
        id: &str,
        exec_id: &str,
        signal: i32,
    ) -> TtrpcResult<api::Empty> {
        let exec = exec_of(task, id, exec_id)?;
        // Running only once `start_exec` has recorded the pid, under the same lock.
        if exec.life.phase() == wasmbay_shim_core::lifecycle::Phase::Running {
            // SAFETY: kill has no memory effects; the pid is this shim's unreaped child (its
            // watcher thread reaps it only after it exits, and then marks it stopped under
            // the task lock the caller holds), so it names no other process.
            if unsafe { libc::kill(exec.pid as i32, signal) } != 0 {
                return Err(internal(std::io::Error::last_os_error()));
            }
        }
        Ok(api::Empty::new())
    }

    /// Forgets an exec that has ended (or never started), answering its exit.
    pub(super) fn delete_exec(&self, id: &str, exec_id: &str) -> TtrpcResult<api::DeleteResponse> {
        let exec = {
            let mut tasks = self.lock();
            let task = tasks.get_mut(id).ok_or_else(|| not_found(id))?;
            let exec = exec_of(task, id, exec_id)?;
            exec.life.may_delete().map_err(refused)?;
            if exec.starting {
                return Err(rpc_error(
                    Code::FAILED_PRECONDITION,
                    format!("cannot delete exec {exec_id} of task {id}: it is starting"),
                ));
            }
            task.execs
                .remove(exec_id)
                .ok_or_else(|| super::errors::exec_not_found(id, exec_id))?
        };
        exec.remove_files();
        let (exit_status, exited_at) = exit_of(&exec.life, Timestamp::now());
        Ok(api::DeleteResponse {
            pid: exec.pid,
            exit_status,
            exited_at: MessageField::some(exited_at),
            ..Default::default()
        })
    }
}
