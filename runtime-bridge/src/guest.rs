//! Running the wasm guest as the container's init process. Nothing here returns: the guest's
//! exit status becomes the process's.

use std::io::Write;
use std::path::Path;

use wasmbay_shim_core::engine::error_codes;
use wasmbay_shim_core::entrypoint::Entrypoint;
use wasmbay_shim_core::runner::ModuleLoader;
use wasmbay_shim_core::signals::stop_on_signals;
use wasmbay_shim_core::{
    CompiledModule, ExitStatus, ServeSettings, StopHandle, StopMode, WasiConfig,
};

use crate::prepare::{FileIdentity, ModuleSource, PreparedArtifact, PreparedCode};

fn die(code: i32, message: &str) -> ! {
    eprintln!("wasmbay: {message}");
    end_process(code)
}

/// Ends the whole init process (every thread: `_exit` is `exit_group`) with `code`. Not
/// `std::process::exit`: its exit handlers and Rust's one-exiting-thread guard can wait on
/// other threads, and nothing of the guest's needs running after its output is flushed.
fn end_process(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process and touches none of its memory.
    unsafe { libc::_exit(code) }
}

fn load(
    engine: &dyn wasmbay_shim_core::Engine,
    module_path: &Path,
    prepared: Option<&PreparedArtifact>,
) -> std::sync::Arc<dyn CompiledModule> {
    let Some(prepared) = prepared else {
        return load_in_place(engine, module_path);
    };
    match (&prepared.source, &prepared.code) {
        (ModuleSource::ImageLayer(name), PreparedCode::Wasm(bytes)) => {
            match ModuleLoader::new(engine, None).load_bytes(Path::new(name), bytes) {
                Ok((module, _)) => module,
                Err(e) => die(e.exit_code(), &e.to_string()),
            }
        }
        (ModuleSource::ImageLayer(name), PreparedCode::Artifact { file, path, kind }) => {
            // The layer is not in the rootfs, so there is nothing to fall back to.
            let loaded = file
                .try_clone()
                .map_err(|e| e.to_string())
                .and_then(|file| {
                    engine
                        .load_precompiled_file(file, path, *kind)
                        .map_err(|e| e.to_string())
                });
            match loaded {
                Ok(module) => module,
                Err(e) => die(error_codes::INVALID_MODULE, &format!("{name}: {e}")),
            }
        }
        (ModuleSource::RootfsFile(identity), PreparedCode::Artifact { file, path, kind }) => {
            let same_file = FileIdentity::of(module_path).ok().as_ref() == Some(identity);
            match (same_file, file.try_clone()) {
                (true, Ok(file)) => match engine.load_precompiled_file(file, path, *kind) {
                    Ok(module) => return module,
                    Err(e) => {
                        tracing::warn!(error = %e, "precompiled artifact unusable; compiling")
                    }
                },
                (false, _) => tracing::warn!(
                    module = %module_path.display(),
                    "module differs from the one prepared on the host; compiling"
                ),
                (true, Err(e)) => tracing::warn!(error = %e, "cannot reuse artifact descriptor"),
            }
            load_in_place(engine, module_path)
        }
        (ModuleSource::RootfsFile(_), PreparedCode::Wasm(_)) => load_in_place(engine, module_path),
    }
}

fn load_in_place(
    engine: &dyn wasmbay_shim_core::Engine,
    module_path: &Path,
) -> std::sync::Arc<dyn CompiledModule> {
    match ModuleLoader::new(engine, None).load_file(module_path) {
        Ok((module, _)) => module,
        Err(e) => die(e.exit_code(), &e.to_string()),
    }
}

/// Closes every descriptor above stderr except those in `keep`.
///
/// The container's init is cloned from the runtime or shim process and, for wasm, never
/// execs, so close-on-exec never fires: without this the guest's process would hold the
/// parent's sockets (the shim's ttrpc connection, for one) for as long as it runs, and
/// containerd would not notice a dead shim.
fn close_inherited_fds(keep: &[i32]) {
    for (first, last) in ranges_to_close(keep) {
        close_range(first, last);
    }
}

/// The descriptor ranges above stderr that hold none of `keep`.
fn ranges_to_close(keep: &[i32]) -> Vec<(u32, u32)> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&fd| fd > 2)
        .map(|&fd| fd as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut ranges = Vec::new();
    let mut first = 3u32;
    for fd in keep {
        if first < fd {
            ranges.push((first, fd - 1));
        }
        first = fd + 1;
    }
    ranges.push((first, u32::MAX));
    ranges
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range takes integers only. It runs in the container's init before the guest
    // starts, with `keep` left out of the ranges; what it closes are descriptors inherited from the
    // parent, which no object in this process owns.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc != 0 {
        // close_range needs Linux 5.9; walk the descriptor table instead.
        // SAFETY: sysconf has no preconditions.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 65536) as u32;
        for fd in first..=last.min(max) {
            // SAFETY: as for close_range above: inherited descriptors that nothing here owns;
            // closing one that is not open gives EBADF, which is fine.
            unsafe { libc::close(fd as i32) };
        }
    }
}

/// Runs the module at `module_path` (a path inside the container) and exits with its status;
/// an HTTP handler is served per `serve` instead, until stopped. Every way the run can end, a
/// panic included, ends the whole process.
pub fn run_guest(
    engine_name: &str,
    module_path: &Path,
    entry: &Entrypoint,
    config: WasiConfig,
    serve: &ServeSettings,
    prepared: Option<&PreparedArtifact>,
) -> ! {
    let run = std::panic::AssertUnwindSafe(|| {
        run_to_status(engine_name, module_path, entry, config, serve, prepared)
    });
    match std::panic::catch_unwind(run) {
        Ok(code) => end_process(code),
        Err(_) => die(
            error_codes::RUNTIME,
            &format!("{}: the guest runner panicked", module_path.display()),
        ),
    }
}

fn run_to_status(
    engine_name: &str,
    module_path: &Path,
    entry: &Entrypoint,
    config: WasiConfig,
    serve: &ServeSettings,
    prepared: Option<&PreparedArtifact>,
) -> i32 {
    use std::os::fd::AsRawFd;
    let artifact_fd = prepared.and_then(|p| match &p.code {
        PreparedCode::Artifact { file, .. } => Some(file.as_raw_fd()),
        PreparedCode::Wasm(_) => None,
    });
    let keep: Vec<i32> = artifact_fd
        .into_iter()
        .chain(wasmbay_shim_core::trace::trace_fd())
        .collect();
    close_inherited_fds(&keep);
    // runc's process loses capabilities in its exec; this one never execs.
    if let Err(e) = crate::exec_caps::drop_as_exec_would() {
        die(error_codes::RUNTIME, &e.to_string());
    }
    // Signals next: from here on SIGTERM must end the container even while loading.
    let stop = StopHandle::new();
    if let Err(e) = stop_on_signals(&stop) {
        die(
            error_codes::RUNTIME,
            &format!("cannot install signal handlers: {e}"),
        );
    }
    let load_span = tracing::info_span!("guest.load", engine = engine_name).entered();
    let engine = match wasmbay_engines::create(engine_name, StopMode::ExitProcess) {
        Ok(engine) => engine,
        Err(e) => die(error_codes::RUNTIME, &e.to_string()),
    };
    let module = load(engine.as_ref(), module_path, prepared);
    drop(load_span);
    if module.serves_http() {
        return serve_guest(module.as_ref(), module_path, config, serve, &stop);
    }
    let run_span = tracing::info_span!("guest.run").entered();
    let status = module.run(config, entry.func.as_deref(), &stop);
    drop(run_span);
    match status {
        Ok(status) => {
            if let ExitStatus::Trapped(message) = &status {
                eprintln!("wasmbay: wasm trap: {message}");
            }
            status.code()
        }
        Err(e) => {
            eprintln!("wasmbay: {}: {e}", module_path.display());
            e.exit_code()
        }
    }
}

/// Serves an HTTP handler in the container's network namespace (the pod's) until stopped: the
/// first stop signal drains, a second ends the process (see `stop_on_signals`).
fn serve_guest(
    module: &dyn CompiledModule,
    module_path: &Path,
    mut config: WasiConfig,
    serve: &ServeSettings,
    stop: &StopHandle,
) -> i32 {
    stop.drain_on_signal();
    let listener = match std::net::TcpListener::bind(serve.listen) {
        Ok(listener) => listener,
        Err(e) => die(
            error_codes::RUNTIME,
            &format!(
                "annotation `{}`: cannot listen on {}: {e}",
                wasmbay_shim_core::serve::LISTEN_ANNOTATION,
                serve.listen
            ),
        ),
    };
    let local = listener.local_addr().unwrap_or(serve.listen);
    // Requests have no standard input; their output goes to the container's log.
    config.stdin = wasmbay_shim_core::Stdio::Null;
    eprintln!("wasmbay: serving http://{local}/");
    let _span = tracing::info_span!("guest.serve").entered();
    match module.serve(config, listener, &serve.limits, stop) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("wasmbay: {}: {e}", module_path.display());
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ranges_to_close;

    #[test]
    fn kept_descriptors_split_the_ranges_to_close() {
        assert_eq!(ranges_to_close(&[]), vec![(3, u32::MAX)]);
        assert_eq!(ranges_to_close(&[3]), vec![(4, u32::MAX)]);
        assert_eq!(
            ranges_to_close(&[9, 5, 1, 5]),
            vec![(3, 4), (6, 8), (10, u32::MAX)]
        );
        assert_eq!(ranges_to_close(&[4, 5]), vec![(3, 3), (6, u32::MAX)]);
    }
}
