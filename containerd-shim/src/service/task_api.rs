//! The task API on inits, called by `rpc::TaskRpc` on a blocking thread for each request:
//! the containers' system calls and the waits on exits are synchronous. Each request asks
//! the task's [`Lifecycle`] first, then its container.

use std::collections::HashMap;

use containerd_shim::api;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{EnumOrUnknown, MessageField};
use containerd_shim::protos::topics;
use containerd_shim::TtrpcResult;
use wasmbay_shim_core::lifecycle::{KillPlan, Lifecycle};

use super::errors::{already_exists, internal, invalid_argument, not_found, refused, unsupported};
use super::{console_of, exec_of, exit_of, status_of, Service, Task};

impl Service {
    pub(crate) fn create(
        &self,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        let _span = tracing::info_span!("task.create", id = %req.id).entered();
        tracing::debug!(id = %req.id, bundle = %req.bundle, stdin = %req.stdin, stdout = %req.stdout, "create");
        if self.lock().contains_key(&req.id) {
            return Err(already_exists(format!("task {} already exists", req.id)));
        }
        self.count_create();
        let created = self.inner.containers.create(&req).map_err(internal)?;
        let pid = created.pid as u32;
        self.lock().insert(
            req.id.clone(),
            Task {
                container: created.container,
                bundle: req.bundle.clone(),
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                pid,
                life: Lifecycle::new(format!("task {}", req.id)),
                engine: created.engine,
                execs: HashMap::new(),
                console: created.console,
                oom_watch: None,
            },
        );
        self.watch(req.id.clone(), None, created.pid);
        self.watch_oom(&req.id);
        self.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                pid,
                ..Default::default()
            },
        );
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    pub(crate) fn start(&self, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        let _span = tracing::info_span!("task.start", id = %req.id).entered();
        tracing::debug!(id = %req.id, exec_id = %req.exec_id, "start");
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id);
        }
        let pid = self.with_task(&req.id, |task| {
            task.life.may_start().map_err(refused)?;
            task.container.start().map_err(internal)?;
            task.life.started();
            Ok(task.pid)
        })?;
        self.publish(
            topics::TASK_START_EVENT_TOPIC,
            TaskStart {
                container_id: req.id.clone(),
                pid,
                ..Default::default()
            },
        );
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    pub(crate) fn state(&self, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        let tasks = self.lock();
        let task = tasks.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        if !req.exec_id.is_empty() {
            let exec = exec_of(task, &req.id, &req.exec_id)?;
            let (exit_status, exited_at) = exit_of(&exec.life, Timestamp::default());
            return Ok(api::StateResponse {
                id: req.exec_id.clone(),
                bundle: task.bundle.clone(),
                pid: exec.pid,
                status: EnumOrUnknown::new(status_of(exec.life.phase())),
                stdin: exec.stdin.clone(),
                stdout: exec.stdout.clone(),
                stderr: exec.stderr.clone(),
                exec_id: req.exec_id.clone(),
                exit_status,
                exited_at: MessageField::some(exited_at),
                ..Default::default()
            });
        }
        let (exit_status, exited_at) = exit_of(&task.life, Timestamp::default());
        Ok(api::StateResponse {
            id: req.id.clone(),
            bundle: task.bundle.clone(),
            pid: task.pid,
            status: EnumOrUnknown::new(status_of(task.life.phase())),
            stdin: task.stdin.clone(),
            stdout: task.stdout.clone(),
            stderr: task.stderr.clone(),
            exit_status,
            exited_at: MessageField::some(exited_at),
            ..Default::default()
        })
    }

    /// Answers when the init (or exec) has exited: at once for one already recorded.
    /// containerd cancels a wait it no longer needs by closing the request.
    pub(crate) fn wait(&self, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let _span = tracing::info_span!("task.wait", id = %req.id).entered();
        tracing::debug!(id = %req.id, "wait");
        let mut tasks = self.lock();
        loop {
            let task = tasks.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            let life = if req.exec_id.is_empty() {
                &task.life
            } else {
                &exec_of(task, &req.id, &req.exec_id)?.life
            };
            if life.exit().is_some() {
                let (exit_status, exited_at) = exit_of(life, Timestamp::default());
                return Ok(api::WaitResponse {
                    exit_status,
                    exited_at: MessageField::some(exited_at),
                    ..Default::default()
                });
            }
            tasks = self
                .inner
                .exited
                .wait(tasks)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    pub(crate) fn kill(&self, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let mut tasks = self.lock();
        let task = tasks.get_mut(&req.id).ok_or_else(|| not_found(&req.id))?;
        if !req.exec_id.is_empty() {
            return Self::kill_exec(task, &req.id, &req.exec_id, req.signal as i32);
        }
        match task.life.kill(req.signal as i32) {
            KillPlan::AlreadyStopped => {}
            KillPlan::Signal { thaw } => {
                task.container
                    .kill(req.signal as i32, req.all)
                    .map_err(internal)?;
                // A frozen process receives no signal until thawed: a paused task that is
                // killed would otherwise never exit, and containerd's delete would wait on it
                // for ever. Thawed after the signal, so that the task does not run in between.
                if thaw {
                    task.container.thaw().map_err(internal)?;
                    task.life.thawed();
                }
            }
        }
        Ok(api::Empty::new())
    }

    /// Refused while the init runs or is paused: containerd kills and waits first (so does
    /// `ctr task delete --force`), and a delete that raced the exit would lose its status.
    pub(crate) fn delete(&self, req: api::DeleteRequest) -> TtrpcResult<api::DeleteResponse> {
        let _span = tracing::info_span!("task.delete", id = %req.id).entered();
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id);
        }
        let mut task = {
            let mut tasks = self.lock();
            let task = tasks.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            task.life.may_delete().map_err(refused)?;
            tasks.remove(&req.id).ok_or_else(|| not_found(&req.id))?
        };
        task.container.delete().map_err(internal)?;
        for exec in task.execs.values() {
            exec.remove_files();
        }
        let (exit_status, exited_at) = exit_of(&task.life, Timestamp::now());
        self.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: req.id.clone(),
                id: req.id.clone(),
                pid: task.pid,
                exit_status,
                exited_at: MessageField::some(exited_at.clone()),
                ..Default::default()
            },
        );
        Ok(api::DeleteResponse {
            pid: task.pid,
            exit_status,
            exited_at: MessageField::some(exited_at),
            ..Default::default()
        })
    }

    /// Freezes every process of the task's cgroup (wasm or native alike), as runc does.
    pub(crate) fn pause(&self, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let _span = tracing::info_span!("task.pause", id = %req.id).entered();
        self.with_task(&req.id, |task| {
            task.life.may_pause().map_err(refused)?;
            task.container.pause().map_err(internal)?;
            task.life.paused();
            Ok(())
        })?;
        self.publish(
            topics::TASK_PAUSED_EVENT_TOPIC,
            TaskPaused {
                container_id: req.id,
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    pub(crate) fn resume(&self, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        let _span = tracing::info_span!("task.resume", id = %req.id).entered();
        self.with_task(&req.id, |task| {
            task.life.may_resume().map_err(refused)?;
            task.container.resume().map_err(internal)?;
            task.life.thawed();
            Ok(())
        })?;
        self.publish(
            topics::TASK_RESUMED_EVENT_TOPIC,
            TaskResumed {
                container_id: req.id,
                ..Default::default()
            },
        );
        Ok(api::Empty::new())
    }

    /// New cgroup limits for a live task (`ctr task update`, CRI UpdateContainerResources):
    /// containerd sends runtime-spec `LinuxResources` as JSON, which runc applies as given.
    pub(crate) fn update(&self, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let _span = tracing::info_span!("task.update", id = %req.id).entered();
        let mut tasks = self.lock();
        let task = tasks.get_mut(&req.id).ok_or_else(|| not_found(&req.id))?;
        task.life.may_update().map_err(refused)?;
        let Some(any) = req.resources.as_ref() else {
            return Err(invalid_argument(format!(
                "update of task {}: no resources given",
                req.id
            )));
        };
        let resources: wasmbay_shim_core::oci_spec::runtime::LinuxResources =
            serde_json::from_slice(&any.value).map_err(|e| {
                invalid_argument(format!(
                    "update of task {}: resources ({}) are not runtime-spec LinuxResources JSON: {e}",
                    req.id, any.type_url
                ))
            })?;
        task.container.update(&resources).map_err(internal)?;
        Ok(api::Empty::new())
    }

    pub(crate) fn checkpoint(&self, _req: api::CheckpointTaskRequest) -> TtrpcResult<api::Empty> {
        Err(unsupported("checkpoint"))
    }

    /// Sets the size of the terminal of the task's init or of exec `exec_id`; a process
    /// without one has nothing to resize (runc's shim answers the same).
    pub(crate) fn resize_pty(&self, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        let tasks = self.lock();
        if let Some(console) = console_of(&tasks, &req.id, &req.exec_id)? {
            console
                .resize(req.width, req.height)
                .map_err(|e| invalid_argument(e.to_string()))?;
        }
        Ok(api::Empty::new())
    }

    /// Without a terminal the shim keeps no copy of a process's stdin (the process holds the
    /// only one), so there is nothing of its own to close; with one, the copy into the
    /// terminal stops.
    pub(crate) fn close_io(&self, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        let tasks = self.lock();
        if let Some(console) = console_of(&tasks, &req.id, &req.exec_id)? {
            console.close_stdin();
        }
        Ok(api::Empty::new())
    }

    pub(crate) fn pids(&self, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let pids = self.with_task(&req.id, |task| task.container.pids().map_err(internal))?;
        Ok(api::PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| containerd_shim::protos::types::task::ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    pub(crate) fn stats(&self, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        let any = self.with_task(&req.id, |task| task.container.stats().map_err(internal))?;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    pub(crate) fn connect(&self, req: api::ConnectRequest) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self.lock().get(&req.id).map(|t| t.pid).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    /// containerd asks after deleting a shim's last task: the shim exits, now or after its
    /// linger time.
    pub(crate) fn shutdown(&self, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if self.lock().is_empty() {
            self.exit_when_idle();
        }
        Ok(api::Empty::new())
    }
}
