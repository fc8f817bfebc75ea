//! wasmtime configuration. Every setting here changes compiled code or runtime limits, so the
//! whole set feeds the precompiled-cache fingerprint (through wasmtime's compatibility hash).

use wasmbay_shim_core::{EngineError, StopMode};

/// Tunables a frontend may change (runtime options, CLI flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Use the pooling instance allocator: instantiation reuses pre-reserved slots instead of
    /// fresh `mmap`s. Worth it when one process instantiates repeatedly.
    pub pooling: bool,
    /// How many instances the pool holds when `pooling` is on.
    pub pool_instances: u32,
    /// Maximum wasm stack in bytes; deeper recursion traps with "call stack exhausted".
    pub max_wasm_stack: usize,
    /// Cranelift optimisation: `speed` unless set to `none` for faster compiles.
    pub optimize: bool,
    /// Whether guest code carries epoch checks so that a stop interrupts it in place
    /// ([`StopMode::InGuest`]), or carries none and is stopped by ending its process.
    pub stop_mode: StopMode,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pooling: true,
            pool_instances: 8,
            max_wasm_stack: 1 << 20,
            optimize: true,
            stop_mode: StopMode::InGuest,
        }
    }
}

impl Settings {
    pub(crate) fn build_engine(&self) -> Result<wasmtime::Engine, EngineError> {
        let mut config = wasmtime::Config::new();
        // Epochs make guest code check a counter at loop back-edges and function entries, so
        // `kill` can stop `loop {}` without host calls at a cost of a load and compare. The
        // setting is part of the compatibility hash: artifacts of the two modes never mix.
        config.epoch_interruption(self.stop_mode == StopMode::InGuest);
        config.wasm_component_model(true);
        // WASI 0.3 components use the component model's async ABI (run_p3.rs).
        config.wasm_component_model_async(true);
        config.max_wasm_stack(self.max_wasm_stack);
        config.cranelift_opt_level(if self.optimize {
            wasmtime::OptLevel::Speed
        } else {
            wasmtime::OptLevel::None
        });
        // Copy-on-write mapping of data segments from the (mapped) artifact: instantiation cost
        // does not grow with the size of initial memory.
        config.memory_init_cow(true);
        // Parallel compilation of large modules uses every core.
        config.parallel_compilation(true);

        if self.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            let n = self.pool_instances.max(1);
            pool.total_core_instances(n)
                .total_component_instances(n)
                .total_memories(n)
                .total_tables(n)
                // Fibers for asynchronous calls (WASI 0.3 components, HTTP handlers); each is
                // reserved address space until a call uses it.
                .total_stacks(n.saturating_mul(4))
                .max_unused_warm_slots(n);
            let mut pooled = config.clone();
            pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
            match wasmtime::Engine::new(&pooled) {
                Ok(engine) => return Ok(engine),
                // Pools reserve address space up front; where that is refused (tight
                // RLIMIT_AS) on-demand allocation runs the same code, only slower to start.
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "pooling allocator unavailable, using on-demand allocation")
                }
            }
        }
        wasmtime::Engine::new(&config).map_err(|e| EngineError::Internal(format!("{e:#}")))
    }
}
