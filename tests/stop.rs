//! Stopping a running guest: signals to `wasmbay run` and its timeout, on a loop that makes no
//! host calls. Only exit statuses are asserted; how fast is measured by `wasmbay bench kill`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use common::{wasmbay, SPIN_WAT};

fn start_spinner(dir: &std::path::Path) -> Child {
    let module = dir.join("spin.wat");
    std::fs::write(&module, SPIN_WAT).unwrap();
    let mut child = wasmbay(dir)
        .arg("run")
        .arg(&module)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n", "guest did not start");
    child
}

fn exit_after(signal: i32) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_spinner(dir.path());
    // SAFETY: kill takes plain integers; the pid is this test's child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[test]
fn sigterm_stops_a_spinning_guest_with_143() {
    assert_eq!(exit_after(libc::SIGTERM), 143);
}

#[test]
fn sigint_stops_a_spinning_guest_with_130() {
    assert_eq!(exit_after(libc::SIGINT), 130);
}

#[test]
fn sigkill_gives_137() {
    assert_eq!(exit_after(libc::SIGKILL), 137);
}

#[test]
fn timeout_stops_the_guest_with_137_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("spin.wat");
    std::fs::write(&module, SPIN_WAT).unwrap();
    let output = wasmbay(dir.path())
        .args(["run", "--timeout-ms", "200"])
        .arg(&module)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(137));
    assert_eq!(output.stdout, b"ready\n");
    assert!(String::from_utf8_lossy(&output.stderr).contains("200 ms timeout"));
}

#[test]
fn func_suffix_selects_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("spin.wat");
    std::fs::write(&module, SPIN_WAT).unwrap();
    let output = wasmbay(dir.path())
        .arg("run")
        .arg(format!("{}#exit7", module.display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
}
