//! The shim's exit after its last container (at once, or after a linger time in which a new
//! container may still come), and the start lock that keeps `start` and that exit apart.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Service;

/// How long an idle shim still serves connections after removing its socket.
pub(super) const EXIT_GRACE: Duration = Duration::from_secs(2);

/// When the shim last went idle (and the create count then), for the one linger timer.
#[derive(Default)]
pub(super) struct IdleTimer {
    latest: Option<(Instant, u64)>,
    running: bool,
}

/// An exclusive `flock` on `start.lock` in the state directory of one containerd namespace,
/// held while a `start` looks for its group's shim and spawns it if none answers.
pub(super) struct StartLock {
    /// Held only for its lock, which closing it releases.
    _file: std::fs::File,
}

impl StartLock {
    pub(super) fn acquire(state_root: &Path) -> std::io::Result<StartLock> {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(state_root)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(state_root.join("start.lock"))?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(StartLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Service {
    /// Counts a create, which cancels a pending idle exit.
    pub(super) fn count_create(&self) {
        self.inner.creates.fetch_add(1, Ordering::SeqCst);
    }

    /// Exits now, or after the linger time if no container has come meanwhile. The socket goes
    /// first, under the task lock, so a `start` that still finds it reaches a live shim.
    ///
    /// One timer thread serves every idle moment: a shim that goes idle after each of many
    /// short-lived containers (a namespace shim under churn) pushes the deadline of the
    /// running timer rather than leaving a sleeping thread per lifecycle.
    pub(super) fn exit_when_idle(&self) {
        if self.inner.settings.linger.is_zero() {
            self.inner.exit.signal();
            return;
        }
        let seen = self.inner.creates.load(Ordering::SeqCst);
        {
            let mut idle = self.idle_timer();
            idle.latest = Some((Instant::now(), seen));
            if idle.running {
                return;
            }
            idle.running = true;
        }
        let service = self.clone();
        std::thread::spawn(move || service.run_idle_timer());
    }

    fn idle_timer(&self) -> std::sync::MutexGuard<'_, IdleTimer> {
        self.inner.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps until the linger time after the latest idle moment has passed, then exits if
    /// no container came since.
    fn run_idle_timer(&self) {
        let seen = loop {
            let Some((since, seen)) = self.idle_timer().latest else {
                self.idle_timer().running = false;
                return;
            };
            let due = since + self.inner.settings.linger;
            let now = Instant::now();
            if now < due {
                std::thread::sleep(due - now);
                continue;
            }
            let mut idle = self.idle_timer();
            if idle.latest == Some((since, seen)) {
                idle.latest = None;
                idle.running = false;
                break seen;
            }
        };
        {
            // Under the start lock, so no `start` is between finding the socket and answering
            // containerd; one that already answered has its create reach this shim during the
            // grace period below.
            let _lock = StartLock::acquire(&self.inner.settings.state_root).ok();
            let tasks = self.lock();
            if !tasks.is_empty() || self.inner.creates.load(Ordering::SeqCst) != seen {
                return;
            }
            let _ = std::fs::remove_file(&self.inner.settings.socket);
        }
        std::thread::sleep(EXIT_GRACE);
        if self.lock().is_empty() && self.inner.creates.load(Ordering::SeqCst) == seen {
            self.inner.exit.signal();
        }
    }
}
