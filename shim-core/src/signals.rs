//! Signals that stop a guest.
//!
//! A wasm program cannot install signal handlers, and a container's PID 1 without handlers
//! ignores SIGTERM and SIGINT: that is why pods of other wasm shims hang in Terminating until
//! the grace period ends. The process running a guest therefore handles these signals itself
//! and ends the guest as the default action would, with exit status 128+signal.

use std::io::Write;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use crate::stop::StopHandle;

/// Signals whose default action ends a process and which a guest process must honour.
pub const STOP_SIGNALS: [i32; 4] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT];

/// How long a stopped guest may take to unwind before the process exits anyway. Guest code
/// notices a stop within microseconds; a guest blocked in a host call (reading stdin,
/// sleeping) only when the call returns, so the process does not wait for it.
pub const STOP_GRACE: Duration = Duration::from_millis(50);

/// Starts a thread that stops `stop` on the first of [`STOP_SIGNALS`] and ends the process.
///
/// A server ([`StopHandle::drain_on_signal`], which may be set after this call, once the
/// module is known to serve) drains instead: the first signal only stops `stop`, the server
/// closes its listener and finishes the requests in flight, and a second signal ends the
/// process at once with 128+signal.
pub fn stop_on_signals(stop: &StopHandle) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new(STOP_SIGNALS)?;
    let stop = stop.clone();
    std::thread::Builder::new()
        .name("stop-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if stop.drains() && stop.requested().is_none() {
                    tracing::info!(
                        signal,
                        "draining: no new requests, finishing those in flight"
                    );
                    stop.stop(signal);
                    continue;
                }
                if stop.drains() {
                    // The server was told once; this is the "stop now".
                    let _ = std::io::stdout().flush();
                    let _ = std::io::stderr().flush();
                    // SAFETY: as in `stop_with_grace`: `_exit` only ends the process.
                    unsafe { libc::_exit(128 + signal) }
                }
                stop_with_grace(&stop, signal);
            }
        })?;
    Ok(())
}

/// Stops the guest, and ends the process with 128+signal if the guest has not returned within
/// [`STOP_GRACE`]. A guest the stop cannot reach ([`crate::StopMode::ExitProcess`]) gets no
/// grace: waiting would only delay the same end.
pub fn stop_with_grace(stop: &StopHandle, signal: i32) {
    stop.stop(signal);
    if stop.reaches_guest() {
        std::thread::sleep(STOP_GRACE);
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // `_exit`, not `exit`: this runs on a side thread while the guest's thread may still be
    // inside the engine, and `exit` would run process-wide destructors and handlers under it.
    // Buffered output was flushed just above.
    // SAFETY: `_exit` only ends the process; it touches no memory of this one.
    unsafe { libc::_exit(128 + stop.requested().unwrap_or(signal)) }
}
