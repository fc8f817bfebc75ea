//! Stopping a run from another thread.
//!
//! A guest in `loop {}` makes no host calls, so wasix's own signal checks (made on entry to
//! and while blocked in its system calls) never see a stop. wasmer's host interrupt covers
//! running wasm code: [`wasmer::Interrupter::interrupt`] sends SIGUSR1 to the thread running
//! the store, whose handler ends the wasm code with a `HostInterrupt` trap. It adds nothing to
//! generated code, so artifacts and guest speed are the same with or without it.
//!
//! The interrupt is best effort by wasmer's own account: one sent while the thread is between
//! host code and wasm (entering a call, inside a host function) is dropped. So once a stop is
//! requested a small thread repeats it every millisecond until the run is over. A guest blocked
//! inside a host call (reading stdin, sleeping) is woken by a SIGKILL sent to its wasix
//! process, which ends the call with an exit that [`crate::outcome`] reports as the stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmbay_shim_core::StopHandle;
use wasmer_wasix::wasmer_wasix_types::wasi::Signal;
use wasmer_wasix::WasiProcess;

/// How often a requested stop is repeated until the guest has unwound.
const RETRY: Duration = Duration::from_millis(1);

/// The stop wiring of one run; [`Armed::disarm`] ends it.
pub(crate) struct Armed {
    stop: StopHandle,
    shared: Arc<Shared>,
}

struct Shared {
    interrupter: wasmer::Interrupter,
    /// Known once wasix has set up the guest's process.
    process: Mutex<Option<WasiProcess>>,
    /// Set when the run is over: the retry thread exits.
    done: AtomicBool,
    /// Set by the first stop request, so that only one retry thread is started.
    retrying: AtomicBool,
}

impl Shared {
    fn signal_process(&self) {
        let process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(process) = process.as_ref() {
            process.signal_process(Signal::Sigkill);
        }
    }

    fn wake(self: &Arc<Self>) {
        self.signal_process();
        if self.retrying.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = self.clone();
        let spawned = std::thread::Builder::new()
            .name("wasmer-stop".into())
            .spawn(move || {
                while !shared.done.load(Ordering::SeqCst) {
                    shared.interrupter.interrupt();
                    std::thread::sleep(RETRY);
                }
            });
        if let Err(error) = spawned {
            // Without the thread one interrupt is still sent; it reaches a guest in wasm code.
            tracing::warn!(%error, "cannot start the stop retry thread");
            self.interrupter.interrupt();
        }
    }
}

/// Arms `stop` for `store`. Call before instantiating, so that a start function is covered.
pub(crate) fn arm(store: &wasmer::Store, stop: &StopHandle) -> Armed {
    let shared = Arc::new(Shared {
        interrupter: store.interrupter(),
        process: Mutex::new(None),
        done: AtomicBool::new(false),
        retrying: AtomicBool::new(false),
    });
    let waker = shared.clone();
    stop.set_waker(move || waker.wake());
    Armed {
        stop: stop.clone(),
        shared,
    }
}

impl Armed {
    /// Lets a stop also wake the guest's blocking host calls.
    pub(crate) fn attach_process(&self, process: WasiProcess) {
        *self
            .shared
            .process
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(process);
        if self.stop.requested().is_some() {
            self.shared.signal_process();
        }
    }

    /// The run is over: late stops do nothing and the retry thread ends.
    pub(crate) fn disarm(self) {
        drop(self);
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.stop.clear_waker();
        self.shared.done.store(true, Ordering::SeqCst);
    }
}
