//! cgroup v2 (the unified hierarchy): where a container's cgroup is, its OOM kills, and its
//! statistics as containerd's `io.containerd.cgroups.v2.Metrics`.
//!
//! The directory is read from the init's `/proc/<pid>/cgroup`, so it is right for both drivers
//! (a systemd scope's path is systemd's to choose). Statistics are read file by file: a file
//! the kernel does not offer (`*.pressure` without PSI, `memory.peak` before 5.19, hugetlb
//! where there is none, `memory.swap.*` without swap accounting) leaves its fields zero
//! instead of failing the whole answer, as kubelet expects of runc's shim.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use containerd_shim::protos::cgroups_v2::metrics::{
    CPUStat, HugeTlbStat, IOEntry, IOStat, MemoryEvents, MemoryStat, Metrics, PSIData, PSIStats,
    PidsStat,
};
use containerd_shim::protos::protobuf::MessageField;

/// The type URL of the metrics this module makes.
pub const METRICS_TYPE: &str = "io.containerd.cgroups.v2.Metrics";

const ROOT: &str = "/sys/fs/cgroup";

/// Whether this machine mounts only the unified hierarchy at `/sys/fs/cgroup`. A node does not
/// change hierarchy while it runs, so it is looked up once per shim, not once per create.
pub fn is_unified() -> bool {
    static UNIFIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNIFIED.get_or_init(|| Path::new(ROOT).join("cgroup.controllers").is_file())
}

/// The v2 cgroup directory of process `pid`, from the `0::` line of its `/proc/<pid>/cgroup`.
pub fn dir_of(pid: i32) -> io::Result<PathBuf> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let relative = unified_path(&table).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("/proc/{pid}/cgroup has no cgroup v2 (0::) line"),
        )
    })?;
    Ok(Path::new(ROOT).join(relative.trim_start_matches('/')))
}

fn unified_path(table: &str) -> Option<&str> {
    table.lines().find_map(|line| line.strip_prefix("0::"))
}

/// The `oom_kill` count of `memory.events` at `dir`.
fn oom_kills(dir: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(dir.join("memory.events"))?;
    Ok(flat_keyed(&text).get("oom_kill").copied().unwrap_or(0))
}

/// Stops its OOM watcher when dropped (the task's delete).
///
/// An inotify watch pins the inode it watches, so a removed cgroup's `memory.events` never
/// reports its own deletion and a watcher waiting for that would stay, with its descriptor,
/// for every container the shim ever ran (seen on cgroup v2: one thread and one fd per
/// lifecycle). The watcher waits on this pipe as well and ends when its write end closes.
pub struct OomWatch {
    _stop: File,
}

/// Calls `on_oom` each time the OOM killer kills inside the cgroup at `dir` (its `oom_kill`
/// count in `memory.events` grows), on a thread of its own, until the returned [`OomWatch`]
/// is dropped. The kernel signals every change of `memory.events` to inotify as a
/// modification.
pub fn watch_oom(dir: PathBuf, on_oom: impl Fn() + Send + 'static) -> io::Result<OomWatch> {
    let events = dir.join("memory.events");
    let path = CString::new(events.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the cgroup path"))?;
    // SAFETY: plain syscall; the result is checked and owned by `notify` below.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    let mut notify = unsafe { File::from_raw_fd(fd) };
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::inotify_add_watch(notify.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) } < 0 {
        return Err(io::Error::other(format!(
            "watching {}: {}",
            events.display(),
            io::Error::last_os_error()
        )));
    }
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `ends`; they are owned right below.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made and nothing else owns them.
    let (stopped, stop) = unsafe { (File::from_raw_fd(ends[0]), File::from_raw_fd(ends[1])) };
    let mut seen = oom_kills(&dir)?;
    std::thread::Builder::new()
        .name("oom-watch-v2".into())
        .spawn(move || {
            // Several events fit; each is at least the 16-byte header.
            let mut buffer = [0u8; 4096];
            loop {
                let mut fds = [
                    libc::pollfd {
                        fd: notify.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: stopped.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                // SAFETY: `fds` is two live pollfds for the duration of the call.
                let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
                if ready < 0 {
                    if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    break;
                }
                // The write end closed (or anything arrived on it): the task is gone.
                if fds[1].revents != 0 {
                    break;
                }
                match notify.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
                let Ok(now) = oom_kills(&dir) else { break };
                if now > seen {
                    on_oom();
                }
                seen = now;
            }
        })?;
    Ok(OomWatch { _stop: stop })
}

/// `key value` lines (`memory.stat`, `memory.events`, `cpu.stat`, `io.stat` entries) as a map;
/// lines that do not parse are left out.
fn flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key, value.trim().parse().ok()?))
        })
        .collect()
}

/// A single-value file: a number, or `max` (no limit, 0 in containerd's metrics as in runc's).
fn single(dir: &Path, file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    match text.trim() {
        "max" => Some(0),
        value => value.parse().ok(),
    }
}

fn keyed(dir: &Path, file: &str) -> HashMap<String, u64> {
    std::fs::read_to_string(dir.join(file))
        .map(|text| {
            flat_keyed(&text)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
        .unwrap_or_default()
}

/// A `*.pressure` file (`some avg10=… avg60=… avg300=… total=…`, then `full …`).
fn pressure(dir: &Path, file: &str) -> MessageField<PSIStats> {
    let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
        return MessageField::none();
    };
    let line = |kind: &str| -> MessageField<PSIData> {
        let Some(rest) = text
            .lines()
            .find_map(|l| l.strip_prefix(kind).and_then(|r| r.strip_prefix(' ')))
        else {
            return MessageField::none();
        };
        let mut data = PSIData::default();
        for pair in rest.split_whitespace() {
            match pair.split_once('=') {
                Some(("avg10", v)) => data.avg10 = v.parse().unwrap_or(0.0),
                Some(("avg60", v)) => data.avg60 = v.parse().unwrap_or(0.0),
                Some(("avg300", v)) => data.avg300 = v.parse().unwrap_or(0.0),
                Some(("total", v)) => data.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        MessageField::some(data)
    };
    MessageField::some(PSIStats {
        some: line("some"),
        full: line("full"),
        ..Default::default()
    })
}

/// `io.stat`: one line per device, `MAJ:MIN rbytes=… wbytes=… rios=… wios=… …`.
fn io_entries(text: &str) -> Vec<IOEntry> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (major, minor) = words.next()?.split_once(':')?;
            let mut entry = IOEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ..Default::default()
            };
            for pair in words {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = value.parse().unwrap_or(0);
                match key {
                    "rbytes" => entry.rbytes = value,
                    "wbytes" => entry.wbytes = value,
                    "rios" => entry.rios = value,
                    "wios" => entry.wios = value,
                    _ => {}
                }
            }
            Some(entry)
        })
        .collect()
}

/// `hugetlb.<size>.current`/`.max`/`.events` for each page size the kernel has.
fn hugetlb(dir: &Path) -> Vec<HugeTlbStat> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(".current")?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    sizes.sort();
    sizes
        .into_iter()
        .map(|size| HugeTlbStat {
            current: single(dir, &format!("hugetlb.{size}.current")).unwrap_or(0),
            max: single(dir, &format!("hugetlb.{size}.max")).unwrap_or(0),
            failcnt: keyed(dir, &format!("hugetlb.{size}.events"))
                .get("max")
                .copied()
                .unwrap_or(0),
            pagesize: size,
            ..Default::default()
        })
        .collect()
}

/// The statistics of the cgroup at `dir`. Fails only when `dir` is not a cgroup at all.
pub fn metrics(dir: &Path) -> io::Result<Metrics> {
    if !dir.join("cgroup.procs").is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a cgroup v2 directory", dir.display()),
        ));
    }
    let cpu = keyed(dir, "cpu.stat");
    let memory = keyed(dir, "memory.stat");
    let events = keyed(dir, "memory.events");
    let get = |map: &HashMap<String, u64>, key: &str| map.get(key).copied().unwrap_or(0);
    let io = std::fs::read_to_string(dir.join("io.stat"))
        .map(|text| io_entries(&text))
        .unwrap_or_default();
    Ok(Metrics {
        pids: MessageField::some(PidsStat {
            current: single(dir, "pids.current").unwrap_or(0),
            limit: single(dir, "pids.max").unwrap_or(0),
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage_usec: get(&cpu, "usage_usec"),
            user_usec: get(&cpu, "user_usec"),
            system_usec: get(&cpu, "system_usec"),
            nr_periods: get(&cpu, "nr_periods"),
            nr_throttled: get(&cpu, "nr_throttled"),
            throttled_usec: get(&cpu, "throttled_usec"),
            nr_bursts: get(&cpu, "nr_bursts"),
            burst_usec: get(&cpu, "burst_usec"),
            psi: pressure(dir, "cpu.pressure"),
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            anon: get(&memory, "anon"),
            file: get(&memory, "file"),
            kernel_stack: get(&memory, "kernel_stack"),
            slab: get(&memory, "slab"),
            sock: get(&memory, "sock"),
            shmem: get(&memory, "shmem"),
            file_mapped: get(&memory, "file_mapped"),
            file_dirty: get(&memory, "file_dirty"),
            file_writeback: get(&memory, "file_writeback"),
            anon_thp: get(&memory, "anon_thp"),
            inactive_anon: get(&memory, "inactive_anon"),
            active_anon: get(&memory, "active_anon"),
            inactive_file: get(&memory, "inactive_file"),
            active_file: get(&memory, "active_file"),
            unevictable: get(&memory, "unevictable"),
            slab_reclaimable: get(&memory, "slab_reclaimable"),
            slab_unreclaimable: get(&memory, "slab_unreclaimable"),
            pgfault: get(&memory, "pgfault"),
            pgmajfault: get(&memory, "pgmajfault"),
            workingset_refault: get(&memory, "workingset_refault")
                .max(get(&memory, "workingset_refault_file")),
            workingset_activate: get(&memory, "workingset_activate")
                .max(get(&memory, "workingset_activate_file")),
            workingset_nodereclaim: get(&memory, "workingset_nodereclaim"),
            pgrefill: get(&memory, "pgrefill"),
            pgscan: get(&memory, "pgscan"),
            pgsteal: get(&memory, "pgsteal"),
            pgactivate: get(&memory, "pgactivate"),
            pgdeactivate: get(&memory, "pgdeactivate"),
            pglazyfree: get(&memory, "pglazyfree"),
            pglazyfreed: get(&memory, "pglazyfreed"),
            thp_fault_alloc: get(&memory, "thp_fault_alloc"),
            thp_collapse_alloc: get(&memory, "thp_collapse_alloc"),
            usage: single(dir, "memory.current").unwrap_or(0),
            usage_limit: single(dir, "memory.max").unwrap_or(0),
            swap_usage: single(dir, "memory.swap.current").unwrap_or(0),
            swap_limit: single(dir, "memory.swap.max").unwrap_or(0),
            max_usage: single(dir, "memory.peak").unwrap_or(0),
            swap_max_usage: single(dir, "memory.swap.peak").unwrap_or(0),
            psi: pressure(dir, "memory.pressure"),
            ..Default::default()
        }),
        memory_events: MessageField::some(MemoryEvents {
            low: get(&events, "low"),
            high: get(&events, "high"),
            max: get(&events, "max"),
            oom: get(&events, "oom"),
            oom_kill: get(&events, "oom_kill"),
            oom_group_kill: get(&events, "oom_group_kill"),
            ..Default::default()
        }),
        io: MessageField::some(IOStat {
            usage: io,
            psi: pressure(dir, "io.pressure"),
            ..Default::default()
        }),
        hugetlb: hugetlb(dir),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unified_line_of_a_mixed_table_is_found() {
        let table =
            "12:memory:/x\n0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-a.scope\n";
        assert_eq!(
            unified_path(table),
            Some("/kubepods.slice/kubepods-besteffort.slice/cri-containerd-a.scope")
        );
        assert_eq!(unified_path("4:pids:/a\n"), None);
    }

    #[test]
    fn io_stat_lines_become_entries() {
        let entries = io_entries(
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n254:1 rbytes=7 wbytes=0 rios=1 wios=0\nbogus\n",
        );
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (
                entries[0].major,
                entries[0].minor,
                entries[0].rbytes,
                entries[0].wbytes
            ),
            (8, 0, 4096, 8192)
        );
        assert_eq!((entries[1].rios, entries[1].wios), (1, 0));
    }

    /// A cgroup directory with only some of the files a kernel may offer: no pressure, no
    /// swap, no hugetlb, no io.stat, `max` limits.
    #[test]
    fn missing_optional_files_leave_zeroes_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("cgroup.procs", "42\n");
        write(
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        );
        write("memory.current", "1048576\n");
        write("memory.max", "max\n");
        write("memory.stat", "anon 4096\nfile 8192\ninactive_file 2048\n");
        write("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        write("pids.current", "2\n");
        write("pids.max", "64\n");
        write("hugetlb.2MB.current", "0\n");
        write("hugetlb.2MB.max", "max\n");
        let m = metrics(dir.path()).unwrap();
        assert_eq!(m.cpu.usage_usec, 1500);
        assert_eq!((m.cpu.user_usec, m.cpu.system_usec), (1000, 500));
        assert!(m.cpu.psi.is_none());
        assert_eq!(m.memory.usage, 1 << 20);
        assert_eq!(m.memory.usage_limit, 0);
        assert_eq!((m.memory.anon, m.memory.inactive_file), (4096, 2048));
        assert_eq!((m.memory_events.max, m.memory_events.oom_kill), (3, 1));
        assert_eq!((m.pids.current, m.pids.limit), (2, 64));
        assert!(m.io.usage.is_empty());
        assert_eq!(m.hugetlb.len(), 1);
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
    }

    #[test]
    fn pressure_files_are_read_where_present() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        std::fs::write(
            dir.path().join("cpu.pressure"),
            "some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        )
        .unwrap();
        let m = metrics(dir.path()).unwrap();
        assert_eq!(m.cpu.psi.some.total, 1234);
        assert_eq!(m.cpu.psi.some.avg10, 1.5);
        assert_eq!(m.cpu.psi.full.total, 7);
    }

    #[test]
    fn a_directory_that_is_no_cgroup_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = metrics(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a cgroup v2"), "{err}");
    }
}
