//! The task state machine through the service's own API, without root: the containers are
//! plain child processes of the test (`sh`), which the service waits for as it waits for
//! inits, and events go to a recorder.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use containerd_shim::protos::events::task::{TaskDelete, TaskExit};
use containerd_shim::protos::protobuf::{Message as _, MessageField};
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::Code;
use wasmbay_shim_core::oci_spec::runtime::LinuxResources;

use super::*;
use crate::containers::{Created, ExecStartError, ExecTarget, Started};

/// How long any one wait of these tests may take before it fails.
const BOUND: Duration = Duration::from_secs(20);

/// An init that waits for `start` (a line on its stdin), then sleeps; closing its stdin
/// unstarted ends it with 99, as a delete of a created container ends its init.
const SLEEPER: &str = "read go || exit 99; exec sleep 600";

/// Containers that are `sh -c SCRIPT` children, the script chosen per task id.
#[derive(Clone, Default)]
struct Stub {
    scripts: Arc<Mutex<HashMap<String, String>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    fn script(&self, id: &str, script: &str) {
        self.scripts
            .lock()
            .unwrap()
            .insert(id.to_string(), script.to_string());
    }

    fn calls(&self, call: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == call)
            .count()
    }
}

impl Containers for Stub {
    fn create(&self, req: &api::CreateTaskRequest) -> anyhow::Result<Created> {
        let script = self
            .scripts
            .lock()
            .unwrap()
            .get(&req.id)
            .cloned()
            .unwrap_or_else(|| SLEEPER.to_string());
        if script == "fail" {
            anyhow::bail!("stub: container {} cannot be made", req.id);
        }
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        self.log.lock().unwrap().push(format!("create {}", req.id));
        Ok(Created {
            container: Box::new(StubTask {
                id: req.id.clone(),
                pid: child.id() as i32,
                stdin: child.stdin.take(),
                log: self.log.clone(),
            }),
            pid: child.id() as i32,
            engine: "stub".to_string(),
            console: None,
        })
    }

    /// Runs the exec's `args` as given; a program named `invalid` is refused as the backend
    /// refuses a module that does not compile.
    fn start_exec(&self, target: ExecTarget) -> Result<Started, ExecStartError> {
        let spec =
            std::fs::read(&target.spec_file).map_err(|e| ExecStartError::Failed(e.into()))?;
        let process: wasmbay_shim_core::oci_spec::runtime::Process =
            serde_json::from_slice(&spec).map_err(|e| ExecStartError::Failed(e.into()))?;
        let args = process.args().clone().unwrap_or_default();
        if args.first().map(String::as_str) == Some("invalid") {
            return Err(ExecStartError::Invalid(anyhow::anyhow!(
                "stub: {} is not a module",
                args[0]
            )));
        }
        let child = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| ExecStartError::Failed(e.into()))?;
        Ok(Started {
            pid: child.id() as i32,
            console: None,
        })
    }
}

struct StubTask {
    id: String,
    pid: i32,
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<Vec<String>>>,
}

impl StubTask {
    fn note(&self, call: &str) {
        self.log.lock().unwrap().push(format!("{call} {}", self.id));
    }

    /// Whether the process is stopped (`T` in /proc/PID/stat, after the command's name).
    fn stopped(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
    }

    fn signal(&self, signal: i32) -> anyhow::Result<()> {
        // SAFETY: kill has no memory effects. The service signals only a process it has not
        // yet recorded as ended, and these tests' children are reaped only by its watchers.
        if unsafe { libc::kill(self.pid, signal) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }
}

impl TaskContainer for StubTask {
    fn start(&mut self) -> anyhow::Result<()> {
        self.note("start");
        let mut stdin = self.stdin.take().context("started twice")?;
        Ok(stdin.write_all(b"go\n")?)
    }

    fn kill(&mut self, signal: i32, _all: bool) -> anyhow::Result<()> {
        self.note("kill");
        self.signal(signal)
    }

    fn pause(&mut self) -> anyhow::Result<()> {
        self.note("pause");
        self.signal(libc::SIGSTOP)?;
        // The freezer's pause returns once the task is frozen; SIGSTOP is only acted on when
        // the process next runs, and a SIGTERM sent before that would be taken first (the
        // lower number), ending a task the test means to be paused (seen on a loaded CI).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.stopped() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "stub {} did not stop",
                self.id
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn resume(&mut self) -> anyhow::Result<()> {
        self.note("resume");
        self.signal(libc::SIGCONT)
    }

    fn thaw(&mut self) -> anyhow::Result<()> {
        self.note("thaw");
        // A stopped process acts on SIGKILL anyway; the thaw is what is asserted.
        Ok(())
    }

    fn update(&mut self, _resources: &LinuxResources) -> anyhow::Result<()> {
        self.note("update");
        Ok(())
    }

    fn pids(&self) -> anyhow::Result<Vec<u32>> {
        Ok(vec![self.pid as u32])
    }

    fn stats(&self) -> anyhow::Result<Any> {
        Ok(Any::default())
    }

    fn watch_oom(&self, _on_oom: Box<dyn Fn() + Send>) -> anyhow::Result<Option<OomWatch>> {
        Ok(None)
    }

    fn delete(&mut self) -> anyhow::Result<()> {
        self.note("delete");
        // An unstarted init ends on the end of its stdin.
        self.stdin = None;
        Ok(())
    }
}

/// Events as containerd would receive them; `fail` makes it unreachable.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<(String, Any)>>>,
    fail: Arc<AtomicBool>,
}

impl Publish for Recorder {
    fn forward(&self, topic: &str, namespace: &str, event: Any) -> anyhow::Result<()> {
        assert_eq!(namespace, "test-ns");
        if self.fail.load(Ordering::SeqCst) {
            anyhow::bail!("containerd is not there");
        }
        self.events.lock().unwrap().push((topic.to_string(), event));
        Ok(())
    }
}

impl Recorder {
    fn of(&self, topic: &str) -> Vec<Any> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The TaskExit events so far, waiting up to [`BOUND`] for at least `n`.
    fn exits(&self, n: usize) -> Vec<TaskExit> {
        let deadline = std::time::Instant::now() + BOUND;
        loop {
            let exits: Vec<TaskExit> = self
                .of(topics::TASK_EXIT_EVENT_TOPIC)
                .iter()
                .map(|any| TaskExit::parse_from_bytes(&any.value).unwrap())
                .collect();
            if exits.len() >= n || std::time::Instant::now() > deadline {
                return exits;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

struct Fixture {
    service: Service,
    stub: Stub,
    events: Recorder,
    dir: tempfile::TempDir,
}

fn fixture(linger: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("shim.sock");
    std::fs::write(&socket, "").unwrap();
    let settings = Settings {
        namespace: "test-ns".to_string(),
        shim_id: "shim".to_string(),
        engine: "stub".to_string(),
        state_root: dir.path().join("state"),
        socket,
        linger,
    };
    let stub = Stub::default();
    let service = Service::with(settings, Box::new(stub.clone()), Arc::new(OnceLock::new()));
    let events = Recorder::default();
    service.set_events(Box::new(events.clone()));
    Fixture {
        service,
        stub,
        events,
        dir,
    }
}

impl Fixture {
    fn create(&self, id: &str) -> TtrpcResult<api::CreateTaskResponse> {
        self.service.create(api::CreateTaskRequest {
            id: id.to_string(),
            bundle: self.dir.path().to_string_lossy().into_owned(),
            ..Default::default()
        })
    }

    fn start(&self, id: &str, exec_id: &str) -> TtrpcResult<api::StartResponse> {
        self.service.start(api::StartRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        })
    }

    fn kill(&self, id: &str, signal: i32) -> TtrpcResult<api::Empty> {
        self.service.kill(api::KillRequest {
            id: id.to_string(),
            signal: signal as u32,
            ..Default::default()
        })
    }

    fn delete(&self, id: &str, exec_id: &str) -> TtrpcResult<api::DeleteResponse> {
        self.service.delete(api::DeleteRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        })
    }

    fn state(&self, id: &str, exec_id: &str) -> api::StateResponse {
        self.service
            .state(api::StateRequest {
                id: id.to_string(),
                exec_id: exec_id.to_string(),
                ..Default::default()
            })
            .unwrap()
    }

    fn status(&self, id: &str) -> api::Status {
        self.state(id, "").status.enum_value().unwrap()
    }

    /// `wait`, failing the test if it has not answered within [`BOUND`].
    fn wait(&self, id: &str, exec_id: &str) -> u32 {
        let service = self.service.clone();
        let req = api::WaitRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(service.wait(req));
        });
        rx.recv_timeout(BOUND)
            .expect("wait answered in time")
            .expect("wait")
            .exit_status
    }

    fn exec(&self, id: &str, exec_id: &str, args: &[&str]) -> TtrpcResult<api::Empty> {
        let process = serde_json::json!({"args": args, "cwd": "/", "user": {"uid": 0, "gid": 0}});
        self.service.exec(api::ExecProcessRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            spec: MessageField::some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: serde_json::to_vec(&process).unwrap(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn update(&self, id: &str, resources: Option<&str>) -> TtrpcResult<api::Empty> {
        self.service.update(api::UpdateTaskRequest {
            id: id.to_string(),
            resources: match resources {
                Some(json) => MessageField::some(Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
                        .into(),
                    value: json.as_bytes().to_vec(),
                    ..Default::default()
                }),
                None => MessageField::none(),
            },
            ..Default::default()
        })
    }
}

/// The code and message of a refusal.
fn refusal<T: std::fmt::Debug>(result: TtrpcResult<T>) -> (Code, String) {
    match result {
        Err(containerd_shim::protos::ttrpc::Error::RpcStatus(status)) => {
            (status.code(), status.message().to_string())
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Whether the shim's exit was signalled within `within`.
fn exits_within(service: &Service, within: Duration) -> bool {
    let exit = service.inner.exit.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        exit.wait();
        let _ = tx.send(());
    });
    rx.recv_timeout(within).is_ok()
}

#[test]
fn an_exit_is_recorded_and_told_once() {
    let f = fixture(Duration::ZERO);
    f.stub.script("t", "read go || exit 99; exit 3");
    let pid = f.create("t").unwrap().pid;
    assert_eq!(f.status("t"), api::Status::CREATED);
    assert_eq!(f.start("t", "").unwrap().pid, pid);
    assert_eq!(f.wait("t", ""), 3);
    let state = f.state("t", "");
    assert_eq!(state.status.enum_value().unwrap(), api::Status::STOPPED);
    assert_eq!(state.exit_status, 3);
    // A second wait answers the same recorded exit.
    assert_eq!(f.wait("t", ""), 3);
    let exits = f.events.exits(1);
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!((exits[0].exit_status, exits[0].pid), (3, pid));
    let (code, message) = refusal(f.start("t", ""));
    assert_eq!(code, Code::FAILED_PRECONDITION);
    assert!(
        message.contains("cannot start task t: it is stopped"),
        "{message}"
    );
    // A kill of the ended task is a no-op that reaches no process.
    f.kill("t", libc::SIGKILL).unwrap();
    assert_eq!(f.stub.calls("kill t"), 0);
    let deleted = f.delete("t", "").unwrap();
    assert_eq!(deleted.exit_status, 3);
    let told = f.events.of(topics::TASK_DELETE_EVENT_TOPIC);
    assert_eq!(told.len(), 1);
    assert_eq!(
        TaskDelete::parse_from_bytes(&told[0].value)
            .unwrap()
            .exit_status,
        3
    );
    assert_eq!(f.events.exits(1).len(), 1, "still one TaskExit");
    assert_eq!(refusal(f.delete("t", "")).0, Code::NOT_FOUND);
}

#[test]
fn a_running_task_is_not_deleted() {
    let f = fixture(Duration::ZERO);
    f.create("t").unwrap();
    f.start("t", "").unwrap();
    let (code, message) = refusal(f.delete("t", ""));
    assert_eq!(code, Code::FAILED_PRECONDITION);
    assert!(
        message.contains("cannot delete task t: it is running"),
        "{message}"
    );
    assert_eq!(f.status("t"), api::Status::RUNNING);
    assert_eq!(f.stub.calls("delete t"), 0);
    f.kill("t", libc::SIGKILL).unwrap();
    assert_eq!(f.wait("t", ""), 137);
    assert_eq!(f.delete("t", "").unwrap().exit_status, 137);
    assert_eq!(f.stub.calls("delete t"), 1);
}

#[test]
fn a_second_create_of_an_id_is_refused() {
    let f = fixture(Duration::ZERO);
    f.create("t").unwrap();
    let (code, _) = refusal(f.create("t"));
    assert_eq!(code, Code::ALREADY_EXISTS);
    assert_eq!(f.stub.calls("create t"), 1);
    // A failed create leaves no task behind.
    f.stub.script("bad", "fail");
    let (code, message) = refusal(f.create("bad"));
    assert_eq!(code, Code::INTERNAL);
    assert!(
        message.contains("container bad cannot be made"),
        "{message}"
    );
    assert_eq!(
        refusal(f.service.state(api::StateRequest {
            id: "bad".into(),
            ..Default::default()
        }))
        .0,
        Code::NOT_FOUND
    );
    f.delete("t", "").unwrap();
}

#[test]
fn pause_and_resume_follow_the_phase_and_a_paused_task_killed_is_thawed() {
    let f = fixture(Duration::ZERO);
    f.create("t").unwrap();
    let pause = |f: &Fixture| {
        f.service.pause(api::PauseRequest {
            id: "t".into(),
            ..Default::default()
        })
    };
    let resume = |f: &Fixture| {
        f.service.resume(api::ResumeRequest {
            id: "t".into(),
            ..Default::default()
        })
    };
    let (code, message) = refusal(pause(&f));
    assert_eq!(code, Code::FAILED_PRECONDITION);
    assert!(message.contains("it is created, not running"), "{message}");
    f.start("t", "").unwrap();
    assert!(refusal(resume(&f)).1.contains("it is running, not paused"));
    pause(&f).unwrap();
    assert_eq!(f.status("t"), api::Status::PAUSED);
    assert!(refusal(pause(&f)).1.contains("it is paused, not running"));
    resume(&f).unwrap();
    assert_eq!(f.status("t"), api::Status::RUNNING);
    pause(&f).unwrap();
    // Only SIGKILL thaws: any other signal waits for the resume, as under the freezer.
    f.kill("t", libc::SIGTERM).unwrap();
    assert_eq!(f.stub.calls("thaw t"), 0);
    f.kill("t", libc::SIGKILL).unwrap();
    assert_eq!(f.stub.calls("thaw t"), 1);
    assert_eq!(f.wait("t", ""), 137);
    assert_eq!(f.events.of(topics::TASK_PAUSED_EVENT_TOPIC).len(), 2);
    assert_eq!(f.events.of(topics::TASK_RESUMED_EVENT_TOPIC).len(), 1);
    f.delete("t", "").unwrap();
}

#[test]
fn a_task_killed_before_start_ends_and_is_not_started() {
    let f = fixture(Duration::ZERO);
    f.create("t").unwrap();
    f.kill("t", libc::SIGKILL).unwrap();
    assert_eq!(f.wait("t", ""), 137);
    assert!(refusal(f.start("t", ""))
        .1
        .contains("it is stopped, not created"));
    assert_eq!(f.stub.calls("start t"), 0);
    assert_eq!(f.delete("t", "").unwrap().exit_status, 137);
}

#[test]
fn a_created_task_deleted_still_tells_its_exit() {
    let f = fixture(Duration::ZERO);
    let pid = f.create("t").unwrap().pid;
    f.delete("t", "").unwrap();
    let exits = f.events.exits(1);
    assert_eq!(exits.len(), 1, "the init's exit is told");
    assert_eq!((exits[0].pid, exits[0].exit_status), (pid, 99));
}

#[test]
fn an_idle_shim_exits_at_once_without_linger() {
    let f = fixture(Duration::ZERO);
    f.create("t").unwrap();
    f.service.shutdown(api::ShutdownRequest::default()).unwrap();
    assert!(
        !exits_within(&f.service, Duration::from_millis(200)),
        "a task remains"
    );
    f.delete("t", "").unwrap();
    f.service.shutdown(api::ShutdownRequest::default()).unwrap();
    assert!(exits_within(&f.service, BOUND));
}

#[test]
fn an_idle_shim_lingers_then_removes_its_socket_and_exits() {
    let f = fixture(Duration::from_millis(50));
    let socket = f.service.inner.settings.socket.clone();
    f.service.shutdown(api::ShutdownRequest::default()).unwrap();
    assert!(exits_within(&f.service, idle::EXIT_GRACE + BOUND));
    assert!(!socket.exists(), "the socket goes before the exit");
}

#[test]
fn a_create_while_lingering_keeps_the_shim() {
    let f = fixture(Duration::from_millis(500));
    let socket = f.service.inner.settings.socket.clone();
    f.service.shutdown(api::ShutdownRequest::default()).unwrap();
    f.create("t").unwrap();
    assert!(!exits_within(&f.service, Duration::from_millis(800)));
    assert!(socket.exists());
    f.delete("t", "").unwrap();
}

/// containerd restarted while the task ended: the exit could not be told, and the next
/// containerd learns it from `state` and `wait`, and sees the delete.
#[test]
fn an_exit_missed_by_containerd_is_recovered_after_its_restart() {
    let f = fixture(Duration::ZERO);
    f.stub.script("t", "read go || exit 99; exit 5");
    f.create("t").unwrap();
    f.events.fail.store(true, Ordering::SeqCst);
    f.start("t", "").unwrap();
    assert_eq!(f.wait("t", ""), 5);
    assert!(f.events.of(topics::TASK_EXIT_EVENT_TOPIC).is_empty());
    let restarted = Recorder::default();
    f.service.set_events(Box::new(restarted.clone()));
    let state = f.state("t", "");
    assert_eq!(state.status.enum_value().unwrap(), api::Status::STOPPED);
    assert_eq!(state.exit_status, 5);
    assert_eq!(f.wait("t", ""), 5);
    assert_eq!(f.delete("t", "").unwrap().exit_status, 5);
    let told = restarted.of(topics::TASK_DELETE_EVENT_TOPIC);
    assert_eq!(told.len(), 1);
    assert_eq!(
        TaskDelete::parse_from_bytes(&told[0].value)
            .unwrap()
            .exit_status,
        5
    );
}

#[test]
fn an_update_needs_a_live_task_and_resources_json() {
    let f = fixture(Duration::ZERO);
    f.stub.script("t", "read go || exit 99; read again; exit 0");
    f.create("t").unwrap();
    // A created task's limits may change before it starts.
    f.update("t", Some(r#"{"cpu":{"shares":512}}"#)).unwrap();
    f.start("t", "").unwrap();
    let (code, message) = refusal(f.update("t", None));
    assert_eq!(code, Code::INVALID_ARGUMENT);
    assert!(message.contains("no resources given"), "{message}");
    let (code, message) = refusal(f.update("t", Some("{")));
    assert_eq!(code, Code::INVALID_ARGUMENT);
    assert!(
        message.contains("not runtime-spec LinuxResources JSON"),
        "{message}"
    );
    f.update("t", Some(r#"{"memory":{"limit":67108864}}"#))
        .unwrap();
    assert_eq!(f.stub.calls("update t"), 2);
    f.kill("t", libc::SIGTERM).unwrap();
    assert_eq!(f.wait("t", ""), 143);
    let (code, message) = refusal(f.update("t", Some("{}")));
    assert_eq!(code, Code::FAILED_PRECONDITION);
    assert!(
        message.contains("cannot update task t: it is stopped"),
        "{message}"
    );
    f.delete("t", "").unwrap();
}

#[test]
fn an_exec_lives_and_ends_on_its_own() {
    let f = fixture(Duration::ZERO);
    f.create("t").unwrap();
    let (code, message) = refusal(f.exec("t", "e1", &["sh", "-c", "exit 4"]));
    assert_eq!(code, Code::FAILED_PRECONDITION);
    assert!(
        message.contains("cannot exec in task t: it is created, not running"),
        "{message}"
    );
    f.start("t", "").unwrap();
    f.exec("t", "e1", &["sh", "-c", "exit 4"]).unwrap();
    assert_eq!(
        refusal(f.exec("t", "e1", &["true"])).0,
        Code::ALREADY_EXISTS
    );
    assert_eq!(
        f.state("t", "e1").status.enum_value().unwrap(),
        api::Status::CREATED
    );
    let pid = f.start("t", "e1").unwrap().pid;
    assert_eq!(f.wait("t", "e1"), 4);
    let state = f.state("t", "e1");
    assert_eq!((state.pid, state.exit_status), (pid, 4));
    assert!(refusal(f.start("t", "e1"))
        .1
        .contains("cannot start exec e1 of task t"));
    let exits = f.events.exits(1);
    assert_eq!((exits[0].id.as_str(), exits[0].exit_status), ("e1", 4));
    assert_eq!(f.delete("t", "e1").unwrap().exit_status, 4);
    assert_eq!(refusal(f.delete("t", "e1")).0, Code::NOT_FOUND);
    // The init went on running throughout.
    assert_eq!(f.status("t"), api::Status::RUNNING);

    // A running exec is not deleted; killed, it is.
    f.exec("t", "e2", &["sleep", "600"]).unwrap();
    f.start("t", "e2").unwrap();
    let (code, message) = refusal(f.delete("t", "e2"));
    assert_eq!(code, Code::FAILED_PRECONDITION);
    assert!(message.contains("it is running"), "{message}");
    f.service
        .kill(api::KillRequest {
            id: "t".into(),
            exec_id: "e2".into(),
            signal: libc::SIGKILL as u32,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(f.wait("t", "e2"), 137);
    f.delete("t", "e2").unwrap();

    // An exec the backend cannot run is refused as bad input and forgotten.
    f.exec("t", "e3", &["invalid"]).unwrap();
    let (code, message) = refusal(f.start("t", "e3"));
    assert_eq!(code, Code::INVALID_ARGUMENT);
    assert!(
        message.contains("exec e3 of task t: stub: invalid is not a module"),
        "{message}"
    );
    assert_eq!(
        refusal(f.service.state(api::StateRequest {
            id: "t".into(),
            exec_id: "e3".into(),
            ..Default::default()
        }))
        .0,
        Code::NOT_FOUND
    );
    f.kill("t", libc::SIGKILL).unwrap();
    assert_eq!(f.wait("t", ""), 137);
    f.delete("t", "").unwrap();
}
