//! Running commands with a deadline, and looking at processes and mounts through `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use crate::TestkitError;

/// Runs `command` to completion, capturing its output, killing it after `timeout`.
/// A non-zero exit is not an error here; see [`crate::PrivateContainerd::run_ok`].
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Result<Output, TestkitError> {
    let described = describe(command);
    let program = PathBuf::from(command.get_program());
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| TestkitError::Spawn { program, error })?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(TestkitError::Io {
            what: "wait for",
            path: PathBuf::from(described),
            error,
        }),
        Err(_) => {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: plain kill(2) on our own child, which is not reaped yet (the waiting
                // thread reaps it after this signal).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = rx.recv_timeout(Duration::from_secs(5));
            Err(TestkitError::CommandTimeout {
                command: described,
                timeout,
            })
        }
    }
}

/// `program arg…` for messages.
pub(crate) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Pids of processes whose command line contains `needle` (other than this process).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Pids of processes whose root filesystem comes from at or below `dir`: the processes of
/// containers whose rootfs (an overlay or bind mount of a snapshot) lives there. Read from
/// each process's own mount table, since `/proc/PID/root` of a pivoted container reads `/`.
pub fn processes_rooted_under(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let info = std::fs::read_to_string(entry.path().join("mountinfo")).ok()?;
            let root_mount = info
                .lines()
                .rfind(|line| line.split(' ').nth(4) == Some("/"))?;
            (pid != me && unescape_mountinfo(root_mount).contains(&needle)).then_some(pid)
        })
        .collect()
}

/// Mount points at or below `dir` in this process's mount namespace, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    mounts.sort_by(|a, b| {
        b.components()
            .count()
            .cmp(&a.components().count())
            .then_with(|| b.cmp(a))
    });
    mounts
}

/// The cgroup directories process `pid` is in, one per mounted hierarchy (cgroup v1's
/// controllers, or v2's single tree), the root excluded. Read before a container ends, they
/// say what must be gone once it is cleaned up.
pub fn cgroup_dirs_of(pid: u32) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    let unified = root.join("cgroup.controllers").exists();
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let path = path.trim_start_matches('/');
            if path.is_empty() {
                return None;
            }
            let hierarchy = match (unified, controllers) {
                (true, "") => root.to_path_buf(),
                (false, "") => return None,
                (_, named) => root.join(named.strip_prefix("name=").unwrap_or(named)),
            };
            Some(hierarchy.join(path)).filter(|dir| dir.is_dir())
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(value) = u8::try_from(value) {
                    out.push(value);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Forks, runs `check` in the child and reports whether it returned true there. For tests of
/// process-wide state (namespaces, address space) that must not change the test process.
/// The child leaves with `_exit`, so it runs no destructor of the parent's state.
pub fn holds_in_forked_child(check: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child runs `check` and `_exit`s; glibc's fork resets the allocator locks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = if check() { 0 } else { 1 };
        // SAFETY: ends the forked child without unwinding into the parent's test harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    reaped == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/a\\134b"), "/a\\b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
        assert_eq!(unescape_mountinfo("/x\\04"), "/x\\04");
    }

    #[test]
    fn root_is_a_mount() {
        assert!(mounts_under(Path::new("/")).contains(&PathBuf::from("/")));
    }

    #[test]
    fn timeouts_kill() {
        let started = std::time::Instant::now();
        let result = run_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(200));
        assert!(matches!(result, Err(TestkitError::CommandTimeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(10));
        let output = run_with_timeout(Command::new("echo").arg("hi"), Duration::from_secs(10))
            .expect("echo runs");
        assert_eq!(output.stdout, b"hi\n");
    }
}
