//! Operation-based cases (wasi-testsuite's `wasm32-wasip3` specs): the workload is started
//! once and the runner talks to it step by step, as a user or a client would: writing its
//! stdin, reading its output as it comes, connecting to the port it prints (inside the
//! container's network namespace when it has one), sending HTTP requests to a served
//! component, signalling it, waiting for its end. A case's `servers` are HTTP servers the
//! runner stands up for the guest's own requests.
//!
//! Every step is bounded by the case's timeout; a step that cannot finish is a failure of the
//! case, never a hang of the runner.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::case::{ExpectedResponse, Operation};
use crate::report::Outcome;
use crate::suite::{end_child, Frontend, Invocation, Workload};

use crate::http_client;
use crate::test_servers::TestServers;

/// Why a case whose guest runs a command (not a served component) in a network namespace of
/// its own cannot have test servers: they would have to listen inside that namespace before
/// the guest's first request, and the namespace only exists once the guest has started.
const SERVERS_OUT_OF_REACH: &str = "`servers` for a command guest in a container's own network \
namespace: the runner can only listen there once the guest runs, too late for its requests \
(served components are fine: they make requests only when sent one)";

/// How long a failed `request` waits for what the guest writes on stderr about it.
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// Runs an operation-based case through `frontend`.
pub fn run_operations(
    frontend: &dyn Frontend,
    inv: &Invocation<'_>,
    operations: &[Operation],
) -> Result<Outcome, String> {
    // The servers come first: the guest is told their addresses in its environment (where
    // they override the case's own variables, as in the reference runner).
    let servers = TestServers::start(inv.case.spec.servers.as_deref().unwrap_or_default())?;
    let with_servers = (!servers.env().is_empty()).then(|| {
        let mut case = inv.case.clone();
        case.spec.env.extend(servers.env().iter().cloned());
        case
    });
    let owned;
    let inv = match &with_servers {
        Some(case) => {
            owned = Invocation {
                case,
                root: inv.root.clone(),
                scratch: inv.scratch,
                stdin: inv.stdin.clone(),
                timeout: inv.timeout,
            };
            &owned
        }
        None => inv,
    };
    let mut servers = Some(servers);
    let mut session: Option<Session> = None;
    let mut problems = Vec::new();
    for (index, op) in operations.iter().enumerate() {
        let step = format!("operation {} ({})", index + 1, op_name(op));
        let result = match (op, session.as_mut()) {
            (Operation::Run { .. }, None) => match frontend.spawn(inv) {
                Ok(workload) => {
                    let servers = servers.take().unwrap_or_default();
                    let started = session.insert(Session::new(workload, inv.timeout, servers));
                    match started.servers_out_of_reach(inv.case.is_served()) {
                        Ok(true) => {
                            started.kill_and_reap();
                            return Ok(Outcome::Skip(SERVERS_OUT_OF_REACH.into()));
                        }
                        Ok(false) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
            (Operation::Run { .. }, Some(_)) => Err("a second `run`".into()),
            (_, None) => Err("the workload was not started".into()),
            (op, Some(session)) => session.step(op),
        };
        if let Err(problem) = result {
            problems.push(format!("{step}: {problem}"));
            break;
        }
    }
    if let Some(mut session) = session {
        if let Some(problem) = session.finish() {
            problems.push(problem);
        }
    }
    Ok(if problems.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(problems.join("; "))
    })
}

fn op_name(op: &Operation) -> &'static str {
    match op {
        Operation::Run { .. } => "run",
        Operation::Wait { .. } => "wait",
        Operation::Read { .. } => "read",
        Operation::Write { .. } => "write",
        Operation::Connect { .. } => "connect",
        Operation::Send { .. } => "send",
        Operation::Recv { .. } => "recv",
        Operation::Request { .. } => "request",
        Operation::Kill { .. } => "kill",
    }
}

/// A started workload and the runner's ends of its streams and connections.
struct Session<'f> {
    workload: Box<dyn Workload + 'f>,
    stdin: Option<std::process::ChildStdin>,
    stdout: Captured,
    stderr: Captured,
    connections: Vec<(String, Connection)>,
    /// Where a served component answers, once read from its stderr.
    served: Option<ServedAt>,
    /// The case's test servers, kept up as long as the workload runs.
    servers: TestServers,
    timeout: Duration,
    exited: bool,
}

enum Connection {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

impl<'f> Session<'f> {
    fn new(mut workload: Box<dyn Workload + 'f>, timeout: Duration, servers: TestServers) -> Self {
        let child = workload.child();
        let stdin = child.stdin.take();
        let stdout = Captured::start(child.stdout.take());
        let stderr = Captured::start(child.stderr.take());
        Session {
            workload,
            stdin,
            stdout,
            stderr,
            connections: Vec::new(),
            served: None,
            servers,
            timeout,
            exited: false,
        }
    }

    /// Whether the test servers cannot be reached by this command guest (see
    /// [`SERVERS_OUT_OF_REACH`]). A served component's requests come only when it is sent one,
    /// so its servers are brought into its namespace before each `request` instead.
    fn servers_out_of_reach(&mut self, served: bool) -> Result<bool, String> {
        if served || !self.servers.listens() {
            return Ok(false);
        }
        // A container's namespace can only be named once its runtime made the container.
        let deadline = self.deadline();
        loop {
            match self.workload.net_namespace() {
                Ok(ns) => return Ok(ns.is_some()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The served component's address: from the first line of its stderr that names an
    /// `http://` URL (`wasmbay serve` and the containers print it first), waited for until
    /// `deadline`, then remembered for the next requests.
    fn served_at(&mut self, deadline: Instant) -> Result<ServedAt, String> {
        if let Some(served) = &self.served {
            return Ok(served.clone());
        }
        let mut before = Vec::new();
        while Instant::now() < deadline {
            let Some(line) = self.stderr.line(deadline) else {
                break;
            };
            if line.contains("http://") {
                let served = ServedAt::parse(&line)?;
                self.served = Some(served.clone());
                return Ok(served);
            }
            before.push(line);
        }
        let why = if self.stderr.ended() {
            "before it ended".to_string()
        } else {
            format!("within {} ms", self.timeout.as_millis())
        };
        Err(format!(
            "no `http://` address on the workload's stderr {why}{}",
            if before.is_empty() {
                String::new()
            } else {
                format!(" (it wrote {:?})", before.join("\n"))
            }
        ))
    }

    /// One `request`: a connection of its own, the request, the whole response, compared.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &BTreeMap<String, String>,
        body: &str,
        expected: &ExpectedResponse,
    ) -> Result<(), String> {
        let deadline = self.deadline();
        let served = self.served_at(deadline)?;
        let ns = self.workload.net_namespace()?;
        if let Some(ns) = &ns {
            self.servers.reach_from(ns)?;
        }
        let target = served.target(path);
        let what = format!("{method} {target}");
        let addr = served.addr;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut stream = in_namespace(ns.as_deref(), move || connect_tcp(addr, left))
            .map_err(|e| format!("{what}: {e}"))?;
        let request =
            http_client::encode_request(method, &target, &served.host, headers, body.as_bytes());
        let head_only = method.eq_ignore_ascii_case("HEAD");
        let response = http_client::exchange(&mut stream, &request, head_only, deadline)
            .map_err(|e| format!("{what}: {e}"))?;
        let problems = http_client::compare(expected, &response);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: {}", problems.join("; ")))
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    fn step(&mut self, op: &Operation) -> Result<(), String> {
        match op {
            Operation::Run { .. } => {
                Err("not valid here".into()) // refused before the session started
            }
            Operation::Request {
                method,
                path,
                headers,
                body,
                response,
            } => self
                .request(method, path, headers, body, response)
                .map_err(|problem| {
                    // What a served guest says on stderr (a trap, a panic) is the why; it
                    // may come a moment after the answer it explains.
                    let said = self.stderr.take(usize::MAX, Instant::now() + STDERR_GRACE);
                    if said.is_empty() {
                        problem
                    } else {
                        format!("{problem}; stderr {:?}", String::from_utf8_lossy(&said))
                    }
                }),
            Operation::Write { id, payload } => {
                if id != "stdin" {
                    return Err(format!("cannot write to {id:?}, only to stdin"));
                }
                let pipe = self.stdin.as_mut().ok_or("stdin is already closed")?;
                pipe.write_all(payload.as_bytes())
                    .and_then(|()| pipe.flush())
                    .map_err(|e| format!("writing stdin: {e}"))
            }
            Operation::Read { id, payload } => {
                let deadline = self.deadline();
                let stream = self.stream(id)?;
                let got = stream.take(payload.len(), deadline);
                if got == payload.as_bytes() {
                    Ok(())
                } else {
                    Err(format!(
                        "{id}: expected {payload:?}, got {:?}{}",
                        String::from_utf8_lossy(&got),
                        if got.len() < payload.len() {
                            " (stream ended or timed out)"
                        } else {
                            ""
                        }
                    ))
                }
            }
            Operation::Wait { exit_code } => {
                // As the reference runner's `communicate()`: the guest sees the end of stdin.
                self.stdin = None;
                let code = self.wait(self.deadline())?;
                if code == *exit_code {
                    Ok(())
                } else {
                    Err(format!(
                        "exit code {code}, expected {exit_code}; stdout {:?}; stderr {:?}",
                        String::from_utf8_lossy(&self.stdout.rest()),
                        String::from_utf8_lossy(&self.stderr.rest())
                    ))
                }
            }
            Operation::Connect { id, protocol_type } => {
                let line = self
                    .stdout
                    .line(self.deadline())
                    .ok_or("the guest printed no HOST:PORT line on stdout")?;
                let addr = guest_address(&line)?;
                let ns = self.workload.net_namespace()?;
                let connection = connect_in(ns.as_deref(), addr, protocol_type, self.timeout)?;
                self.connections.push((id.clone(), connection));
                Ok(())
            }
            Operation::Send { id, payload } => match self.connection(id)? {
                Connection::Tcp(stream) => stream
                    .write_all(payload.as_bytes())
                    .map_err(|e| format!("sending on {id}: {e}")),
                Connection::Udp(socket) => socket
                    .send(payload.as_bytes())
                    .map(|_| ())
                    .map_err(|e| format!("sending on {id}: {e}")),
            },
            Operation::Recv { id, payload } => {
                let deadline = self.deadline();
                let got = match self.connection(id)? {
                    Connection::Tcp(stream) => receive_exactly(stream, payload.len(), deadline),
                    Connection::Udp(socket) => receive_datagram(socket, payload.len(), deadline),
                }
                .map_err(|e| format!("receiving on {id}: {e}"))?;
                if got == payload.as_bytes() {
                    Ok(())
                } else {
                    Err(format!(
                        "{id}: expected {payload:?}, got {:?}",
                        String::from_utf8_lossy(&got)
                    ))
                }
            }
            Operation::Kill { signal } => {
                let number = signal_number(signal)?;
                self.workload.signal(number)
            }
        }
    }

    fn stream(&self, id: &str) -> Result<&Captured, String> {
        match id {
            "stdout" => Ok(&self.stdout),
            "stderr" => Ok(&self.stderr),
            other => Err(format!("no stream {other:?} to read (stdout or stderr)")),
        }
    }

    fn connection(&mut self, id: &str) -> Result<&mut Connection, String> {
        self.connections
            .iter_mut()
            .find(|(name, _)| name == id)
            .map(|(_, c)| c)
            .ok_or_else(|| format!("no connection {id:?} (a `connect` names it)"))
    }

    /// Waits for the workload's end until `deadline`; past it, kills it and says so.
    fn wait(&mut self, deadline: Instant) -> Result<i32, String> {
        loop {
            match self.workload.child().try_wait() {
                Ok(Some(status)) => {
                    self.exited = true;
                    return Ok(exit_code(status));
                }
                Ok(None) if Instant::now() >= deadline => {
                    self.kill_and_reap();
                    return Err(format!(
                        "did not exit within {} ms",
                        self.timeout.as_millis()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(format!("waiting: {e}")),
            }
        }
    }

    /// Ends a workload that outlived its operations: asks its runtime, then the process
    /// itself, and reaps it, all bounded.
    fn kill_and_reap(&mut self) {
        // Through the runtime first: a container's init is not the runner's child.
        let _ = self.workload.signal(libc::SIGKILL);
        end_child(self.workload.child(), Duration::from_secs(10));
        self.exited = true;
    }

    /// After the last operation: a workload still running is a failure (the reference runner
    /// says the same), and is ended.
    fn finish(&mut self) -> Option<String> {
        self.stdin = None;
        self.connections.clear();
        if self.exited {
            return None;
        }
        if let Ok(Some(_)) = self.workload.child().try_wait() {
            return None;
        }
        self.kill_and_reap();
        Some("the workload was still running after the last operation".into())
    }
}

/// An output stream of the workload, read as it comes by a thread of its own.
struct Captured {
    shared: Arc<(Mutex<CapturedState>, Condvar)>,
    cursor: Mutex<usize>,
}

#[derive(Default)]
struct CapturedState {
    bytes: Vec<u8>,
    ended: bool,
}

impl Captured {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let shared = Arc::new((Mutex::new(CapturedState::default()), Condvar::new()));
        let writer = shared.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            if let Some(mut pipe) = pipe {
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let (state, cond) = &*writer;
                            lock(state).bytes.extend_from_slice(&chunk[..n]);
                            cond.notify_all();
                        }
                    }
                }
            }
            let (state, cond) = &*writer;
            lock(state).ended = true;
            cond.notify_all();
        });
        Captured {
            shared,
            cursor: Mutex::new(0),
        }
    }

    /// Waits until `ready` says the unread bytes are enough (or the stream ends, or the
    /// deadline passes), then lets `take` consume from them.
    fn consume(
        &self,
        deadline: Instant,
        ready: impl Fn(&[u8]) -> bool,
        take: impl FnOnce(&[u8], bool) -> usize,
    ) -> Vec<u8> {
        let (state, cond) = &*self.shared;
        let mut cursor = lock(&self.cursor);
        let mut guard = lock(state);
        loop {
            let unread = &guard.bytes[*cursor..];
            let now = Instant::now();
            if ready(unread) || guard.ended || now >= deadline {
                let n = take(unread, guard.ended || now >= deadline);
                let taken = unread[..n].to_vec();
                *cursor += n;
                return taken;
            }
            guard = cond
                .wait_timeout(guard, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The next `n` bytes, or fewer if the stream ends or the deadline passes first.
    fn take(&self, n: usize, deadline: Instant) -> Vec<u8> {
        self.consume(deadline, |b| b.len() >= n, |b, _| b.len().min(n))
    }

    /// The next line, without its end, if one comes before the deadline.
    fn line(&self, deadline: Instant) -> Option<String> {
        let taken = self.consume(
            deadline,
            |b| b.contains(&b'\n'),
            |b, _| b.iter().position(|&c| c == b'\n').map_or(0, |i| i + 1),
        );
        (!taken.is_empty()).then(|| String::from_utf8_lossy(&taken).trim().to_string())
    }

    /// Whether the stream has ended (its writer closed it).
    fn ended(&self) -> bool {
        lock(&self.shared.0).ended
    }

    /// Whatever is unread now, for messages.
    fn rest(&self) -> Vec<u8> {
        self.consume(Instant::now(), |_| true, |b, _| b.len())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The address a guest printed (`HOST:PORT`); a wildcard host means its loopback.
fn guest_address(line: &str) -> Result<SocketAddr, String> {
    let mut addr = line
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("expected HOST:PORT from the guest, got {line:?}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(addr)
}

/// Where a served component answers, from the `http://` URL it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServedAt {
    /// What to connect to (a wildcard host made the guest's loopback).
    addr: SocketAddr,
    /// The `Host` header: the URL's authority, or `addr` when that named a wildcard.
    host: String,
    /// The URL's path, which a request's `path` is joined to.
    base_path: String,
}

impl ServedAt {
    /// Reads the URL starting at `http://` in `line`, up to the next whitespace.
    fn parse(line: &str) -> Result<ServedAt, String> {
        let start = line
            .find("http://")
            .ok_or_else(|| format!("no `http://` in {line:?}"))?;
        let url = line[start + "http://".len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        let end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, rest) = url.split_at(end);
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        if authority.is_empty() {
            return Err(format!("no host in the served URL {line:?}"));
        }
        // No port means HTTP's own; a bracketed IPv6 literal holds colons of its own.
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_string()
        };
        let addr = guest_address(&with_port)?;
        let wildcard = with_port
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified());
        let base_path = rest.split(['?', '#']).next().unwrap_or_default();
        Ok(ServedAt {
            addr,
            host: if wildcard {
                addr.to_string()
            } else {
                authority.to_string()
            },
            base_path: base_path.to_string(),
        })
    }

    /// The request target for a case's `path`, joined to the served URL as the reference
    /// runner joins them (one `/` between).
    fn target(&self, path: &str) -> String {
        let base = self.base_path.trim_end_matches('/');
        if path.starts_with('/') {
            format!("{base}{path}")
        } else {
            format!("{base}/{path}")
        }
    }
}

/// Runs `work` inside the network namespace `ns` (the container's), or in the runner's own
/// when `None`. A socket stays in the namespace it was made in, so a short-lived thread enters
/// the namespace, makes the socket and hands it back; the runner's other threads stay put.
pub(crate) fn in_namespace<T: Send + 'static>(
    ns: Option<&Path>,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let Some(ns) = ns.map(Path::to_path_buf) else {
        return work();
    };
    let worker = std::thread::spawn(move || -> Result<T, String> {
        let file = File::open(&ns).map_err(|e| format!("{}: {e}", ns.display()))?;
        // SAFETY: setns on a descriptor this thread owns, changing only this thread's
        // network namespace; the thread ends right after `work`.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "entering {}: {}",
                ns.display(),
                std::io::Error::last_os_error()
            ));
        }
        work()
    });
    worker
        .join()
        .map_err(|_| "the thread in the guest's network namespace panicked".to_string())?
}

/// Connects to `addr` from inside the network namespace `ns` (see [`in_namespace`]).
fn connect_in(
    ns: Option<&Path>,
    addr: SocketAddr,
    protocol: &str,
    timeout: Duration,
) -> Result<Connection, String> {
    let protocol = protocol.to_string();
    in_namespace(ns, move || match protocol.as_str() {
        "tcp" => connect_tcp(addr, timeout).map(Connection::Tcp),
        "udp" => {
            let local: SocketAddr = if addr.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            }
            .parse()
            .map_err(|e| format!("{e}"))?;
            let socket = UdpSocket::bind(local).map_err(|e| format!("udp bind: {e}"))?;
            socket
                .connect(addr)
                .map_err(|e| format!("udp connect to {addr}: {e}"))?;
            Ok(Connection::Udp(socket))
        }
        other => Err(format!("unknown protocol_type {other:?} (tcp or udp)")),
    })
}

/// A TCP connection to `addr` within `timeout`. The guest says where it listens once it does,
/// but a container's loopback can be a moment behind under emulation: refused connections are
/// retried until the time is up.
fn connect_tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(format!("connecting to {addr}: {e}")),
        }
    }
}

fn receive_exactly(stream: &mut TcpStream, n: usize, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut got = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut got[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    got.truncate(filled);
    Ok(got)
}

fn receive_datagram(
    socket: &mut UdpSocket,
    n: usize,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    socket
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(|e| e.to_string())?;
    let mut got = vec![0u8; n.max(1) + 1];
    let k = socket.recv(&mut got).map_err(|e| e.to_string())?;
    got.truncate(k);
    Ok(got)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

/// A signal's number from its name (`SIGTERM` or `TERM`).
pub fn signal_number(name: &str) -> Result<i32, String> {
    let short = name.strip_prefix("SIG").unwrap_or(name);
    Ok(match short {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        _ => return Err(format!("unknown signal {name:?}")),
    })
}

/// A signal's name as runtimes' `kill` commands take it (`SIGTERM`).
pub fn signal_name(number: i32) -> String {
    match number {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_is_read_in_order_and_by_line() {
        let captured = Captured::start(Some(&b"127.0.0.1:80\nREADYrest"[..]));
        let soon = Instant::now() + Duration::from_secs(5);
        assert_eq!(captured.line(soon).as_deref(), Some("127.0.0.1:80"));
        assert_eq!(captured.take(5, soon), b"READY");
        assert_eq!(
            captured.take(10, soon),
            b"rest",
            "a short stream gives what it has"
        );
        assert_eq!(captured.line(soon), None);
    }

    #[test]
    fn a_wildcard_address_means_the_guest_loopback() {
        assert_eq!(
            guest_address("0.0.0.0:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            guest_address("[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert!(guest_address("listening")
            .unwrap_err()
            .contains("HOST:PORT"));
    }

    #[test]
    fn the_served_address_comes_from_the_url_on_stderr() {
        let served = ServedAt::parse("wasmbay: serving http://0.0.0.0:8080/").unwrap();
        assert_eq!(served.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(served.host, "127.0.0.1:8080");
        assert_eq!(served.target("/echo"), "/echo");
        assert_eq!(served.target("echo?x=1"), "/echo?x=1");
        let served = ServedAt::parse("Serving HTTP on http://[::1]:9/base/ now").unwrap();
        assert_eq!(served.addr, "[::1]:9".parse().unwrap());
        assert_eq!(served.host, "[::1]:9");
        assert_eq!(served.target("/x"), "/base/x");
        assert!(ServedAt::parse("http:///").is_err());
    }

    #[test]
    fn signals_by_name_both_ways() {
        assert_eq!(signal_number("SIGINT"), Ok(libc::SIGINT));
        assert_eq!(signal_number("TERM"), Ok(libc::SIGTERM));
        assert!(signal_number("SIGNOPE").is_err());
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
    }
}
