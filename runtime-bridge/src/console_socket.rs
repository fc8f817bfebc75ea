//! The listening end of runc's console socket: a process made with a terminal gets a pty
//! inside its container, and the runtime sends the pty's master here as one `SCM_RIGHTS`
//! message. The shim keeps that master to copy the process's terminal and resize it; a test
//! of `wasmbay-runtime --console-socket` plays the part a runc caller plays.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleSocketError {
    #[error("console socket {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("console socket {}: no terminal came within {timeout:?}", path.display())]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("console socket {}: the message carried no terminal descriptor", path.display())]
    NoTerminal { path: PathBuf },
}

/// A listening console socket, unlinked when dropped.
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Listens at `path`; its directory is made private to the caller (mode 0700) when it
    /// does not exist, as whoever connects may hand over a terminal.
    pub fn bind(path: &Path) -> Result<ConsoleSocket, ConsoleSocketError> {
        use std::os::unix::fs::DirBuilderExt;
        let failed = |source| ConsoleSocketError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(failed)?;
        }
        // A socket file left by a process that died (the name is per process and counter).
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        let listener = UnixListener::bind(path).map_err(failed)?;
        listener.set_nonblocking(true).map_err(failed)?;
        Ok(ConsoleSocket {
            path: path.to_path_buf(),
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master the runtime sends, waiting at most `timeout` for the connection and
    /// the message (a process fails before it sends one, and nothing may wait for ever).
    pub fn receive(&self, timeout: Duration) -> Result<OwnedFd, ConsoleSocketError> {
        let deadline = Instant::now() + timeout;
        let failed = |source| ConsoleSocketError::Io {
            path: self.path.clone(),
            source,
        };
        let timed_out = || ConsoleSocketError::Timeout {
            path: self.path.clone(),
            timeout,
        };
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !readable(self.listener.as_fd(), deadline).map_err(failed)? {
                        return Err(timed_out());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(e)),
            }
        };
        stream.set_nonblocking(false).map_err(failed)?;
        if !readable(stream.as_fd(), deadline).map_err(failed)? {
            return Err(timed_out());
        }
        let (_name, mut fds) = crate::fd_passing::recv(stream.as_fd()).map_err(failed)?;
        // One descriptor is the protocol; any other is closed as it drops.
        if fds.is_empty() {
            return Err(ConsoleSocketError::NoTerminal {
                path: self.path.clone(),
            });
        }
        Ok(fds.swap_remove(0))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Waits until `fd` is readable (or hung up), false when `deadline` passes first.
fn readable(fd: BorrowedFd<'_>, deadline: Instant) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        if readable_within(fd, left)? {
            return Ok(true);
        }
    }
}

/// One wait of at most `timeout` for `fd` to have data or be hung up. False when the time
/// passed or a signal came first, so callers that loop can look at their own stop condition.
pub fn readable_within(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: `poll` is one live pollfd for the duration of the call.
    match unsafe { libc::poll(&mut poll, 1, millis) } {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_sent_descriptor_is_received_and_the_socket_unlinked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("private/c.sock");
        let socket = ConsoleSocket::bind(&path).expect("bind");
        let peer = UnixStream::connect(&path).expect("connect");
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        crate::fd_passing::send(peer.as_fd(), b"/dev/ptmx", &[file.as_fd()]).expect("send");
        let fd = socket
            .receive(Duration::from_secs(5))
            .expect("a descriptor");
        assert!(fd.as_raw_fd() >= 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path.parent().expect("parent"))
            .expect("dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(socket);
        assert!(!path.exists());
    }

    #[test]
    fn nobody_connecting_is_a_timeout_naming_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sock");
        let socket = ConsoleSocket::bind(&path).expect("bind");
        let err = socket
            .receive(Duration::from_millis(100))
            .expect_err("timeout");
        assert!(matches!(err, ConsoleSocketError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("c.sock"), "{err}");
        // A connection that sends nothing descriptive is refused too.
        let peer = UnixStream::connect(&path).expect("connect");
        crate::fd_passing::send(peer.as_fd(), b"no fd", &[]).expect("send");
        let err = socket.receive(Duration::from_secs(5)).expect_err("refused");
        assert!(
            matches!(err, ConsoleSocketError::NoTerminal { .. }),
            "{err}"
        );
    }
}
