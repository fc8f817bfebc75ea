//! Shim thread stacks that a container's init inherits, handed back to the kernel in the init.
//!
//! libcontainer starts an init by cloning the shim's whole address space, so the init holds a
//! copy-on-write copy of every shim thread's stack, although only the thread that cloned ever
//! runs in it. A copied page stays shared only until the shim writes it again or frees it
//! (glibc gives an exiting thread's stack back with `MADV_DONTNEED`); from then on the init
//! alone maps it and it counts as the init's private memory. Over a sleeping container's life
//! that is most stack pages the shim ever dirtied, for every container.
//!
//! Shim threads record their stack here when they start ([`register_current_thread`]); the
//! init drops its copies of the other threads' stacks before the guest runs
//! ([`release_other_threads`]). The page at each thread's starting point and everything above
//! it stay: glibc keeps the thread's control block and static TLS there, and walks those
//! blocks in a few calls (`setuid` broadcasts, `fork`), so they must keep their contents.
//!
//! The table is a fixed array of atomics rather than a locked vector because the init is
//! cloned at an arbitrary moment: a lock another shim thread held then would stay held in
//! the init forever.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Thread stacks one shim can record; later threads are simply not released.
const SLOTS: usize = 256;

/// Lowest address of a registered stack. Meaningful only while the slot's END is above it.
static LOW: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// End of the releasable part of the same stack, below the page the thread started on.
/// 0: free slot (never used, or given back by a thread that ended); [`CLAIMING`]: being
/// filled in. Either is below any stack address, so [`release_other_threads`] skips it.
static END: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
const CLAIMING: usize = 1;

thread_local! {
    /// This thread's slot, to give back when it ends. A process cloned onto a stack of its
    /// own (libcontainer's fallback when `clone3` is refused) still has the cloning thread's
    /// TLS, so the slot also names the stack whose frames such a child may borrow from.
    static OWN_SLOT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// How far above the current stack pointer a range must end to be someone else's: the
/// calling thread may be shallower now than when it registered.
const OWN_STACK_MARGIN: usize = 256 << 10;

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(4096)
}

/// An address in the current stack frame, close to the stack pointer.
#[inline(never)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// The lowest address of the calling thread's stack, from glibc.
fn current_stack_low() -> Option<usize> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: pthread_getattr_np initialises `attr` on success; it is destroyed below.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) } != 0 {
        return None;
    }
    let mut addr = std::ptr::null_mut();
    let mut size = 0usize;
    // SAFETY: `attr` was initialised by pthread_getattr_np.
    let got = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) };
    // SAFETY: as above; destroyed exactly once.
    unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
    (got == 0 && !addr.is_null()).then_some(addr as usize)
}

/// Records the calling thread's stack as one a container init need not keep. Call it first
/// thing on every long-lived shim thread (the tokio runtime's `on_thread_start`), and
/// [`unregister_current_thread`] when it ends: glibc may unmap a dead thread's stack and the
/// address range may then hold anything.
pub fn register_current_thread() {
    let Some(low) = current_stack_low() else {
        return;
    };
    let page = page_size();
    let end = (stack_pointer() & !(page - 1)).saturating_sub(page);
    if end <= low || OWN_SLOT.with(|own| own.get()).is_some() {
        return;
    }
    for (index, (low_slot, end_slot)) in LOW.iter().zip(END.iter()).enumerate() {
        // Claiming through END first means no reader ever pairs one thread's LOW with
        // another's END.
        if end_slot
            .compare_exchange(0, CLAIMING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            low_slot.store(low, Ordering::Release);
            end_slot.store(end, Ordering::Release);
            OWN_SLOT.with(|own| own.set(Some(index)));
            return;
        }
    }
}

/// Gives back the calling thread's slot; for the tokio runtime's `on_thread_stop`.
pub fn unregister_current_thread() {
    if let Some(index) = OWN_SLOT.with(|own| own.take()) {
        if let Some(end_slot) = END.get(index) {
            end_slot.store(0, Ordering::Release);
        }
    }
}

/// Registers the calling thread until the guard drops; for threads spawned with
/// `std::thread`, whose closure holds it to the end.
#[must_use = "the thread is unregistered when the guard drops"]
pub fn register_scoped() -> Registration {
    register_current_thread();
    Registration(())
}

/// See [`register_scoped`].
pub struct Registration(());

impl Drop for Registration {
    fn drop(&mut self) {
        unregister_current_thread();
    }
}

/// In a cloned init: drops this process's copies of every registered stack except the one
/// the calling thread runs on and the one of the thread it was cloned from. Returns the bytes
/// of address range released. Only for a process in which no other registered thread runs,
/// i.e. a clone of the shim, never the shim itself.
pub fn release_other_threads() -> usize {
    let here = stack_pointer();
    let own = OWN_SLOT.with(|own| own.get());
    let mut released = 0;
    for (index, (low_slot, end_slot)) in LOW.iter().zip(END.iter()).enumerate() {
        let end = end_slot.load(Ordering::Acquire);
        let low = low_slot.load(Ordering::Acquire);
        if end <= CLAIMING
            || end <= low
            || own == Some(index)
            || (low..end.saturating_add(OWN_STACK_MARGIN)).contains(&here)
        {
            continue;
        }
        // SAFETY: [low, end) lies in a stack of a thread that does not exist in this process,
        // below the page holding that thread's control block and TLS; nothing here reads it.
        // Anonymous private pages read back as zeros after MADV_DONTNEED.
        let done =
            unsafe { libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED) };
        if done == 0 {
            released += end - low;
        } else {
            tracing::debug!(
                low,
                end,
                error = %std::io::Error::last_os_error(),
                "cannot release an inherited thread stack"
            );
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident KiB of the mapping that contains `addr`, from /proc/self/smaps.
    fn resident_kib_at(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((start, end)) = range.split_once('-') {
                    if let (Ok(start), Ok(end)) = (
                        usize::from_str_radix(start, 16),
                        usize::from_str_radix(end, 16),
                    ) {
                        inside = (start..end).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(rss) = line.strip_prefix("Rss:") {
                    return rss.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    fn is_registered(low: usize) -> bool {
        LOW.iter()
            .zip(END.iter())
            .any(|(l, e)| l.load(Ordering::Acquire) == low && e.load(Ordering::Acquire) > low)
    }

    #[test]
    fn an_ended_thread_is_no_longer_registered() {
        let low = std::thread::spawn(|| {
            let low = {
                let _registered = register_scoped();
                let low = current_stack_low().unwrap_or(0);
                assert!(is_registered(low));
                low
            };
            assert!(!is_registered(low), "the guard gave the slot back");
            low
        })
        .join()
        .unwrap();
        assert_ne!(low, 0);
    }

    #[inline(never)]
    fn dirty_stack(kib: usize) -> u8 {
        let mut frame = [1u8; 64 << 10];
        std::hint::black_box(&mut frame);
        if kib > 64 {
            dirty_stack(kib - 64).wrapping_add(frame[kib % 1024])
        } else {
            frame[0]
        }
    }

    #[test]
    fn a_clone_drops_other_threads_stacks_and_keeps_its_own() {
        // A registered thread dirties 512 KiB of its stack and then waits, as shim threads do.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let _registered = register_scoped();
                std::hint::black_box(dirty_stack(512));
                let low = current_stack_low().unwrap_or(0);
                let _ = ready_tx.send(low);
                let _ = done_rx.recv();
            })
            .unwrap();
        let low = ready_rx.recv().unwrap();
        assert_ne!(low, 0, "the worker found its stack");
        let probe = low + (1 << 20);
        let before = resident_kib_at(probe).unwrap();
        assert!(before >= 512, "the worker's stack holds {before} KiB");

        // The child's own stack still works (the check runs on it), and the worker's control
        // block page above the released range is still there.
        assert!(wasmbay_testkit::holds_in_forked_child(|| {
            let released = release_other_threads();
            let after = resident_kib_at(probe).unwrap_or(u64::MAX);
            released >= 512 << 10 && after < 64 && after > 0
        }));

        // The shim side keeps its stack: only the clone dropped its copy.
        assert!(resident_kib_at(probe).unwrap() >= 512);
        drop(done_tx);
        worker.join().unwrap();
    }
}
