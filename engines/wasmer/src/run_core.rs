//! Running WASI preview 1 core modules.

use wasmbay_shim_core::{
    CompiledModule, EngineError, ExitStatus, ModuleKind, StopHandle, WasiConfig,
};
use wasmer::ExternType;

use crate::host::LazyHost;
use crate::outcome::{classify, classify_instantiation};

pub(crate) struct CoreModule {
    engine: wasmer::Engine,
    module: wasmer::Module,
    host: LazyHost,
}

impl CoreModule {
    pub(crate) fn new(engine: wasmer::Engine, module: wasmer::Module, host: LazyHost) -> Self {
        CoreModule {
            engine,
            module,
            host,
        }
    }

    /// Checks the entrypoint before building anything, so that a typo in `#func` is a load
    /// error, not a trap.
    fn check_entry(&self, name: &str) -> Result<(), EngineError> {
        let export = self.module.exports().find(|e| e.name() == name);
        match export.as_ref().map(|e| e.ty()) {
            Some(ExternType::Function(ty)) if ty.params().is_empty() => Ok(()),
            Some(ExternType::Function(_)) => Err(EngineError::Instantiate(format!(
                "export `{name}` takes parameters; an entrypoint must take none"
            ))),
            _ => Err(EngineError::MissingExport {
                name: name.to_string(),
            }),
        }
    }
}

impl CompiledModule for CoreModule {
    fn kind(&self) -> ModuleKind {
        ModuleKind::Core
    }

    fn run(
        &self,
        config: WasiConfig,
        entry: Option<&str>,
        stop: &StopHandle,
    ) -> Result<ExitStatus, EngineError> {
        let name = entry.unwrap_or("_start");
        self.check_entry(name)?;
        if let Some(signal) = stop.requested() {
            return Ok(ExitStatus::Killed(signal));
        }
        let host = self.host.get(&self.engine)?;
        // wasix and its host files look up the tokio runtime of the calling thread.
        let _io = host.io().enter();
        let engine = crate::limits::limited_engine(&self.engine, config.memory_limit);
        let mut store = wasmer::Store::new(engine);
        let builder = crate::wasi_env::builder(config, host.wasix(), host.io())?;

        let armed = crate::stop::arm(&store, stop);
        let (instance, env) = match builder.instantiate(self.module.clone(), &mut store) {
            Ok(instantiated) => instantiated,
            Err(error) => return classify_instantiation(error, stop),
        };
        armed.attach_process(env.data(&store).process.clone());

        let result = instance
            .exports
            .get_function(name)
            .map_err(|e| EngineError::MissingExport {
                name: format!("{name} ({e})"),
            })?
            .call(&mut store, &[]);
        armed.disarm();
        let status = match result {
            // An entrypoint returning an i32 reports it as its exit code, as C `main` does.
            Ok(values) => match values.first() {
                Some(wasmer::Value::I32(code)) => ExitStatus::Exited(*code),
                _ => ExitStatus::Exited(0),
            },
            Err(error) => classify(error, stop),
        };
        // Closes the guest's descriptors and lets wasix finish the process's bookkeeping.
        let code = match &status {
            ExitStatus::Exited(code) => *code,
            _ => 1,
        };
        env.on_exit(&mut store, Some(code.into()));
        tracing::debug!(%status, "guest ended");
        Ok(status)
    }
}
