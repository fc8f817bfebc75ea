//! [`WasiConfig`] → WasmEdge's WASI preview 1 host module.
//!
//! WasmEdge takes WASI settings as C strings: `argv` (first is the program name),
//! `KEY=VALUE` environment entries and `guest:host[:readonly]` preopens. What that syntax
//! cannot express is refused here with [`EngineError::WasiSetup`] rather than passed on to be
//! misread: WasmEdge splits preopens at the first `:` and silently skips a directory it cannot
//! open, so a guest would start without a directory it was promised.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;

use wasmbay_shim_core::{EngineError, Stdio, WasiConfig};

use crate::capi::Instance;

/// The WASI module and the descriptors it uses; the files must stay open as long as the
/// module, since WasmEdge maps the guest's 0/1/2 to their raw numbers without owning them.
pub(crate) struct Wasi {
    pub(crate) module: Instance,
    _stdio: Vec<File>,
}

pub(crate) fn build(config: &mut WasiConfig) -> Result<Wasi, EngineError> {
    let setup = |what: String| EngineError::WasiSetup(what);
    let c_string = |value: &str, what: &str| {
        CString::new(value).map_err(|_| setup(format!("{what} contains a NUL byte: {value:?}")))
    };

    let args = config
        .args
        .iter()
        .map(|arg| c_string(arg, "argument"))
        .collect::<Result<Vec<_>, _>>()?;

    let mut envs = Vec::with_capacity(config.env.len());
    for (key, value) in &config.env {
        if key.contains('=') {
            return Err(setup(format!(
                "environment variable name {key:?} contains `=`"
            )));
        }
        envs.push(c_string(&format!("{key}={value}"), "environment variable")?);
    }

    let mut preopens = Vec::with_capacity(config.preopens.len());
    for preopen in &config.preopens {
        let host = preopen.host.to_str().ok_or_else(|| {
            setup(format!(
                "preopen host path {} is not UTF-8",
                preopen.host.display()
            ))
        })?;
        if preopen.guest.contains(':') || host.contains(':') {
            return Err(setup(format!(
                "preopen {host} as {}: WasmEdge's `guest:host` syntax cannot hold a `:` in a path",
                preopen.guest
            )));
        }
        if !preopen.host.is_dir() {
            return Err(setup(format!(
                "preopen {host} as {}: not a directory",
                preopen.guest
            )));
        }
        let mode = if preopen.read_only { ":readonly" } else { "" };
        preopens.push(c_string(
            &format!("{}:{host}{mode}", preopen.guest),
            "preopen",
        )?);
    }

    let mut held = Vec::new();
    let stdin = descriptor(std::mem::take(&mut config.stdin), 0, false, &mut held)?;
    let stdout = descriptor(std::mem::take(&mut config.stdout), 1, true, &mut held)?;
    let stderr = descriptor(std::mem::take(&mut config.stderr), 2, true, &mut held)?;

    let module = Instance::wasi(&args, &envs, &preopens, [stdin, stdout, stderr])
        .map_err(|e| setup(e.to_string()))?;
    Ok(Wasi {
        module,
        _stdio: held,
    })
}

/// The raw descriptor WasmEdge should use for one standard stream. Files opened here or handed
/// in by the frontend are pushed to `held` so they stay open for the run.
fn descriptor(
    stdio: Stdio,
    inherited: i32,
    write: bool,
    held: &mut Vec<File>,
) -> Result<i32, EngineError> {
    let file = match stdio {
        // An inherited stream that the process does not have (closed by whoever started
        // us) would make WasmEdge refuse the whole WASI module; the guest gets /dev/null
        // instead, as a shell would give it.
        Stdio::Inherit if is_open(inherited) => return Ok(inherited),
        Stdio::Inherit | Stdio::Null => dev_null(write)?,
        Stdio::File(file) => file,
    };
    let fd = file.as_raw_fd();
    held.push(file);
    Ok(fd)
}

fn dev_null(write: bool) -> Result<File, EngineError> {
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map_err(|e| EngineError::WasiSetup(format!("open /dev/null: {e}")))
}

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}
