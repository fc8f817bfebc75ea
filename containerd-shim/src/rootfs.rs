//! Mounting the rootfs that containerd describes in `CreateTaskRequest.rootfs`.
//!
//! Done with `mount(2)` directly on the calling thread: the shim is multithreaded (ttrpc
//! workers), and helpers that fork to shorten long overlay option strings can deadlock in the
//! forked child.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// Splits mount options into flags and the data string the filesystem gets.
fn parse_options(options: &[String]) -> (libc::c_ulong, Vec<String>) {
    let mut flags: libc::c_ulong = 0;
    let mut data = Vec::new();
    for option in options {
        match option.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "relatime" => flags |= libc::MS_RELATIME,
            "noatime" => flags |= libc::MS_NOATIME,
            "remount" => flags |= libc::MS_REMOUNT,
            other => data.push(other.to_string()),
        }
    }
    (flags, data)
}

fn cstring(text: &str) -> io::Result<CString> {
    CString::new(text)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mount argument"))
}

pub fn mount(fs_type: &str, source: &str, options: &[String], target: &Path) -> io::Result<()> {
    let (flags, data) = parse_options(options);
    let target_c = cstring(&target.to_string_lossy())?;
    let source_c = cstring(source)?;
    let type_c = cstring(if flags & libc::MS_BIND != 0 {
        ""
    } else {
        fs_type
    })?;
    let data_c = cstring(&data.join(","))?;
    // SAFETY: every pointer comes from a CString above that lives past the call; mount only reads
    // them.
    let rc = unsafe {
        libc::mount(
            source_c.as_ptr(),
            target_c.as_ptr(),
            type_c.as_ptr(),
            flags,
            data_c.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // A bind mount ignores MS_RDONLY until remounted.
    if flags & libc::MS_BIND != 0 && flags & libc::MS_RDONLY != 0 {
        // SAFETY: a remount reads only the target, a CString that lives past the call; the others
        // may be null.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                target_c.as_ptr(),
                std::ptr::null(),
                flags | libc::MS_REMOUNT,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Detaches the mount at `target` (and everything under it).
pub fn unmount(target: &Path) -> io::Result<()> {
    let target_c = cstring(&target.to_string_lossy())?;
    // SAFETY: the target is a CString that lives past the call; umount2 only reads it.
    if unsafe { libc::umount2(target_c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let (flags, data) = parse_options(&[
            "rbind".into(),
            "ro".into(),
            "lowerdir=/a:/b".into(),
            "index=off".into(),
        ]);
        assert_eq!(flags, libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY);
        assert_eq!(data, ["lowerdir=/a:/b", "index=off"]);
    }
}
