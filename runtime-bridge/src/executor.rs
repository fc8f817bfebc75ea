//! The libcontainer [`Executor`]: what the container's init process does once namespaces,
//! cgroups, mounts and pivot_root are in place.

use std::path::{Path, PathBuf};

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use wasmbay_shim_core::entrypoint::{detect_file, resolve_program, Entrypoint, FileFormat};
use wasmbay_shim_core::oci::{workload_from_spec, RootView, WorkloadSpec};
use wasmbay_shim_core::oci_spec::runtime::Spec;
use wasmbay_shim_core::StopMode;

use crate::guest::run_guest;
use crate::handler::{decide, Decision};
use crate::prepare::{ModuleSource, PreparedArtifact};

/// Runs wasm entrypoints on `engine` and execs native ones. Cloned into the container's init
/// process, which is why it holds only plain data and an open artifact file.
#[derive(Clone)]
pub struct WasmExecutor {
    engine: String,
    prepared: Option<PreparedArtifact>,
}

impl WasmExecutor {
    pub fn new(engine: impl Into<String>, prepared: Option<PreparedArtifact>) -> Self {
        WasmExecutor {
            engine: engine.into(),
            prepared,
        }
    }
}

/// The entrypoint as seen from inside the container, and how to run it.
struct Target {
    workload: WorkloadSpec,
    path: PathBuf,
    decision: Decision,
}

fn locate(spec: &Spec, prepared: Option<&PreparedArtifact>) -> Result<Target, String> {
    let mut workload =
        workload_from_spec(spec, &RootView::InContainer).map_err(|e| e.to_string())?;
    workload.keep_directory_preopens();
    if let Some(PreparedArtifact {
        source: ModuleSource::ImageLayer(_),
        ..
    }) = prepared
    {
        // The module is an image layer the host already read: the rootfs need not hold it,
        // and argv[0] is only a name.
        let path = PathBuf::from(&workload.entrypoint.path);
        return Ok(Target {
            workload,
            path,
            decision: Decision::Wasm,
        });
    }
    let path_var = workload
        .config
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let Entrypoint { path: program, .. } = &workload.entrypoint;
    let path = resolve_program(
        Path::new("/"),
        &workload.config.cwd,
        path_var.as_deref(),
        program,
    )
    .map_err(|e| e.to_string())?;
    let format = detect_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let decision = match decide(spec.annotations().as_ref(), format) {
        Decision::Refuse(why) => Decision::Refuse(format!("{program}: {why}")),
        Decision::Native if workload.entrypoint.func.is_some() => Decision::Refuse(format!(
            "{program}: `#{}` selects a wasm export, but the file is {}",
            workload.entrypoint.func.as_deref().unwrap_or_default(),
            format.describe()
        )),
        other => other,
    };
    if decision == Decision::Wasm && format == FileFormat::Unknown {
        return Err(format!("{program}: {}", format.describe()));
    }
    Ok(Target {
        workload,
        path,
        decision,
    })
}

/// Execs the native program at `path` (resolved inside the container) with the spec's args.
/// libcontainer has already put the process environment in place.
fn exec_path(path: &Path, spec: &Spec) -> Result<(), ExecutorError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let invalid =
        |what: &str| ExecutorError::Other(format!("{}: {what} holds a NUL byte", path.display()));
    let program = CString::new(path.as_os_str().as_bytes()).map_err(|_| invalid("path"))?;
    let args: Vec<CString> = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .map(|args| args.iter().map(|a| CString::new(a.as_bytes())).collect())
        .transpose()
        .map_err(|_| invalid("an argument"))?
        .unwrap_or_default();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: `program` and every `argv` entry are NUL-terminated strings that outlive the
    // call, and `argv` ends with a null pointer. execv returns only on failure.
    unsafe { libc::execv(program.as_ptr(), argv.as_ptr()) };
    Err(ExecutorError::Other(format!(
        "exec {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    )))
}

impl Executor for WasmExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let target = locate(spec, self.prepared.as_ref())
            .map_err(ExecutorValidationError::ArgValidationError)?;
        match target.decision {
            Decision::Wasm => {
                if wasmbay_engines::is_compiled_in(&self.engine) {
                    Ok(())
                } else {
                    Err(ExecutorValidationError::ArgValidationError(
                        wasmbay_engines::create(&self.engine, StopMode::ExitProcess)
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
                    ))
                }
            }
            // A path needs no PATH lookup: runc runs `/pause` from an image without `Env`,
            // so must we (libcontainer's default executor insists on PATH).
            Decision::Native if target.workload.entrypoint.path.contains('/') => Ok(()),
            Decision::Native => DefaultExecutor {}.validate(spec),
            Decision::Refuse(why) => Err(ExecutorValidationError::ArgValidationError(why)),
        }
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let target = locate(spec, self.prepared.as_ref()).map_err(ExecutorError::Other)?;
        match target.decision {
            Decision::Native if target.workload.entrypoint.path.contains('/') => {
                exec_path(&target.path, spec)
            }
            Decision::Native => DefaultExecutor {}.exec(spec),
            Decision::Refuse(why) => Err(ExecutorError::Other(why)),
            Decision::Wasm => {
                let WorkloadSpec {
                    entrypoint,
                    config,
                    serve,
                    ..
                } = target.workload;
                run_guest(
                    &self.engine,
                    &target.path,
                    &entrypoint,
                    config,
                    &serve,
                    self.prepared.as_ref(),
                )
            }
        }
    }
}
