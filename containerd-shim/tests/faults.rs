//! The shim under faults of the node around it: containerd killed and restarted while
//! containers run.

use std::time::{Duration, Instant};

mod common;

use common::{containerd_config, import, run_detached, shims_of, task_line, TIMEOUT};
use wasmbay_testkit::{require_root, ApiClient, PrivateContainerd};

/// Sleeps `seconds` in `poll_oneoff` (a monotonic clock subscription), then exits 3.
fn sleeper(seconds: u64) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const {nanos}))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
    (call $exit (i32.const 3))))"#,
        nanos = seconds * 1_000_000_000
    )
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Waits (bounded) for task `id` to exit through containerd's API, deletes task and
/// container, and returns the exit status containerd reported.
fn wait_and_delete(cd: &PrivateContainerd, api: &ApiClient, id: &str) -> u32 {
    let status = api
        .wait_task(id, *TIMEOUT)
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    cd.run_ok(cd.ctr().args(["tasks", "delete", id]), *TIMEOUT)
        .unwrap();
    cd.run_ok(cd.ctr().args(["containers", "delete", id]), *TIMEOUT)
        .unwrap();
    status
}

/// containerd SIGKILLed while 50 wasm containers run, down for a few seconds (during which one
/// more container ends by itself), then started again: every container kept running under its
/// shim, containerd finds them all again, the one that ended meanwhile reports its own exit
/// status, and the rest are killed with SIGTERM or SIGKILL and deleted with the statuses those
/// signals give. Nothing is left afterwards.
#[test]
fn containerd_killed_and_restarted_finds_its_running_wasm_containers() {
    if !require_root() {
        return;
    }
    const RUNNING: usize = 50;
    let brief_seconds = wasmbay_testkit::scaled(Duration::from_secs(2))
        .as_secs()
        .max(2);
    let dir = tempfile::tempdir().unwrap();
    let mut cd = PrivateContainerd::start_with(containerd_config(&dir.path().join("cache")))
        .expect("start a private containerd");
    let long = import(&cd, dir.path(), "sleeper", &sleeper(3600));
    let brief = import(&cd, dir.path(), "brief", &sleeper(brief_seconds));
    let ids: Vec<String> = (0..RUNNING).map(|n| format!("sleeper-{n:02}")).collect();
    let pids: Vec<u32> = ids
        .iter()
        .map(|id| run_detached(&cd, &long, id, &[]))
        .collect();
    let brief_pid = run_detached(&cd, &brief, "brief", &[]);
    let shims_before = shims_of(&cd);
    assert_eq!(shims_before.len(), RUNNING + 1, "one shim per container");
    let brief_shim = common::parent_of(brief_pid);

    cd.crash_and_restart(Duration::from_secs(brief_seconds + 2))
        .unwrap_or_else(|e| panic!("containerd did not come back: {e}"));

    assert!(
        !alive(brief_pid),
        "the brief container should have ended while containerd was down"
    );
    for (id, pid) in ids.iter().zip(&pids) {
        assert!(alive(*pid), "{id} (pid {pid}) died with containerd");
        let line = task_line(&cd, id);
        assert!(
            line.contains("RUNNING") && line.split_whitespace().nth(1) == Some(&pid.to_string()),
            "{id} after the restart: {line:?}\n{}",
            cd.log_tail()
        );
    }
    // The running containers' shims are the same processes. The brief container's may have
    // gone already: containerd 1.7 finishes a task that ended while it was down as it
    // reconnects (1.6 does so at the wait below).
    let shims_after = shims_of(&cd);
    let expected: Vec<u32> = shims_before
        .iter()
        .copied()
        .filter(|&pid| Some(pid) != brief_shim || shims_after.contains(&pid))
        .collect();
    assert_eq!(shims_after, expected, "the shims are the same processes");

    let api = ApiClient::connect(cd.address(), cd.namespace()).unwrap();
    // containerd 1.6 keeps a task that ended while it was down, and Wait answers its status.
    // 1.7 asks each shim it reconnects to for its pids and deletes a task with none as a
    // leaked shim (containerd/containerd#6866, for runc's shim as for ours), so there the
    // task is gone and only its container record remains.
    match api.wait_task("brief", *TIMEOUT) {
        Ok(status) => {
            assert_eq!(status, 3, "brief's own exit status");
            cd.run_ok(cd.ctr().args(["tasks", "delete", "brief"]), *TIMEOUT)
                .unwrap();
        }
        Err(e) if e.to_string().contains("not found") => {
            eprintln!("containerd finished `brief` itself as it reconnected ({e})");
            assert!(task_line(&cd, "brief").is_empty());
        }
        Err(e) => panic!("brief: {e}"),
    }
    cd.run_ok(cd.ctr().args(["containers", "delete", "brief"]), *TIMEOUT)
        .unwrap();
    for (n, id) in ids.iter().enumerate() {
        let signal = if n % 2 == 0 { "SIGTERM" } else { "SIGKILL" };
        cd.run_ok(
            cd.ctr().args(["tasks", "kill", "--signal", signal, id]),
            *TIMEOUT,
        )
        .unwrap();
    }
    for (n, id) in ids.iter().enumerate() {
        let expected = if n % 2 == 0 { 128 + 15 } else { 128 + 9 };
        assert_eq!(wait_and_delete(&cd, &api, id), expected, "{id}");
    }
    let deadline = Instant::now() + *TIMEOUT;
    while !shims_of(&cd).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        shims_of(&cd),
        Vec::<u32>::new(),
        "shims left after every delete"
    );
    let tasks = cd
        .state()
        .join("io.containerd.runtime.v2.task")
        .join(cd.namespace());
    let left: Vec<_> = std::fs::read_dir(&tasks)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "bundles left in {}: {left:?}",
        tasks.display()
    );
    assert!(wasmbay_testkit::mounts_under(cd.dir()).is_empty());
}

/// What a node accumulates if lifecycles leak, counted for one containerd and one shim.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Footprint {
    shims: Vec<u32>,
    shim_fds: usize,
    shim_threads: usize,
    containerd_fds: usize,
    mounts: usize,
    cgroups: usize,
    state_dirs: usize,
    cache_files: usize,
    processes_in_rootfs: usize,
}

fn count_entries(dir: &std::path::Path, keep: impl Fn(&str) -> bool) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| keep(&e.file_name().to_string_lossy()))
                .count()
        })
        .unwrap_or(0)
}

fn footprint(cd: &PrivateContainerd, cache: &std::path::Path, prefix: &str) -> Footprint {
    let shims = shims_of(cd);
    let fds = |pid: u32| count_entries(std::path::Path::new(&format!("/proc/{pid}/fd")), |_| true);
    let ours = |name: &str| name.starts_with(prefix);
    // Every hierarchy: v1's controllers (`<root>/<controller>/<namespace>/<id>`) or v2's tree.
    let cgroups = std::fs::read_dir("/sys/fs/cgroup")
        .map(|hierarchies| {
            hierarchies
                .flatten()
                .map(|h| count_entries(&h.path().join(cd.namespace()), ours))
                .sum::<usize>()
        })
        .unwrap_or(0)
        + count_entries(
            &std::path::Path::new("/sys/fs/cgroup").join(cd.namespace()),
            ours,
        );
    let state_dirs = std::fs::read_dir("/run/wasmbay-shim")
        .map(|roots| {
            roots
                .flatten()
                .map(|r| count_entries(&r.path().join(cd.namespace()), ours))
                .sum()
        })
        .unwrap_or(0);
    let cache_files = std::fs::read_dir(cache)
        .map(|engines| {
            engines
                .flatten()
                .map(|e| count_entries(&e.path(), |_| true))
                .sum()
        })
        .unwrap_or(0);
    Footprint {
        shim_fds: shims.iter().map(|&pid| fds(pid)).sum(),
        shim_threads: shims
            .iter()
            .map(|&pid| count_entries(std::path::Path::new(&format!("/proc/{pid}/task")), |_| true))
            .sum(),
        containerd_fds: cd.pid().map_or(0, fds),
        shims,
        mounts: wasmbay_testkit::mounts_under(cd.dir()).len(),
        cgroups,
        state_dirs,
        cache_files,
        processes_in_rootfs: wasmbay_testkit::processes_rooted_under(cd.dir()).len(),
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Create, start, wait and delete (`ctr run --rm`) through one long-lived namespace shim,
/// `WASMBAY_STRESS_ROUNDS` × 2 times (20 in CI; the report's run is 10,000): afterwards the
/// shim is the same process with the same open descriptors, and no mount, cgroup, state
/// directory, cache file or process is left that was not there before.
#[test]
fn lifecycles_through_one_shim_leave_nothing_behind() {
    if !require_root() {
        return;
    }
    let rounds = wasmbay_testkit::stress_rounds() * 2;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cd = PrivateContainerd::start_with(
        containerd_config(&cache)
            .with_env("WASMBAY_SHIM_GROUPING", "namespace")
            .with_env("WASMBAY_SHIM_LINGER_MS", "600000"),
    )
    .expect("start a private containerd");
    let image = import(&cd, dir.path(), "cycle", &sleeper(0));
    let cycle = |id: &str| {
        let mut run = cd.ctr_run();
        run.args(["--rm", "--runtime", common::RUNTIME, &image, id]);
        let output = wasmbay_testkit::run_with_timeout(&mut run, *TIMEOUT)
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            output.status.code(),
            Some(3),
            "{id}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // The first cycles start the shim, compile the module and warm containerd's connections.
    for n in 0..3 {
        cycle(&format!("warm-{n}"));
    }
    let before = footprint(&cd, &cache, "leak-");
    assert_eq!(before.shims.len(), 1, "one namespace shim: {before:?}");
    let rss_before = rss_kib(before.shims[0]);
    let started = Instant::now();
    for n in 0..rounds {
        cycle(&format!("leak-{n}"));
    }
    let elapsed = started.elapsed();
    // The last cycle's watchers (exit, OOM) and containerd's side of its connections end
    // asynchronously after its delete answered; give them a bounded moment, so that only
    // what stays is counted. A leak grows with the rounds and does not settle.
    let settled = |after: &Footprint| {
        after.shim_fds <= before.shim_fds
            && after.shim_threads <= before.shim_threads + 4
            && Footprint {
                shim_fds: before.shim_fds,
                shim_threads: before.shim_threads,
                ..after.clone()
            } == before
    };
    let settle_by = Instant::now() + Duration::from_secs(5);
    let mut after = footprint(&cd, &cache, "leak-");
    while !settled(&after) && Instant::now() < settle_by {
        std::thread::sleep(Duration::from_millis(100));
        after = footprint(&cd, &cache, "leak-");
    }
    let rss_after = rss_kib(before.shims[0]);
    eprintln!(
        "{rounds} lifecycles in {:.1} s ({:.1}/s); before {before:?}; after {after:?}; shim RSS {rss_before} → {rss_after} KiB",
        elapsed.as_secs_f64(),
        rounds as f64 / elapsed.as_secs_f64()
    );
    // The shim's descriptors and threads may differ by the transient ones of the cycle before
    // the baseline (its stdio closing, its exit watcher, a blocking-pool thread): a leak grows
    // with the rounds (a sleeping linger thread per lifecycle once did, one per cycle).
    assert!(
        after.shim_fds <= before.shim_fds,
        "shim descriptors grew: {before:?} → {after:?}"
    );
    // containerd's too: the baseline can catch one of its connections in flight (seen once
    // in the Debian 12 guest: 12 before, 11 after); a leak grows instead.
    assert!(
        after.containerd_fds <= before.containerd_fds,
        "containerd descriptors grew: {before:?} → {after:?}"
    );
    assert!(
        after.shim_threads <= before.shim_threads + 4,
        "shim threads grew: {before:?} → {after:?}"
    );
    assert_eq!(
        Footprint {
            shim_fds: before.shim_fds,
            shim_threads: before.shim_threads,
            containerd_fds: before.containerd_fds,
            ..after
        },
        before,
        "what {rounds} lifecycles left behind"
    );
}
