//! [`WasiConfig`] → a wasix environment builder for a WASI preview 1 command.
//!
//! Only what the config lists reaches the guest: no host environment, no network (the runtime
//! has no networking), and no directories beyond the preopens. wasix resolves every path in
//! one virtual file system and always opens its root as descriptor 3 (read-only), so the
//! preopens follow from descriptor 4. Each preopened host directory is mounted in that file
//! system at its guest path (a relative guest name such as `.` at a private
//! `/.wasmbay/preopen/N`), so the root shows what a user expects, and preopened there under its
//! guest name. Each mount is rooted at its host directory, so `..` cannot climb out of what was
//! granted.

use std::path::PathBuf;
use std::sync::Arc;

use wasmbay_shim_core::{EngineError, WasiConfig};
use wasmer_wasix::virtual_fs::{host_fs, FileSystem, MountFileSystem};
use wasmer_wasix::{Runtime, WasiEnvBuilder};

use crate::read_only_fs::ReadOnlyFs;
use crate::stdio::{self, Stream};

pub(crate) fn builder(
    config: WasiConfig,
    runtime: Arc<dyn Runtime + Send + Sync>,
    io: &tokio::runtime::Handle,
) -> Result<WasiEnvBuilder, EngineError> {
    let setup = |what: String| EngineError::WasiSetup(what);
    let mut builder = WasiEnvBuilder::default();
    builder.set_runtime(runtime);
    // wasix's convenience commands (`bash`, `wasmer` …) are not part of WASI preview 1.
    builder.set_disable_default_builtins(true);
    builder.add_args(&config.args);
    builder.add_envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));

    let mounts = MountFileSystem::new();
    for (index, preopen) in config.preopens.iter().enumerate() {
        let mount_point = if preopen.guest.starts_with('/') {
            PathBuf::from(&preopen.guest)
        } else {
            PathBuf::from(format!("/.wasmbay/preopen/{index}"))
        };
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

    builder.set_stdin(stdio::open(config.stdin, Stream::Stdin)?);
    builder.set_stdout(stdio::open(config.stdout, Stream::Stdout)?);
    builder.set_stderr(stdio::open(config.stderr, Stream::Stderr)?);
    Ok(builder)
}
