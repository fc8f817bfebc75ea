//! What wasix needs from the host process: a tokio runtime (host file I/O and timers) and a
//! wasix runtime (task manager, no networking, no package registry).
//!
//! Both are made once per engine, on the first run rather than when the engine is created:
//! an engine that only compiles (the host side of a container start) never starts threads, and
//! one that is created before a fork starts them in the process that runs the guest.

use std::sync::{Arc, OnceLock};

use wasmbay_shim_core::EngineError;
use wasmer_wasix::runtime::task_manager::tokio::TokioTaskManager;
use wasmer_wasix::{PluggableRuntime, Runtime};

pub(crate) struct Host {
    io: tokio::runtime::Runtime,
    wasix: Arc<dyn Runtime + Send + Sync>,
}

impl Host {
    fn new(engine: &wasmer::Engine) -> Result<Self, String> {
        // One worker drives timers and the blocking pool; guests run on their callers' threads.
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmer-io")
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the tokio runtime for wasix: {e}"))?;
        let tasks = TokioTaskManager::new(io.handle().clone());
        let mut wasix = PluggableRuntime::new(Arc::new(tasks));
        wasix.set_engine(engine.clone());
        Ok(Host {
            io,
            wasix: Arc::new(wasix),
        })
    }

    pub(crate) fn io(&self) -> &tokio::runtime::Handle {
        self.io.handle()
    }

    pub(crate) fn wasix(&self) -> Arc<dyn Runtime + Send + Sync> {
        self.wasix.clone()
    }
}

/// A [`Host`] made on first use and shared by every module of one engine.
#[derive(Clone, Default)]
pub(crate) struct LazyHost {
    cell: Arc<OnceLock<Result<Arc<Host>, String>>>,
}

impl LazyHost {
    pub(crate) fn get(&self, engine: &wasmer::Engine) -> Result<Arc<Host>, EngineError> {
        self.cell
            .get_or_init(|| Host::new(engine).map(Arc::new))
            .clone()
            .map_err(EngineError::Internal)
    }
}
