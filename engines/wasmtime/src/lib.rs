//! The wasmtime engine behind wasmbay's [`Engine`] trait.
//!
//! Owns: engine settings (Cranelift, epoch interruption for kill, pooling allocation),
//! compiling and precompiling core modules and components, loading precompiled artifacts by
//! mapping the cache file, and running WASI preview 1 commands and `wasi:cli/command`
//! components of WASI 0.2 and 0.3 (told apart by `world.rs`). Knows nothing of containers: frontends hand it a [`WasiConfig`].

mod http_hooks;
mod limits;
mod outcome;
mod run_component;
mod run_core;
mod run_p3;
mod serve;
mod settings;
mod world;

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use wasmbay_shim_core::{CompiledModule, Engine, EngineError, ModuleKind, StopMode};

pub use settings::Settings;

/// The wasmtime release this engine is built on, as `--version` reports it.
pub const WASMTIME_VERSION: &str = wasmtime_environ::VERSION;

/// wasmtime with one configuration; cheap to share between threads.
pub struct WasmtimeEngine {
    /// Core modules: epoch checks in their code only when the frontend stops guests in place.
    engine: wasmtime::Engine,
    stop_mode: StopMode,
    /// Components: always with epoch checks. An HTTP handler's requests are bounded in time
    /// by them, and whether a component serves is known only once it is loaded, after the
    /// frontend chose how to stop. With [`StopMode::InGuest`] this is `engine` itself;
    /// otherwise it is made from `component_settings` on the first component, so that a
    /// core-module container's start never builds it.
    components: OnceLock<wasmtime::Engine>,
    component_settings: Settings,
    core_linker: Arc<wasmtime::Linker<run_core::CoreState>>,
    /// The WASI 0.2 command host, made with `components`.
    component_linker: OnceLock<Arc<wasmtime::component::Linker<run_component::ComponentState>>>,
    /// Made on the first WASI 0.3 component: most processes never see one, and a container's
    /// start should not pay for linking a second set of interfaces.
    p3_linker: OnceLock<Arc<wasmtime::component::Linker<run_component::ComponentState>>>,
    fingerprint: String,
}

impl WasmtimeEngine {
    pub fn new(settings: &Settings) -> Result<Self, EngineError> {
        let engine = settings.build_engine()?;
        let component_settings = Settings {
            stop_mode: StopMode::InGuest,
            ..settings.clone()
        };
        let components = OnceLock::new();
        if settings.stop_mode == StopMode::InGuest {
            let _ = components.set(engine.clone());
        }
        let core_linker = run_core::linker(&engine)?;
        // The component engine is a function of `settings` (the same settings, epoch checks
        // on), which the core engine's hash covers; the tag keeps the two modes apart. wasmtime
        // still checks every artifact's own header against the engine that loads it.
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        "components: epoch checks".hash(&mut hasher);
        let fingerprint = format!("{}-{:016x}", std::env::consts::ARCH, hasher.finish());
        Ok(WasmtimeEngine {
            engine,
            stop_mode: settings.stop_mode,
            components,
            component_settings,
            core_linker: Arc::new(core_linker),
            component_linker: OnceLock::new(),
            p3_linker: OnceLock::new(),
            fingerprint,
        })
    }

    fn components(&self) -> Result<&wasmtime::Engine, EngineError> {
        if let Some(engine) = self.components.get() {
            return Ok(engine);
        }
        let engine = self.component_settings.build_engine()?;
        Ok(self.components.get_or_init(|| engine))
    }

    fn component_linker(
        &self,
    ) -> Result<Arc<wasmtime::component::Linker<run_component::ComponentState>>, EngineError> {
        if let Some(linker) = self.component_linker.get() {
            return Ok(linker.clone());
        }
        let linker = Arc::new(run_component::linker(self.components()?)?);
        Ok(self.component_linker.get_or_init(|| linker).clone())
    }

    fn wrap_core(&self, module: wasmtime::Module) -> Result<Arc<dyn CompiledModule>, EngineError> {
        let pre = self
            .core_linker
            .instantiate_pre(&module)
            .map_err(|e| EngineError::Instantiate(format!("{e:#}")))?;
        Ok(Arc::new(run_core::CoreModule::new(
            self.engine.clone(),
            self.stop_mode,
            module,
            pre,
        )))
    }

    fn wrap_component(
        &self,
        component: wasmtime::component::Component,
    ) -> Result<Arc<dyn CompiledModule>, EngineError> {
        let shape = world::ComponentShape::of(&component);
        let instantiate = |e: wasmtime::Error| EngineError::Instantiate(format!("{e:#}"));
        match (&shape.world, shape.release) {
            (world::World::Unknown, _) => Err(EngineError::NotACommand(
                "it exports neither wasi:cli/run nor a wasi:http handler".to_string(),
            )),
            (world::World::HttpHandler(export), release) => {
                // Handlers of either release are called concurrently (serve.rs), so they link
                // against the asynchronous host, as WASI 0.3 commands do.
                let linker = match release {
                    world::WasiRelease::P2 => {
                        Arc::new(run_p3::p2_async_linker(self.components()?)?)
                    }
                    world::WasiRelease::P3 => self.p3_linker()?,
                };
                let pre = linker.instantiate_pre(&component).map_err(instantiate)?;
                Ok(Arc::new(serve::HttpHandlerModule::new(
                    self.components()?.clone(),
                    pre,
                    export.clone(),
                )?))
            }
            (world::World::Command, world::WasiRelease::P2) => {
                let pre = self
                    .component_linker()?
                    .instantiate_pre(&component)
                    .map_err(instantiate)?;
                Ok(Arc::new(run_component::ComponentModule::new(
                    self.components()?.clone(),
                    pre,
                )?))
            }
            (world::World::Command, world::WasiRelease::P3) => {
                let pre = self
                    .p3_linker()?
                    .instantiate_pre(&component)
                    .map_err(instantiate)?;
                Ok(Arc::new(run_p3::P3CommandModule::new(
                    self.components()?.clone(),
                    pre,
                )?))
            }
        }
    }

    fn p3_linker(
        &self,
    ) -> Result<Arc<wasmtime::component::Linker<run_component::ComponentState>>, EngineError> {
        if let Some(linker) = self.p3_linker.get() {
            return Ok(linker.clone());
        }
        let linker = Arc::new(run_p3::linker(self.components()?)?);
        Ok(self.p3_linker.get_or_init(|| linker).clone())
    }
}

impl Engine for WasmtimeEngine {
    fn name(&self) -> &'static str {
        "wasmtime"
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn supports(&self, _kind: ModuleKind) -> bool {
        true
    }

    fn compile(
        &self,
        wasm: &[u8],
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError> {
        let invalid = |e: wasmtime::Error| EngineError::InvalidModule(format!("{e:#}"));
        match kind {
            ModuleKind::Core => {
                self.wrap_core(wasmtime::Module::new(&self.engine, wasm).map_err(invalid)?)
            }
            ModuleKind::Component => self.wrap_component(
                wasmtime::component::Component::new(self.components()?, wasm).map_err(invalid)?,
            ),
        }
    }

    fn precompile(&self, wasm: &[u8], kind: ModuleKind) -> Result<Vec<u8>, EngineError> {
        let result = match kind {
            ModuleKind::Core => self.engine.precompile_module(wasm),
            ModuleKind::Component => self.components()?.precompile_component(wasm),
        };
        result.map_err(|e| EngineError::InvalidModule(format!("{e:#}")))
    }

    fn load_precompiled(
        &self,
        path: &Path,
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError> {
        let bad = |e: wasmtime::Error| EngineError::BadArtifact {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        // The artifact comes from the cache, which only this runtime writes (mode 0700
        // directory, files replaced by rename); wasmtime still checks its version and settings
        // header. `deserialize_file` maps the file, so processes share the code pages.
        match kind {
            ModuleKind::Core => {
                // SAFETY: a cache artifact this runtime wrote, as said above.
                let module = unsafe { wasmtime::Module::deserialize_file(&self.engine, path) }
                    .map_err(bad)?;
                self.wrap_core(module)
            }
            ModuleKind::Component => {
                let component =
                    // SAFETY: a cache artifact this runtime wrote, as said above.
                    unsafe { wasmtime::component::Component::deserialize_file(self.components()?, path) }
                        .map_err(bad)?;
                self.wrap_component(component)
            }
        }
    }

    fn load_precompiled_file(
        &self,
        file: std::fs::File,
        origin: &Path,
        kind: ModuleKind,
    ) -> Result<Arc<dyn CompiledModule>, EngineError> {
        match kind {
            ModuleKind::Core => {
                // SAFETY: as for `load_precompiled`; the file was opened from the cache.
                let module = unsafe { wasmtime::Module::deserialize_open_file(&self.engine, file) }
                    .map_err(|e| EngineError::BadArtifact {
                        path: origin.to_path_buf(),
                        reason: format!("{e:#}"),
                    })?;
                self.wrap_core(module)
            }
            // wasmtime maps components only by path; the open descriptor has one in procfs,
            // which keeps the mapping shared. The descriptor must stay open while mapping.
            ModuleKind::Component => {
                use std::os::fd::AsRawFd;
                let by_fd = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
                let module = self.load_precompiled(&by_fd, kind).map_err(|e| match e {
                    EngineError::BadArtifact { reason, .. } => EngineError::BadArtifact {
                        path: origin.to_path_buf(),
                        reason,
                    },
                    other => other,
                });
                drop(file);
                module
            }
        }
    }
}
