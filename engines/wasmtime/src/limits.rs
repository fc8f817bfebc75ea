//! The memory limit of one instance: the sum of all its linear memories stays under the limit
//! taken from `linux.resources.memory.limit`. A growth past it makes `memory.grow` return -1
//! (what wasm programs are written to handle), never a host allocation failure.

#[derive(Debug, Default)]
pub(crate) struct MemoryLimiter {
    limit: Option<usize>,
    used: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: Option<u64>) -> Self {
        MemoryLimiter {
            limit: limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            used: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let grown = self.used - current.min(self.used) + desired;
        if self.limit.is_some_and(|limit| grown > limit) {
            tracing::debug!(desired, limit = ?self.limit, "memory growth refused");
            return Ok(false);
        }
        self.used = grown;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    // wasmtime's own defaults for these counts; only memory size is ours to limit.
    fn instances(&self) -> usize {
        10_000
    }

    fn tables(&self) -> usize {
        10_000
    }

    fn memories(&self) -> usize {
        10_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn total_of_memories_stays_under_limit() {
        let mut limiter = MemoryLimiter::new(Some(10 * 65536));
        assert!(limiter.memory_growing(0, 4 * 65536, None).unwrap());
        assert!(limiter.memory_growing(0, 4 * 65536, None).unwrap());
        assert!(!limiter.memory_growing(4 * 65536, 7 * 65536, None).unwrap());
        assert!(limiter.memory_growing(4 * 65536, 6 * 65536, None).unwrap());
        assert!(!limiter.memory_growing(6 * 65536, 7 * 65536, None).unwrap());
        assert!(!limiter.memory_growing(0, 2, Some(1)).unwrap());
    }

    #[test]
    fn no_limit_allows_growth_to_the_declared_maximum() {
        let mut limiter = MemoryLimiter::new(None);
        assert!(limiter.memory_growing(0, 1 << 30, None).unwrap());
        assert!(!limiter.memory_growing(0, 3, Some(2)).unwrap());
    }
}
