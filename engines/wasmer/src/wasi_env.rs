//! [`WasiConfig`] → a wasix environment builder for a WASI preview 1 command.
//!
//! Only what the config lists reaches the guest: no host environment, no network (the runtime
//! has no networking), and no directories beyond the preopens. wasix resolves every path in
//! one virtual file system. Each preopened host directory is mounted in it: the first at `/`
//! (it becomes the root wasix resolves absolute paths and symlink targets from, see
//! [`crate::preopens`]), the others at their guest path when that is absolute and still free,
//! else at a private `/.wasmbay/preopen/N`. Each is preopened under its guest name and numbered
//! from descriptor 3 in the configured order, as in wasmtime. Each mount is rooted at its host
//! directory, so `..` cannot climb out of what was granted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmbay_shim_core::{EngineError, WasiConfig};
use wasmer_wasix::virtual_fs::{host_fs, FileSystem, MountFileSystem};
use wasmer_wasix::{Runtime, WasiEnvBuilder};

use crate::read_only_fs::ReadOnlyFs;
use crate::stdio::{self, Stream};
use crate::wrappers::RootFd;

/// `root` learns what descriptor 3 holds once wasix has set up the preopens (see
/// [`crate::wrappers`]).
pub(crate) fn builder(
    config: WasiConfig,
    runtime: Arc<dyn Runtime + Send + Sync>,
    io: &tokio::runtime::Handle,
    root: &RootFd,
) -> Result<WasiEnvBuilder, EngineError> {
    let setup = |what: String| EngineError::WasiSetup(what);
    let mut builder = WasiEnvBuilder::default();
    builder.set_runtime(runtime);
    // wasix's convenience commands (`bash`, `wasmer` …) are not part of WASI preview 1.
    builder.set_disable_default_builtins(true);
    builder.add_args(&config.args);
    builder.add_envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));

    let mounts = MountFileSystem::new();
    let mut used = HashSet::new();
    for (index, preopen) in config.preopens.iter().enumerate() {
        let mount_point = if index == 0 {
            PathBuf::from("/")
        } else if preopen.guest.starts_with('/') && !used.contains(Path::new(&preopen.guest)) {
            PathBuf::from(&preopen.guest)
        } else {
            PathBuf::from(format!("/.wasmbay/preopen/{index}"))
        };
        used.insert(mount_point.clone());
        let host = host_fs::FileSystem::new(io.clone(), &preopen.host).map_err(|e| {
            setup(format!(
                "preopen {} as {}: {e}",
                preopen.host.display(),
                preopen.guest
            ))
        })?;
        let mut host: Arc<dyn FileSystem + Send + Sync> = Arc::new(host);
        if preopen.read_only {
            host = Arc::new(ReadOnlyFs::new(host));
        }
        mounts.mount(&mount_point, host).map_err(|e| {
            setup(format!(
                "preopen {} as {}: {e}",
                preopen.host.display(),
                preopen.guest
            ))
        })?;
        let writable = !preopen.read_only;
        builder
            .add_preopen_build(|p| {
                p.directory(&mount_point)
                    .alias(&preopen.guest)
                    .read(true)
                    .write(writable)
                    .create(writable)
            })
            .map_err(|e| {
                setup(format!(
                    "preopen {} as {}: {e}",
                    preopen.host.display(),
                    preopen.guest
                ))
            })?;
    }
    builder.set_mount_fs(mounts);
    // wasix's own root would be descriptor 3; ours take its place (see `crate::preopens`).
    let guest_names = config.preopens.iter().map(|p| p.guest.clone()).collect();
    builder = builder.setup_fs(crate::preopens::hook(guest_names, root.clone()));

    builder.set_stdin(stdio::open(config.stdin, Stream::Stdin)?);
    builder.set_stdout(stdio::open(config.stdout, Stream::Stdout)?);
    builder.set_stderr(stdio::open(config.stderr, Stream::Stderr)?);
    Ok(builder)
}
