//! Running WASI preview 1 core modules.

use wasmbay_shim_core::{
    CompiledModule, EngineError, ExitStatus, ModuleKind, StopHandle, WasiConfig,
};
use wasmer::{AsStoreMut, ExternType, Instance, MemoryType};
use wasmer_wasix::types::wasi::Errno;
use wasmer_wasix::{
    WasiEnvBuilder, WasiFunctionEnv, WasiModuleInstanceHandles, WasiModuleTreeHandles,
};

use crate::host::LazyHost;
use crate::outcome::{classify, classify_instantiation, classify_setup, SetupError};
use crate::wrappers::RootFd;

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
        let root = RootFd::default();
        let builder = crate::wasi_env::builder(config, host.wasix(), host.io(), &root)?;

        let armed = crate::stop::arm(&store, stop);
        let (instance, env) = match instantiate(builder, &self.module, &mut store, &root) {
            Ok(instantiated) => instantiated,
            Err(Failed::Wasi(error)) => return classify_instantiation(*error, stop),
            Err(Failed::Setup(env, error)) => {
                // As wasix ends a process whose instantiation failed (its environment may not
                // be initialized, which `WasiFunctionEnv::on_exit` requires).
                env.data(&store)
                    .blocking_on_exit(Some(Errno::Noexec.into()));
                return classify_setup(*error, stop);
            }
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

/// Why [`instantiate`] failed: before the wasix environment existed, or after (then it must be
/// told the process ended, as wasix does for its own failed instantiations).
/// Both errors are large and rare, so they are boxed.
enum Failed {
    Wasi(Box<wasmer_wasix::WasiRuntimeError>),
    Setup(WasiFunctionEnv, Box<SetupError>),
}

impl Failed {
    fn setup(env: WasiFunctionEnv, error: SetupError) -> Self {
        Failed::Setup(env, Box::new(error))
    }
}

/// What `WasiEnvBuilder::instantiate` does for a WASI preview 1 command, with wasix's imports
/// open to change between making them and instantiating: five of them are wrapped where wasix
/// answers wrongly (see [`crate::wrappers`]). Dynamically linked modules are
/// wasix's own format and not WASI preview 1; they fail here as a missing import.
fn instantiate(
    builder: WasiEnvBuilder,
    module: &wasmer::Module,
    store: &mut wasmer::Store,
    root: &RootFd,
) -> Result<(Instance, WasiFunctionEnv), Failed> {
    let mut env = builder
        .finalize(store)
        .map_err(|e| Failed::Wasi(Box::new(e)))?;
    let mut imports = match env.import_object_for_all_wasi_versions(store, module) {
        Ok(imports) => imports,
        Err(e) => return Err(Failed::setup(env, SetupError::Wasi(e.to_string()))),
    };
    // A module that imports its memory (threads) gets one made to its type, as wasix does.
    let imported_memory = module.imports().find_map(|import| match import.ty() {
        ExternType::Memory(ty) => {
            Some((import.module().to_string(), import.name().to_string(), *ty))
        }
        _ => None,
    });
    let imported_memory = match imported_memory {
        Some((namespace, name, ty)) => match wasmer::Memory::new(store, ty) {
            Ok(memory) => {
                imports.define(&namespace, &name, memory.clone());
                Some(memory)
            }
            Err(e) => return Err(Failed::setup(env, SetupError::Instantiate(e.to_string()))),
        },
        None => None,
    };
    let wrappers = match crate::wrappers::install(store, module, &mut imports, root) {
        Ok(wrappers) => wrappers,
        Err(e) => return Err(Failed::setup(env, SetupError::Wasi(e))),
    };
    let instance = match Instance::new(store, module, &imports) {
        Ok(instance) => instance,
        Err(e) => return Err(Failed::setup(env, SetupError::Instantiation(e))),
    };
    let exported_memory = instance.exports.iter().memories().next();
    let memory = match (imported_memory, exported_memory) {
        (Some(memory), _) => memory,
        (None, Some((_, memory))) => memory.clone(),
        // wasix keeps a memory for every instance; a module without one (it can pass no
        // pointer to WASI) gets an empty one, so it runs as it does on wasmtime.
        (None, None) => match wasmer::Memory::new(store, MemoryType::new(0, Some(0), false)) {
            Ok(memory) => memory,
            Err(e) => return Err(Failed::setup(env, SetupError::Instantiate(e.to_string()))),
        },
    };
    wrappers.set_memory(store, &memory);
    let handles = WasiModuleTreeHandles::Static(WasiModuleInstanceHandles::new(
        memory,
        store,
        instance.clone(),
        None,
    ));
    if let Err(e) = env.initialize_handles_and_layout(store, instance.clone(), handles, None, true)
    {
        return Err(Failed::setup(env, SetupError::Instantiate(e.to_string())));
    }
    // A reactor's `_initialize` runs before its entrypoint, as wasix does.
    if let Ok(initialize) = instance.exports.get_function("_initialize") {
        if let Err(trap) = initialize.call(&mut store.as_store_mut(), &[]) {
            return Err(Failed::setup(env, SetupError::Trap(trap)));
        }
    }
    Ok((instance, env))
}
