//! Stopping a running program from another thread.
//!
//! A frontend holds a [`StopHandle`] for each run and calls [`StopHandle::stop`] when a signal
//! arrives or a timeout expires. The engine that runs the program registers a *waker* that makes
//! its guest code notice the request: wasm code in a tight loop makes no host calls, so polling a
//! flag from host functions alone would never see it. The engine's waker must interrupt running
//! wasm code (epoch bump, interrupt handle…) and unblock blocking host calls.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

type Waker = Box<dyn Fn() + Send + Sync>;

/// How a run that must end early is stopped. Interrupting guest code means compiling a check
/// (a load and a compare) into every loop back-edge and function entry, which costs compute-heavy
/// guests 10-25%; a guest that has its process to itself does not need it, because ending the
/// process ends the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StopMode {
    /// The engine interrupts running guest code, so one of several guests sharing a process can
    /// be stopped alone.
    #[default]
    InGuest,
    /// The guest owns its process (a container's init, `wasmbay run`), and a stop ends the
    /// process: engines compile no interruption checks and register no waker.
    ExitProcess,
}

#[derive(Default)]
struct Inner {
    /// 0 while running; otherwise the signal number that asked the program to stop.
    signal: AtomicI32,
    waker: Mutex<Option<Waker>>,
    /// Set for a server: the first stop signal drains it instead of ending the process.
    drains: std::sync::atomic::AtomicBool,
}

/// A cloneable handle that asks one run of a program to stop. A stop requested before the run
/// starts is remembered: the engine must then return without running guest code.
#[derive(Clone, Default)]
pub struct StopHandle {
    inner: Arc<Inner>,
}

impl StopHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the program to stop, reporting `signal` as the cause. The first request wins.
    pub fn stop(&self, signal: i32) {
        let signal = if signal <= 0 { libc::SIGKILL } else { signal };
        let _ = self
            .inner
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        let waker = self.inner.waker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wake) = waker.as_ref() {
            wake();
        }
    }

    /// The signal of the first stop request, if any.
    /// Marks the workload as a server: from now on the first stop signal only triggers this
    /// handle (the server drains) and a second one ends the process ([`crate::signals`]).
    pub fn drain_on_signal(&self) {
        self.inner.drains.store(true, Ordering::SeqCst);
    }

    /// Whether [`StopHandle::drain_on_signal`] was called.
    pub fn drains(&self) -> bool {
        self.inner.drains.load(Ordering::SeqCst)
    }

    pub fn requested(&self) -> Option<i32> {
        match self.inner.signal.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// Called by an engine when it starts running guest code. If a stop was already requested,
    /// the waker runs at once so the engine needs no separate check.
    pub fn set_waker(&self, wake: impl Fn() + Send + Sync + 'static) {
        let mut slot = self.inner.waker.lock().unwrap_or_else(|e| e.into_inner());
        if self.requested().is_some() {
            wake();
        }
        *slot = Some(Box::new(wake));
    }

    /// Whether a stop reaches running guest code, i.e. an engine has registered a waker. When it
    /// does not, the only way to end the guest is to end its process.
    pub fn reaches_guest(&self) -> bool {
        self.inner
            .waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Called by an engine when the run is over, so that late stops do nothing.
    pub fn clear_waker(&self) {
        *self.inner.waker.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("requested", &self.requested())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn first_signal_wins_and_waker_runs_each_time() {
        let handle = StopHandle::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        handle.set_waker(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(handle.requested(), None);
        handle.stop(libc::SIGTERM);
        handle.stop(libc::SIGKILL);
        assert_eq!(handle.requested(), Some(libc::SIGTERM));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn stop_before_run_wakes_at_registration() {
        let handle = StopHandle::new();
        handle.stop(0);
        assert_eq!(handle.requested(), Some(libc::SIGKILL));
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        handle.set_waker(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(handle.reaches_guest());
        handle.clear_waker();
        assert!(!handle.reaches_guest());
        handle.stop(libc::SIGINT);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
