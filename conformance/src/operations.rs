//! Operation-based cases (wasi-testsuite's `wasm32-wasip3` specs): the workload is started
//! once and the runner talks to it step by step, as a user or a client would: writing its
//! stdin, reading its output as it comes, connecting to the port it prints (inside the
//! container's network namespace when it has one), signalling it, waiting for its end.
//!
//! Every step is bounded by the case's timeout; a step that cannot finish is a failure of the
//! case, never a hang of the runner.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::case::Operation;
use crate::report::Outcome;
use crate::suite::{end_child, Frontend, Invocation, Workload};

/// What a served-world case is told while serving is not part of the runner.
pub const SERVING_NOT_BUILT: &str =
    "`wasi:http/service` cases (served, sent requests) are not run by this runner yet";

/// Runs an operation-based case through `frontend`.
pub fn run_operations(
    frontend: &dyn Frontend,
    inv: &Invocation<'_>,
    operations: &[Operation],
) -> Result<Outcome, String> {
    let served = inv.case.spec.world.as_deref() == Some("wasi:http/service")
        || operations
            .iter()
            .any(|op| matches!(op, Operation::Request(_)));
    if served {
        return Ok(Outcome::Skip(SERVING_NOT_BUILT.into()));
    }
    let mut session: Option<Session> = None;
    let mut problems = Vec::new();
    for (index, op) in operations.iter().enumerate() {
        let step = format!("operation {} ({})", index + 1, op_name(op));
        let result = match (op, session.as_mut()) {
            (Operation::Run { .. }, None) => frontend.spawn(inv).map(|workload| {
                session = Some(Session::new(workload, inv.timeout));
            }),
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
        Operation::Request(_) => "request",
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
    timeout: Duration,
    exited: bool,
}

enum Connection {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

impl<'f> Session<'f> {
    fn new(mut workload: Box<dyn Workload + 'f>, timeout: Duration) -> Self {
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
            timeout,
            exited: false,
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    fn step(&mut self, op: &Operation) -> Result<(), String> {
        match op {
            Operation::Run { .. } | Operation::Request(_) => {
                Err("not valid here".into()) // refused before the session started
            }
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

/// Connects to `addr` from inside the network namespace `ns` (the container's), or from the
/// runner's own when `None`. A socket stays in the namespace it was made in, so a short-lived
/// thread enters the namespace, makes the connection and hands it back.
fn connect_in(
    ns: Option<&Path>,
    addr: SocketAddr,
    protocol: &str,
    timeout: Duration,
) -> Result<Connection, String> {
    let protocol = protocol.to_string();
    let ns: Option<PathBuf> = ns.map(Path::to_path_buf);
    let worker = std::thread::spawn(move || -> Result<Connection, String> {
        if let Some(ns) = &ns {
            let file = File::open(ns).map_err(|e| format!("{}: {e}", ns.display()))?;
            // SAFETY: setns on a descriptor this thread owns, changing only this thread's
            // network namespace; the thread ends right after making the socket.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "entering {}: {}",
                    ns.display(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        match protocol.as_str() {
            "tcp" => {
                // The guest prints its address once listening, but a container's loopback can
                // be a moment behind under emulation: refused connections are retried.
                let deadline = Instant::now() + timeout;
                loop {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(stream) => return Ok(Connection::Tcp(stream)),
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
        }
    });
    worker
        .join()
        .map_err(|_| "the connecting thread panicked".to_string())?
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
    fn signals_by_name_both_ways() {
        assert_eq!(signal_number("SIGINT"), Ok(libc::SIGINT));
        assert_eq!(signal_number("TERM"), Ok(libc::SIGTERM));
        assert!(signal_number("SIGNOPE").is_err());
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
    }
}
