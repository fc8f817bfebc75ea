//! Terminals of tasks and execs (`ctr run -t`, `ctr task exec -t`, `kubectl exec -it`).
//!
//! With `terminal` set, the zygote's worker is given a console socket; libcontainer makes a
//! pty inside the container, puts its other end on the process's stdio and sends the master
//! here. The shim then copies containerd's stdin fifo into the master and the master into the
//! stdout fifo (a terminal has one output stream), and sets the size on `ResizePty`.
//!
//! Both copies poll with a short period and end when told to, so a process that keeps the
//! terminal open (a daemon it started) cannot hold a thread or descriptor past its delete.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use wasmbay_runtime_bridge::console_socket::{readable_within, ConsoleSocket, ConsoleSocketError};

/// How long a process being made may take to send its terminal.
pub(crate) const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an exit waits for the terminal's last output to reach the fifo.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a copy looks at its stop flag while no data comes.
const POLL_PERIOD: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    #[error(transparent)]
    Socket(#[from] ConsoleSocketError),
    #[error("terminal: {what} {path}: {source}")]
    Stdio {
        what: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("terminal: setting the size to {width}x{height}: {source}")]
    Resize {
        width: u32,
        height: u32,
        source: io::Error,
    },
}

/// A console socket of this shim, under a private directory with a short path: a Unix socket
/// path has at most 107 bytes, and a bundle's may be longer.
pub(crate) fn bind_socket() -> Result<ConsoleSocket, ConsoleError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = PathBuf::from("/run/wasmbay-shim/consoles").join(format!(
        "{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(ConsoleSocket::bind(&path)?)
}

/// A process's terminal: its pty master and the two copies between it and containerd's fifos.
pub(crate) struct Console {
    master: Arc<File>,
    /// Ends both copies.
    stop: Arc<AtomicBool>,
    /// Ends the stdin copy only (`CloseIO`).
    stdin_closed: Arc<AtomicBool>,
    /// Closed when the output copy has ended.
    output_done: Option<mpsc::Receiver<()>>,
}

impl Console {
    /// Takes the master `socket` receives and starts copying between it and the fifos.
    pub(crate) fn start(
        socket: &ConsoleSocket,
        stdin: &str,
        stdout: &str,
    ) -> Result<Console, ConsoleError> {
        let master = Arc::new(File::from(socket.receive(RECEIVE_TIMEOUT)?));
        let output = crate::stdio::open_output(stdout).map_err(|source| ConsoleError::Stdio {
            what: "stdout",
            path: stdout.to_string(),
            source,
        })?;
        let input = if stdin.is_empty() {
            None
        } else {
            Some(
                crate::stdio::open_stdin(stdin).map_err(|source| ConsoleError::Stdio {
                    what: "stdin",
                    path: stdin.to_string(),
                    source,
                })?,
            )
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stdin_closed = Arc::new(AtomicBool::new(false));
        let (done, output_done) = mpsc::channel::<()>();
        {
            let (master, stop) = (Arc::clone(&master), Arc::clone(&stop));
            std::thread::spawn(move || {
                copy(&master, output, &[&stop]);
                drop(done);
            });
        }
        if let Some(input) = input {
            let (master, stop, closed) = (
                Arc::clone(&master),
                Arc::clone(&stop),
                Arc::clone(&stdin_closed),
            );
            std::thread::spawn(move || copy(&input, &*master, &[&stop, &closed]));
        }
        Ok(Console {
            master,
            stop,
            stdin_closed,
            output_done: Some(output_done),
        })
    }

    /// Sets the terminal's size, which the process sees as `SIGWINCH` and `TIOCGWINSZ`.
    pub(crate) fn resize(&self, width: u32, height: u32) -> Result<(), ConsoleError> {
        let size = libc::winsize {
            ws_row: height.min(u16::MAX as u32) as u16,
            ws_col: width.min(u16::MAX as u32) as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize, which lives across the call; the master is open.
        let set = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        if set < 0 {
            return Err(ConsoleError::Resize {
                width,
                height,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Stops copying stdin into the terminal (containerd's `CloseIO`); the terminal stays.
    pub(crate) fn close_stdin(&self) {
        self.stdin_closed.store(true, Ordering::Relaxed);
    }

    /// What an exit waits on, outside the task lock, before it is published: the output copy
    /// ends when the pty's other side has closed and all it wrote reached the fifo.
    pub(crate) fn take_output_done(&mut self) -> Option<mpsc::Receiver<()>> {
        self.output_done.take()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` into `to` until `from` ends (end of file, or `EIO` once a pty's other side
/// has closed), a write fails, or one of `stops` is set.
fn copy(from: &File, mut to: impl Write, stops: &[&AtomicBool]) {
    let mut buf = [0u8; 8192];
    let mut from_ref = from;
    while !stops.iter().any(|s| s.load(Ordering::Relaxed)) {
        // A fifo with no writer yet is neither readable nor hung up, so stdin waits for
        // containerd's end rather than reading an early end of file.
        match readable_within(from.as_fd(), POLL_PERIOD) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        match from_ref.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    /// A pty pair of this process, standing in for the one a container's process makes.
    fn openpty() -> (OwnedFd, OwnedFd) {
        use std::os::fd::FromRawFd;
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two descriptors into the two ints; the name, termios and size
        // pointers may be null.
        let made = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(made, 0, "openpty: {}", io::Error::last_os_error());
        // SAFETY: both descriptors were just made and are owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
    }

    /// The runtime's side of the protocol: one message naming the device, with the master.
    fn send_master(socket: &ConsoleSocket, master: &OwnedFd) {
        let peer = std::os::unix::net::UnixStream::connect(socket.path()).expect("connect");
        wasmbay_runtime_bridge::fd_passing::send(peer.as_fd(), b"/dev/ptmx", &[master.as_fd()])
            .expect("send the master");
    }

    #[test]
    fn a_terminal_copies_both_ways_resizes_and_drains_at_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket =
            ConsoleSocket::bind(&dir.path().join("c.sock")).expect("bind a console socket");
        let (master, slave) = openpty();
        send_master(&socket, &master);
        drop(master);
        let stdin = dir.path().join("stdin");
        let stdout = dir.path().join("stdout");
        std::fs::write(&stdin, b"typed\n").expect("stdin file");
        std::fs::write(&stdout, b"").expect("stdout file");
        let mut console = Console::start(
            &socket,
            &stdin.display().to_string(),
            &stdout.display().to_string(),
        )
        .expect("console");

        // What the "process" reads on its terminal is what came in on stdin.
        let mut slave = File::from(slave);
        let mut line = [0u8; 6];
        slave.read_exact(&mut line).expect("read the terminal");
        assert_eq!(&line, b"typed\n");

        console.resize(100, 40).expect("resize");
        let mut size: libc::winsize =
            // SAFETY: winsize is plain integers; zero is a valid value.
            unsafe { std::mem::zeroed() };
        assert_eq!(
            // SAFETY: TIOCGWINSZ writes one winsize into `size`, which outlives the call.
            unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) },
            0
        );
        assert_eq!((size.ws_col, size.ws_row), (100, 40));

        slave.write_all(b"out\n").expect("write the terminal");
        let done = console.take_output_done().expect("output signal");
        drop(slave);
        // The output copy ends once the other side closed, having written everything.
        assert!(matches!(
            done.recv_timeout(Duration::from_secs(5)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
        let written = std::fs::read_to_string(&stdout).expect("stdout");
        // The pty echoes what came in and turns "\n" into "\r\n", as a terminal does.
        assert!(written.contains("out\r\n"), "{written:?}");
    }

    #[test]
    fn no_terminal_sent_is_an_error_naming_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = ConsoleSocket::bind(&dir.path().join("quiet.sock")).expect("bind");
        let (master, slave) = openpty();
        drop((master, slave));
        // A peer that connects and hangs up without a message.
        drop(std::os::unix::net::UnixStream::connect(socket.path()).expect("connect"));
        let err = Console::start(&socket, "", "")
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("quiet.sock"), "{err}");
    }
}
