//! The libcontainer [`Executor`]: what the container's init process does once namespaces,
//! cgroups, mounts and pivot_root are in place.

use std::path::{Path, PathBuf};

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use wasmbay_shim_core::entrypoint::{detect_file, resolve_program, Entrypoint, FileFormat};
use wasmbay_shim_core::oci::{workload_from_spec, RootView, WorkloadSpec};
use wasmbay_shim_core::oci_spec::runtime::Spec;

use crate::guest::run_guest;
use crate::handler::{decide, Decision};
use crate::prepare::PreparedArtifact;

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

fn locate(spec: &Spec) -> Result<Target, String> {
    let mut workload =
        workload_from_spec(spec, &RootView::InContainer).map_err(|e| e.to_string())?;
    workload.keep_directory_preopens();
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

impl Executor for WasmExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let target = locate(spec).map_err(ExecutorValidationError::ArgValidationError)?;
        match target.decision {
            Decision::Wasm => {
                if wasmbay_engines::is_compiled_in(&self.engine) {
                    Ok(())
                } else {
                    Err(ExecutorValidationError::ArgValidationError(
                        wasmbay_engines::create(&self.engine)
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
                    ))
                }
            }
            Decision::Native => DefaultExecutor {}.validate(spec),
            Decision::Refuse(why) => Err(ExecutorValidationError::ArgValidationError(why)),
        }
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let target = locate(spec).map_err(ExecutorError::Other)?;
        match target.decision {
            Decision::Native => DefaultExecutor {}.exec(spec),
            Decision::Refuse(why) => Err(ExecutorError::Other(why)),
            Decision::Wasm => {
                let WorkloadSpec {
                    entrypoint, config, ..
                } = target.workload;
                run_guest(
                    &self.engine,
                    &target.path,
                    &entrypoint,
                    config,
                    self.prepared.as_ref(),
                )
            }
        }
    }
}
