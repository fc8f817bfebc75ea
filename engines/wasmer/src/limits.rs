//! The memory limit of one run: the sum of all linear memories of the instance stays under the
//! limit from `WasiConfig::memory_limit`.
//!
//! wasmer has no per-store resource limiter; memories are created by the engine's `Tunables`.
//! Each run therefore gets a clone of the engine whose tunables wrap every memory they create
//! in [`LimitedMemory`], which charges a budget shared by the run's memories. A `memory.grow`
//! past the budget fails inside wasmer, so the guest sees -1 (what wasm programs are written to
//! handle) and the host never allocates beyond the limit. Code generation is untouched: the
//! memory and table *styles* are the base tunables', so artifacts compiled by the shared engine
//! stay valid for the clone.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmer::sys::{BaseTunables, NativeEngineExt, Tunables};
use wasmer_types::{MemoryError, MemoryType, Pages, TableType};
use wasmer_vm::{
    ExpectedValue, LinearMemory, MemoryStyle, TableStyle, ThreadConditions, Trap, VMMemory,
    VMMemoryDefinition, VMSharedMemory, VMTable, VMTableDefinition, WaiterError,
};

const PAGE: u64 = 65536;

/// Bytes of linear memory a run may still claim.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    pub(crate) fn new(limit: u64) -> Self {
        MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Claims `bytes` more, or refuses without claiming anything.
    fn claim(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }
}

/// Returns a clone of `engine` whose memories are charged to a budget of `limit` bytes; with
/// no limit the engine itself, so unlimited runs cost nothing extra.
pub(crate) fn limited_engine(engine: &wasmer::Engine, limit: Option<u64>) -> wasmer::Engine {
    let Some(limit) = limit else {
        return engine.clone();
    };
    let mut limited = engine.clone();
    NativeEngineExt::set_tunables(
        &mut limited,
        LimitTunables {
            base: BaseTunables::for_target(NativeEngineExt::target(engine)),
            budget: Arc::new(MemoryBudget::new(limit)),
        },
    );
    limited
}

struct LimitTunables {
    base: BaseTunables,
    budget: Arc<MemoryBudget>,
}

impl LimitTunables {
    fn claim_initial(&self, ty: &MemoryType) -> Result<(), MemoryError> {
        let bytes = u64::from(ty.minimum.0) * PAGE;
        if self.budget.claim(bytes) {
            Ok(())
        } else {
            tracing::debug!(
                pages = ty.minimum.0,
                limit = self.budget.limit,
                "initial memory over the limit"
            );
            Err(MemoryError::Generic(format!(
                "initial memory of {bytes} bytes exceeds the limit of {} bytes",
                self.budget.limit
            )))
        }
    }

    fn wrap(&self, memory: VMMemory) -> VMMemory {
        VMMemory(Box::new(LimitedMemory {
            inner: memory.0,
            budget: self.budget.clone(),
        }))
    }
}

impl Tunables for LimitTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        self.base.memory_style(memory)
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        self.claim_initial(ty)?;
        Ok(self.wrap(self.base.create_host_memory(ty, style)?))
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        self.claim_initial(ty)?;
        // SAFETY: forwarded unchanged; the caller upholds the base tunables' contract.
        let memory = unsafe {
            self.base
                .create_vm_memory(ty, style, vm_definition_location)?
        };
        Ok(self.wrap(memory))
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(ty, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        // SAFETY: forwarded unchanged; the caller upholds the base tunables' contract.
        unsafe { self.base.create_vm_table(ty, style, vm_definition_location) }
    }
}

/// A linear memory whose growth is charged to the run's budget first.
#[derive(Debug)]
struct LimitedMemory {
    inner: Box<dyn LinearMemory + Send + Sync + 'static>,
    budget: Arc<MemoryBudget>,
}

impl LinearMemory for LimitedMemory {
    fn ty(&self) -> MemoryType {
        self.inner.ty()
    }

    fn size(&self) -> Pages {
        self.inner.size()
    }

    fn style(&self) -> MemoryStyle {
        self.inner.style()
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let refused = || MemoryError::CouldNotGrow {
            current: self.inner.size(),
            attempted_delta: delta,
        };
        // Growth past the declared maximum is refused by wasmer anyway; checking it first
        // keeps such a request from charging the budget.
        if let Some(max) = self.inner.ty().maximum {
            if self.inner.size().0.saturating_add(delta.0) > max.0 {
                return Err(refused());
            }
        }
        if !self.budget.claim(u64::from(delta.0) * PAGE) {
            tracing::debug!(
                delta = delta.0,
                limit = self.budget.limit,
                "memory growth refused"
            );
            return Err(refused());
        }
        self.inner.grow(delta)
    }

    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        let current = u64::from(self.inner.size().0) * PAGE;
        if min_size > current && !self.budget.claim(min_size - current) {
            return Err(MemoryError::CouldNotGrow {
                current: self.inner.size(),
                attempted_delta: Pages(0),
            });
        }
        self.inner.grow_at_least(min_size)
    }

    fn reset(&mut self) -> Result<(), MemoryError> {
        self.inner.reset()
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.inner.vmmemory()
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Ok(Box::new(LimitedMemory {
            inner: self.inner.try_clone()?,
            budget: self.budget.clone(),
        }))
    }

    unsafe fn initialize_with_data(&self, start: usize, data: &[u8]) -> Result<(), Trap> {
        // SAFETY: forwarded unchanged to the wrapped memory.
        unsafe { self.inner.initialize_with_data(start, data) }
    }

    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Ok(Box::new(LimitedMemory {
            inner: self.inner.copy()?,
            budget: self.budget.clone(),
        }))
    }

    fn as_shared(&self) -> Result<VMSharedMemory, MemoryError> {
        self.inner.as_shared()
    }

    unsafe fn do_wait(
        &mut self,
        dst: u32,
        expected: ExpectedValue,
        timeout: Option<Duration>,
    ) -> Result<u32, WaiterError> {
        // SAFETY: forwarded unchanged to the wrapped memory.
        unsafe { self.inner.do_wait(dst, expected, timeout) }
    }

    fn do_notify(&mut self, dst: u32, count: u32) -> u32 {
        self.inner.do_notify(dst, count)
    }

    fn thread_conditions(&self) -> Option<&ThreadConditions> {
        self.inner.thread_conditions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_and_never_overdrawn() {
        let budget = MemoryBudget::new(10 * PAGE);
        assert!(budget.claim(4 * PAGE));
        assert!(budget.claim(4 * PAGE));
        assert!(!budget.claim(3 * PAGE));
        assert!(budget.claim(2 * PAGE));
        assert!(!budget.claim(1));
        assert!(!budget.claim(u64::MAX));
    }
}
