//! A configuration change taken up by containerd: the file written, containerd restarted, the
//! CRI asked until it serves (or stops serving) wasmbay's handlers; and when containerd does
//! not come back with the new file, the old one put back and containerd restarted with it, so
//! that a file containerd rejects never stays on the node.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cri_probe;
use super::layout::{Layout, Node, Restart};
use super::record::write_atomically;

/// A file's content: `None` for no file.
pub type Content = Option<String>;

/// What a change must bring about before it counts as taken up.
pub struct Expect<'a> {
    pub handlers: &'a [String],
    /// The handlers must be served (install) or gone (uninstall).
    pub present: bool,
    pub timeout: Duration,
}

pub fn write_content(node: &Node, path: &Path, content: &Content) -> Result<()> {
    let here = node.path(path);
    match content {
        Some(text) => write_atomically(&here, text.as_bytes(), 0o644),
        None => match std::fs::remove_file(&here) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", here.display())),
        },
    }
}

/// Writes `new` over `old` at `path` and has containerd take it up; on failure puts `old`
/// back, restarts again, and fails naming both what went wrong and what was restored.
pub fn apply(
    node: &Node,
    layout: &Layout,
    path: &Path,
    old: &Content,
    new: &Content,
    expect: &Expect<'_>,
) -> Result<()> {
    write_content(node, path, new)?;
    let taken_up =
        restart(node, &layout.restart, expect.timeout).and_then(|()| wait(node, layout, expect));
    let Err(problem) = taken_up else {
        return Ok(());
    };
    tracing::warn!(error = %problem, path = %path.display(), "containerd did not take up the new configuration; rolling back");
    write_content(node, path, old).with_context(|| {
        format!(
            "{problem:#}; and putting the previous {} back failed",
            path.display()
        )
    })?;
    let back = restart(node, &layout.restart, expect.timeout).and_then(|()| {
        // With the old file, the handlers are as they were before the change.
        let before = Expect {
            handlers: &[],
            present: true,
            timeout: expect.timeout,
        };
        wait(node, layout, &before)
    });
    match back {
        Ok(()) => bail!(
            "{problem:#}; the previous {} is back in place and containerd answers with it",
            path.display()
        ),
        Err(again) => bail!(
            "{problem:#}; the previous {} is back in place, but containerd did not come back \
             with it either: {again:#}",
            path.display()
        ),
    }
}

fn wait(node: &Node, layout: &Layout, expect: &Expect<'_>) -> Result<()> {
    cri_probe::wait_for(
        &node.path(&layout.socket),
        expect.handlers,
        expect.present,
        expect.timeout,
    )
    .map(|_| ())
    .map_err(anyhow::Error::msg)
}

/// Restarts containerd the way the node does it; every command is bounded by `limit`.
pub fn restart(node: &Node, how: &Restart, limit: Duration) -> Result<()> {
    let mut command = match how {
        Restart::Systemd(unit) => {
            let mut c = node.command("systemctl");
            c.args(["restart", unit]);
            c
        }
        Restart::InitScript(script) => {
            let mut c = node.command(&script.to_string_lossy());
            c.arg("restart");
            c
        }
        Restart::Command(line) => {
            let mut c = Command::new("sh");
            c.args(["-c", line]);
            c
        }
        Restart::Reloads => return Ok(()),
        Restart::Unknown => bail!(
            "no way to restart containerd was found (no systemd unit, no /etc/init.d script): \
             pass --restart-command, or --no-restart and restart it yourself"
        ),
    };
    run_bounded(&mut command, limit)
}

/// An anonymous file in memory: the installer image has no /tmp (nor any directory to spare),
/// and a command's few kilobytes of output need none.
fn output_file(name: &str) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let name = std::ffi::CString::new(format!("wasmbay-{name}"))?;
    // SAFETY: memfd_create reads the NUL-terminated name, alive for the call, and returns a new
    // descriptor or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just made and nothing else owns it.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Runs `command` to its end or kills it at `limit`; its output goes to the log. The output
/// goes through files, not pipes: a command that leaves a daemon behind (an init script, a
/// `--restart-command` starting containerd) would hold a pipe open for the daemon's life.
pub fn run_bounded(command: &mut Command, limit: Duration) -> Result<()> {
    use std::io::{Read, Seek};
    let shown = format!("{command:?}");
    let mut stdout = output_file("stdout").context("a file for the command's output")?;
    let mut stderr = output_file("stderr").context("a file for the command's errors")?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().context("the command's output file")?)
        .stderr(stderr.try_clone().context("the command's error file")?)
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {shown}"))?
        {
            break status;
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{shown} did not finish within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |file: &mut std::fs::File| {
        let mut text = String::new();
        let _ = file.rewind();
        let _ = file.take(64 * 1024).read_to_string(&mut text);
        text
    };
    let (out, err) = (read(&mut stdout), read(&mut stderr));
    tracing::debug!(command = %shown, %status, stdout = %out, stderr = %err, "restart command ran");
    if !status.success() {
        bail!("{shown}: {status}: {}", err.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_fails_or_hangs_is_an_error() {
        assert!(run_bounded(Command::new("true").arg("x"), Duration::from_secs(5)).is_ok());
        // A daemon left behind keeps no pipe open to wait on.
        let started = Instant::now();
        run_bounded(
            Command::new("sh").args(["-c", "sleep 20 & echo started"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        let err = run_bounded(
            Command::new("sh").args(["-c", "echo nope >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope"), "{err}");
        let started = Instant::now();
        let err = run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
