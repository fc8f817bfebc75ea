//! Opening the stdio fifos containerd hands a task.
//!
//! A fifo opened for writing blocks until a reader exists; containerd and ctr open their ends
//! around the create call, so the write side first tries a non-blocking open and falls back to
//! read-write (which never blocks) when no reader is there yet.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

fn clear_nonblock(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl reads and sets the flags of a descriptor `file` keeps open for both calls; no
    // memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The task's stdin: the fifo at `path`, or /dev/null when containerd gave none.
pub fn open_stdin(path: &str) -> io::Result<File> {
    if path.is_empty() {
        return File::open("/dev/null");
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    clear_nonblock(&file)?;
    Ok(file)
}

/// The task's stdout or stderr: the fifo (or file) at `path`, or /dev/null.
pub fn open_output(path: &str) -> io::Result<File> {
    if path.is_empty() {
        return OpenOptions::new().write(true).open("/dev/null");
    }
    // `ctr run --log-uri file:///…`: a plain log file, created if need be and appended to by
    // both streams, as runc's shim does.
    if let Some(file) = path.strip_prefix("file://") {
        return OpenOptions::new().create(true).append(true).open(file);
    }
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => {
            clear_nonblock(&file)?;
            Ok(file)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            OpenOptions::new().read(true).write(true).open(path)
        }
        Err(e) => Err(e),
    }
}

/// A task's or exec's three stdio files, each error naming the path at fault.
pub fn open_stdio(stdin: &str, stdout: &str, stderr: &str) -> anyhow::Result<[File; 3]> {
    use anyhow::Context as _;
    Ok([
        open_stdin(stdin).with_context(|| format!("stdin {stdin}"))?,
        open_output(stdout).with_context(|| format!("stdout {stdout}"))?,
        open_output(stderr).with_context(|| format!("stderr {stderr}"))?,
    ])
}
