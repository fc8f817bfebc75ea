//! A container with a network namespace of its own gets its loopback interface up, as runc
//! gives it: the kernel makes a new namespace with `lo` down, and a guest that listens on
//! 127.0.0.1 (a `wasi:sockets` server, an HTTP handler reached from inside the pod) would find
//! the network unreachable. Namespaces the spec names by path (a pod's, made by the CRI and
//! its CNI loopback plugin) are left as they are.
//!
//! Done from the host side once the container's init exists and before it starts: the init
//! drops the capabilities it would need before any code of ours runs in it.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Whether the bundle's `config.json` asks for a new network namespace (one without a path).
pub fn wants_new_netns(bundle: &Path) -> io::Result<bool> {
    let text = std::fs::read(bundle.join("config.json"))?;
    let spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(new_netns_in(&spec))
}

fn new_netns_in(spec: &serde_json::Value) -> bool {
    spec.pointer("/linux/namespaces")
        .and_then(|n| n.as_array())
        .is_some_and(|namespaces| {
            namespaces.iter().any(|ns| {
                ns.get("type").and_then(|t| t.as_str()) == Some("network")
                    && ns
                        .get("path")
                        .and_then(|p| p.as_str())
                        .is_none_or(str::is_empty)
            })
        })
}

/// Sets `lo` up in the network namespace of process `pid`. A thread of its own enters the
/// namespace, so the caller's stays as it was.
pub fn bring_up(pid: i32) -> io::Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: setns on a descriptor this thread holds open; it changes only this thread's
        // network namespace, and the thread ends when this closure returns.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        set_loopback_up()
    })
    .join()
    .map_err(|_| io::Error::other("the thread setting loopback up panicked"))?
}

fn set_loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor socket(2) just returned, owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data for which all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface named in `request` and writes its flags into
    // it; `request` lives across the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the flags member of the union above.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    request.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads `request`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_network_namespace_without_path_is_new() {
        let spec = |namespaces: serde_json::Value| serde_json::json!({"linux": {"namespaces": namespaces}});
        assert!(new_netns_in(&spec(
            serde_json::json!([{"type": "pid"}, {"type": "network"}])
        )));
        assert!(new_netns_in(&spec(
            serde_json::json!([{"type": "network", "path": ""}])
        )));
        assert!(!new_netns_in(&spec(
            serde_json::json!([{"type": "network", "path": "/var/run/netns/cni-1"}])
        )));
        assert!(!new_netns_in(&spec(serde_json::json!([{"type": "pid"}]))));
        assert!(!new_netns_in(&serde_json::json!({})));
    }
}
