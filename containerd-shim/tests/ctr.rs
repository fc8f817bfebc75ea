//! The shim under a private containerd, driven by `ctr` as a user would.

use std::path::Path;
use std::time::Duration;

mod common;

use common::{
    containerd_config, import, kill_and_remove, run_detached, shims_of, task_line, EXEC_TARGET,
    HOG, RUNTIME, SPIN, TIMEOUT,
};
use wasmbay_oci_image::{ImageRef, ImageSpec, Layout, Platform};
use wasmbay_testkit::{require_root, PrivateContainerd};

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from the shim\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 20))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

const EXIT_42: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 42))))"#;

fn containerd(cache: &Path) -> PrivateContainerd {
    PrivateContainerd::start_with(containerd_config(cache)).expect("start a private containerd")
}

#[test]
fn ctr_runs_wasm_through_the_shim() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let hello = import(&cd, dir.path(), "hello", HELLO);
    let exit42 = import(&cd, dir.path(), "exit42", EXIT_42);

    let mut run = cd.ctr_run();
    run.args(["--rm", "--runtime", RUNTIME, &hello, "hello-1"]);
    let out = cd
        .run_ok(&mut run, *TIMEOUT)
        .unwrap_or_else(|e| panic!("{e:?}\n{}", cd.log_tail()));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the shim\n"
    );

    let mut run = cd.ctr_run();
    run.args(["--rm", "--runtime", RUNTIME, &exit42, "exit-1"]);
    let out = wasmbay_testkit::run_with_timeout(&mut run, *TIMEOUT).unwrap();
    assert_eq!(
        out.status.code(),
        Some(42),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The second start of the same image loads the precompiled artifact.
    let artifacts = std::fs::read_dir(dir.path().join("cache/wasmtime"))
        .unwrap()
        .count();
    let mut run = cd.ctr_run();
    run.args(["--rm", "--runtime", RUNTIME, &hello, "hello-2"]);
    cd.run_ok(&mut run, *TIMEOUT).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache/wasmtime"))
            .unwrap()
            .count(),
        artifacts
    );
}

#[test]
fn ctr_kills_and_deletes_a_running_wasm_task() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let spin = import(&cd, dir.path(), "spin", SPIN);
    for id in ["spin-a", "spin-b"] {
        let mut run = cd.ctr_run();
        run.args(["-d", "--runtime", RUNTIME, &spin, id]);
        cd.run_ok(&mut run, *TIMEOUT).unwrap();
    }
    let tasks = cd.run_ok(cd.ctr().args(["tasks", "ls"]), *TIMEOUT).unwrap();
    let tasks = String::from_utf8_lossy(&tasks.stdout).into_owned();
    for id in ["spin-a", "spin-b"] {
        assert!(
            tasks
                .lines()
                .any(|l| l.starts_with(id) && l.contains("RUNNING")),
            "{tasks}"
        );
    }
    for id in ["spin-a", "spin-b"] {
        cd.run_ok(
            cd.ctr().args(["tasks", "kill", "--signal", "SIGTERM", id]),
            *TIMEOUT,
        )
        .unwrap();
        let mut stopped = false;
        for _ in 0..wasmbay_testkit::scaled_rounds(200) {
            let tasks = cd.run_ok(cd.ctr().args(["tasks", "ls"]), *TIMEOUT).unwrap();
            if String::from_utf8_lossy(&tasks.stdout)
                .lines()
                .any(|l| l.starts_with(id) && l.contains("STOPPED"))
            {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(stopped, "{id} did not stop on SIGTERM");
        cd.run_ok(cd.ctr().args(["tasks", "delete", id]), *TIMEOUT)
            .unwrap();
        cd.run_ok(cd.ctr().args(["containers", "delete", id]), *TIMEOUT)
            .unwrap();
    }
}

/// `(state, utime)` of process `pid` from `/proc/<pid>/stat`.
fn sched_state(pid: u32) -> (char, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces; the fields after it are space-separated.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    (
        fields[0].chars().next().unwrap(),
        fields[11].parse().unwrap(),
    )
}

#[test]
fn pause_freezes_a_spinning_task_and_resume_thaws_it() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let spin = import(&cd, dir.path(), "spin", SPIN);
    let pid = run_detached(&cd, &spin, "frozen", &[]);
    let cpu_over = |ms| {
        let before = sched_state(pid).1;
        std::thread::sleep(Duration::from_millis(ms));
        sched_state(pid).1 - before
    };
    assert!(
        cpu_over(300) > 0,
        "the spinning guest used no CPU before pause"
    );

    cd.run_ok(cd.ctr().args(["tasks", "pause", "frozen"]), *TIMEOUT)
        .unwrap();
    assert!(
        task_line(&cd, "frozen").contains("PAUSED"),
        "{}",
        task_line(&cd, "frozen")
    );
    // The freezer may take a moment to reach every thread.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cpu_over(500), 0, "a paused guest went on running");
    // Pausing twice is refused with the state named.
    let again = cd
        .ctr()
        .args(["tasks", "pause", "frozen"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not running"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    cd.run_ok(cd.ctr().args(["tasks", "resume", "frozen"]), *TIMEOUT)
        .unwrap();
    assert!(
        task_line(&cd, "frozen").contains("RUNNING"),
        "{}",
        task_line(&cd, "frozen")
    );
    assert!(cpu_over(300) > 0, "a resumed guest did not run");

    // Killed while paused, it still ends (a frozen process would hold SIGKILL for ever).
    cd.run_ok(cd.ctr().args(["tasks", "pause", "frozen"]), *TIMEOUT)
        .unwrap();
    cd.run_ok(
        cd.ctr()
            .args(["tasks", "kill", "--signal", "SIGKILL", "frozen"]),
        *TIMEOUT,
    )
    .unwrap();
    let mut stopped = false;
    for _ in 0..wasmbay_testkit::scaled_rounds(250) {
        if task_line(&cd, "frozen").contains("STOPPED") {
            stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        stopped,
        "a paused task did not stop on SIGKILL: {}",
        task_line(&cd, "frozen")
    );
    cd.run_ok(cd.ctr().args(["tasks", "delete", "frozen"]), *TIMEOUT)
        .unwrap();
    cd.run_ok(cd.ctr().args(["containers", "delete", "frozen"]), *TIMEOUT)
        .unwrap();
}

#[test]
fn a_systemd_cgroups_path_puts_the_task_in_a_scope_under_its_slice() {
    if !require_root() || !wasmbay_testkit::require_systemd_cgroup_v2() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let spin = import(&cd, dir.path(), "spin", SPIN);
    let pid = run_detached(
        &cd,
        &spin,
        "placed",
        &["--cgroup", "system.slice:wb:placed"],
    );
    // Where runc's systemd driver puts the same path: a transient scope `<prefix>-<name>`.
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l == "0::/system.slice/wb-placed.scope"),
        "{table}"
    );
    let scope = Path::new("/sys/fs/cgroup/system.slice/wb-placed.scope");
    assert!(scope.is_dir());
    kill_and_remove(&cd, "placed");
    // systemd removes a transient scope once its last process is gone.
    let mut gone = false;
    for _ in 0..wasmbay_testkit::scaled_rounds(100) {
        if !scope.exists() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone, "{} left behind after delete", scope.display());
}

/// The memory limit of `pid`'s cgroup in bytes (`None` for no limit), on either hierarchy.
fn memory_limit_of(pid: u32) -> Option<u64> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v1 = table.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        rest.strip_prefix("memory:")
    });
    let file = match v1 {
        Some(path) => format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"),
        None => {
            let path = table.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            format!("/sys/fs/cgroup{path}/memory.max")
        }
    };
    let text = std::fs::read_to_string(&file).unwrap();
    match text.trim() {
        "max" => None,
        // v1's "no limit" is the largest page-aligned value.
        v => v.parse().ok().filter(|&n: &u64| n < (1 << 62)),
    }
}

#[test]
fn update_changes_a_running_tasks_memory_limit() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let spin = import(&cd, dir.path(), "spin", SPIN);
    let pid = run_detached(&cd, &spin, "updated", &["--memory-limit", "268435456"]);
    assert_eq!(memory_limit_of(pid), Some(256 << 20));
    let api = wasmbay_testkit::ApiClient::connect(cd.address(), "wasmbay-test").unwrap();
    api.update_task_resources("updated", br#"{"memory": {"limit": 134217728}}"#)
        .unwrap();
    assert_eq!(memory_limit_of(pid), Some(128 << 20));
    assert!(task_line(&cd, "updated").contains("RUNNING"));
    kill_and_remove(&cd, "updated");
}

/// The directory of `pid`'s cgroup for `controller` (v1), or its one cgroup (v2).
fn cgroup_dir_of(pid: u32, controller: &str) -> std::path::PathBuf {
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v1 = table.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    });
    match v1 {
        Some(path) => Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(path.trim_start_matches('/')),
        None => {
            let path = table.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'))
        }
    }
}

/// A `key value` line of a cgroup stat file.
fn stat_value(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {}", file.display()))
}

/// A CPU quota (`ctr run --cpus`) holds a spinning guest to its share, and a pids limit set by
/// update is in the task's cgroup, on either hierarchy.
#[test]
fn cpu_quota_throttles_a_spinning_guest_and_a_pids_limit_is_applied() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let spin = import(&cd, dir.path(), "spin", SPIN);
    let pid = run_detached(&cd, &spin, "limited", &["--cpus", "0.2"]);
    let cpu = cgroup_dir_of(pid, "cpu");
    let v2 = cpu.join("cpu.max").exists();
    if v2 {
        let max = std::fs::read_to_string(cpu.join("cpu.max")).unwrap();
        assert_eq!(max.trim(), "20000 100000", "cpu.max");
    } else {
        let quota = std::fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap();
        assert_eq!(quota.trim(), "20000", "cpu.cfs_quota_us");
    }
    // CPU time used over a wall-clock window: about a fifth of it, and never most of it (an
    // unthrottled spinner uses all of it).
    let used = || -> f64 {
        if v2 {
            stat_value(&cpu.join("cpu.stat"), "usage_usec") as f64 / 1e6
        } else {
            let usage = cgroup_dir_of(pid, "cpuacct").join("cpuacct.usage");
            let nanos: f64 = std::fs::read_to_string(usage)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            nanos / 1e9
        }
    };
    let (start_used, start) = (used(), std::time::Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let share = (used() - start_used) / start.elapsed().as_secs_f64();
    assert!(
        share < 0.5,
        "a 0.2 CPU quota let the guest use {share:.2} of a CPU"
    );
    assert!(
        stat_value(&cpu.join("cpu.stat"), "nr_throttled") > 0,
        "never throttled"
    );

    let api = wasmbay_testkit::ApiClient::connect(cd.address(), "wasmbay-test").unwrap();
    api.update_task_resources("limited", br#"{"pids": {"limit": 16}}"#)
        .unwrap();
    let pids = cgroup_dir_of(pid, "pids").join("pids.max");
    assert_eq!(
        std::fs::read_to_string(&pids).unwrap().trim(),
        "16",
        "{}",
        pids.display()
    );
    assert!(task_line(&cd, "limited").contains("RUNNING"));
    kill_and_remove(&cd, "limited");
}

#[test]
fn task_metrics_report_the_running_guest() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let spin = import(&cd, dir.path(), "spin", SPIN);
    run_detached(&cd, &spin, "measured", &[]);
    std::thread::sleep(Duration::from_millis(300));
    let out = cd
        .run_ok(cd.ctr().args(["tasks", "metrics", "measured"]), *TIMEOUT)
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = |name: &str| -> Option<u64> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    // v1 and v2 name them differently (ctr prints each message's own fields).
    let (cpu, memory) = if table.contains("cpu.usage_usec") {
        ("cpu.usage_usec", "memory.usage")
    } else {
        ("cpuacct.usage", "memory.usage_in_bytes")
    };
    assert!(value("pids.current").is_some_and(|n| n >= 1), "{table}");
    assert!(value(cpu).is_some_and(|n| n > 0), "{table}");
    assert!(value(memory).is_some_and(|n| n > 0), "{table}");
    kill_and_remove(&cd, "measured");
}

#[test]
fn cgroup_oom_kill_is_reported_as_task_oom() {
    if !require_root() {
        return;
    }
    let v2_memory = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
    if !Path::new("/sys/fs/cgroup/memory").is_dir() && !v2_memory {
        eprintln!("skipped: no memory cgroup controller (neither v1's nor v2's) on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let hog = import(&cd, dir.path(), "hog", HOG);
    let events_log = dir.path().join("events.log");
    let mut events = cd
        .ctr()
        .arg("events")
        .stdout(std::fs::File::create(&events_log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The linear-memory cap equals the cgroup limit, so the process (engine + code + memory)
    // reaches the cgroup limit first and the kernel kills it.
    let mut run = cd.ctr_run();
    run.args([
        "--rm",
        "--memory-limit",
        "41943040",
        "--runtime",
        RUNTIME,
        &hog,
        "hog-1",
    ]);
    let out = wasmbay_testkit::run_with_timeout(&mut run, *TIMEOUT).unwrap();
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    let _ = events.kill();
    let _ = events.wait();
    let log = std::fs::read_to_string(&events_log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("/tasks/oom") && l.contains("hog-1")),
        "no /tasks/oom event:\n{log}"
    );
}

#[test]
fn a_killed_shim_leaves_nothing_behind() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let spin = import(&cd, dir.path(), "spin", SPIN);
    let mut run = cd.ctr_run();
    run.args(["-d", "--runtime", RUNTIME, &spin, "orphan"]);
    cd.run_ok(&mut run, *TIMEOUT).unwrap();
    let tasks = cd.run_ok(cd.ctr().args(["tasks", "ls"]), *TIMEOUT).unwrap();
    let tasks = String::from_utf8_lossy(&tasks.stdout).into_owned();
    let pid: i32 = tasks
        .lines()
        .find(|l| l.starts_with("orphan"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no task pid in:\n{tasks}"));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let shim: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(std::fs::read_to_string(format!("/proc/{shim}/cmdline"))
        .unwrap()
        .contains("containerd-shim-wasmbay-wasmtime-v1"));
    // The rootfs is mounted in the shim's own mount namespace, not in the host's: init
    // processes then never parse a host mount table that grows with every container.
    let rootfs = cd
        .state()
        .join("io.containerd.runtime.v2.task")
        .join(cd.namespace())
        .join("orphan/rootfs");
    let shim_mounts = std::fs::read_to_string(format!("/proc/{shim}/mountinfo")).unwrap();
    assert!(
        shim_mounts.contains(rootfs.to_str().unwrap()),
        "the shim does not see its rootfs mount"
    );
    assert!(
        !wasmbay_testkit::mounts_under(cd.dir()).contains(&rootfs),
        "the rootfs mount is visible in the host's namespace"
    );
    let cgroups = wasmbay_testkit::cgroup_dirs_of(pid as u32);
    assert!(!cgroups.is_empty(), "no cgroup found for the task");
    // This container's libcontainer state: the directory whose state.json names its pid.
    let state_dirs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir("/run/wasmbay-shim")
            .map(|hashes| {
                hashes
                    .flatten()
                    .map(|h| h.path().join(cd.namespace()).join("orphan"))
                    .filter(|d| {
                        std::fs::read_to_string(d.join("state.json"))
                            .is_ok_and(|s| s.contains(&format!("\"pid\":{pid},")))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        !state_dirs().is_empty(),
        "no container state found under /run/wasmbay-shim"
    );
    // SAFETY: kill takes plain integers; a pid reused meanwhile is not a risk in a test that has
    // just read it from containerd.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    // containerd notices the dead shim and runs its `delete` action, which must remove the
    // still-spinning container.
    // Killed means gone or a zombie: its new parent may not reap it at once.
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .map(|zombie| !zombie)
            .unwrap_or(false)
    };
    let mut gone = false;
    for _ in 0..wasmbay_testkit::scaled_rounds(250) {
        if !alive(pid) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "the container of a killed shim is still running");
    let _ = cd.ctr().args(["tasks", "delete", "orphan"]).output();
    cd.run_ok(cd.ctr().args(["containers", "delete", "orphan"]), *TIMEOUT)
        .unwrap();
    assert!(
        !wasmbay_testkit::mounts_under(cd.dir())
            .iter()
            .any(|m| m == &rootfs),
        "rootfs still mounted"
    );
    // containerd runs the cleanup in the background once it sees the shim gone.
    let leftovers = || -> Vec<std::path::PathBuf> {
        let mut left: Vec<_> = cgroups.iter().filter(|d| d.exists()).cloned().collect();
        left.extend(state_dirs());
        left
    };
    let deadline = std::time::Instant::now() + *TIMEOUT;
    while !leftovers().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let shim_log = std::fs::read_to_string(dir.path().join("shim.log")).unwrap_or_default();
    assert_eq!(
        leftovers(),
        Vec::<std::path::PathBuf>::new(),
        "cgroups or container state left by the dead shim's container; shim log:\n{}",
        shim_log
            .lines()
            .filter(|l| !l.contains("DEBUG"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// An OCI spec for a container created through the API: runc's defaults, our args.
fn api_spec(id: &str, args: &[&str]) -> Vec<u8> {
    wasmbay_testkit::process_spec(args, &format!("/wasmbay-test/{id}")).unwrap()
}

#[test]
fn a_module_in_an_artifact_layer_runs_from_the_content_store() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cd = containerd(&cache);
    let reference = ImageRef::parse("artifact:test").unwrap();
    let module = wat::parse_str(HELLO).unwrap();
    let mut image = ImageSpec::new(reference.clone(), "hello.wasm", module);
    image.layout = Layout::Artifact;
    image.platform = Platform::parse("linux/amd64").unwrap();
    let image = image.build().unwrap();
    let archive = dir.path().join("artifact.tar");
    image.write_to(&archive).unwrap();
    // containerd 1.6.20 cannot unpack images with non-filesystem layers (see testkit::api).
    cd.import(&archive, &["--no-unpack"]).unwrap();
    let layer = image.layers[0].digest.clone();

    let client = wasmbay_testkit::ApiClient::connect(cd.address(), cd.namespace()).unwrap();
    let run = |id: &str| {
        let (out, err) = (
            dir.path().join(format!("{id}.out")),
            dir.path().join(format!("{id}.err")),
        );
        let container = wasmbay_testkit::ApiContainer {
            id,
            image: &reference.to_string(),
            runtime: RUNTIME,
            spec_json: api_spec(id, &["/hello.wasm"]),
        };
        let status = client.run_with_empty_rootfs(container, &out, &err, *TIMEOUT);
        (
            status,
            std::fs::read_to_string(out).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default(),
        )
    };

    let (status, stdout, stderr) = run("art-1");
    assert_eq!(status.unwrap(), 0, "stderr: {stderr}\n{}", cd.log_tail());
    assert_eq!(stdout, "hello from the shim\n");
    let artifacts = std::fs::read_dir(cache.join("wasmtime"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .count();
    assert_eq!(artifacts, 1, "the layer was compiled into the cache");

    // A warm start needs only the manifest: with the layer gone from the content store, the
    // module still runs from the cache.
    let mut rm = cd.ctr();
    rm.args(["content", "rm", &layer]);
    cd.run_ok(&mut rm, *TIMEOUT).unwrap();
    let (status, stdout, stderr) = run("art-2");
    assert_eq!(status.unwrap(), 0, "stderr: {stderr}\n{}", cd.log_tail());
    assert_eq!(stdout, "hello from the shim\n");

    // With neither, creating the task fails, naming the layer.
    std::fs::remove_dir_all(&cache).unwrap();
    let (status, _, _) = run("art-3");
    let err = status
        .expect_err("no layer and no cache must fail")
        .to_string();
    assert!(err.contains(&layer), "{err}");
}

/// A private containerd whose shims group per namespace and linger `linger_ms` when idle.
fn namespace_containerd(dir: &Path, linger_ms: &str) -> PrivateContainerd {
    PrivateContainerd::start_with(
        containerd_config(&dir.join("cache"))
            .with_env("WASMBAY_SHIM_GROUPING", "namespace")
            .with_env("WASMBAY_SHIM_LINGER_MS", linger_ms),
    )
    .unwrap()
}

/// Waits up to 5 s for every shim of `cd` to exit; returns those still running.
fn shims_left_after_idle(cd: &PrivateContainerd) -> Vec<u32> {
    let mut left = shims_of(cd);
    for _ in 0..wasmbay_testkit::scaled_rounds(100) {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = shims_of(cd);
    }
    left
}

#[test]
fn namespace_grouping_serves_every_container_from_one_shim_that_exits_when_idle() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = namespace_containerd(dir.path(), "300");
    let spin = import(&cd, dir.path(), "spin", SPIN);
    let hello = import(&cd, dir.path(), "hello", HELLO);
    let ids = ["ns-a", "ns-b", "ns-c"];
    for id in ids {
        let mut run = cd.ctr_run();
        run.args(["-d", "--runtime", RUNTIME, &spin, id]);
        cd.run_ok(&mut run, *TIMEOUT)
            .unwrap_or_else(|e| panic!("{e:?}\n{}", cd.log_tail()));
    }
    assert_eq!(shims_of(&cd).len(), 1, "one shim for the namespace");
    // The shim was started in ns-a's bundle; it must go on serving once that is gone.
    let ids = &ids[..];
    let stop = |id: &str| {
        cd.run_ok(
            cd.ctr().args(["tasks", "kill", "--signal", "SIGKILL", id]),
            *TIMEOUT,
        )
        .unwrap();
        let mut deleted = false;
        for _ in 0..wasmbay_testkit::scaled_rounds(200) {
            if cd
                .ctr()
                .args(["tasks", "delete", id])
                .output()
                .unwrap()
                .status
                .success()
            {
                deleted = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(deleted, "task {id} not deleted");
        cd.run_ok(cd.ctr().args(["containers", "delete", id]), *TIMEOUT)
            .unwrap();
    };
    stop(ids[0]);
    // A short job joins the same shim while the others run.
    let mut run = cd.ctr_run();
    run.args(["--rm", "--runtime", RUNTIME, &hello, "ns-hello"]);
    let out = cd.run_ok(&mut run, *TIMEOUT).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the shim\n"
    );
    assert_eq!(shims_of(&cd).len(), 1);
    for id in &ids[1..] {
        stop(id);
    }
    // Idle now: the shim lingers 300 ms for a next container, then exits.
    let left = shims_left_after_idle(&cd);
    assert!(left.is_empty(), "idle shim still running: {left:?}");
}

#[test]
fn an_unknown_grouping_is_refused_naming_the_variable() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = PrivateContainerd::start_with(
        containerd_config(&dir.path().join("cache")).with_env("WASMBAY_SHIM_GROUPING", "node"),
    )
    .unwrap();
    let hello = import(&cd, dir.path(), "hello", HELLO);
    let mut run = cd.ctr_run();
    run.args(["--rm", "--runtime", RUNTIME, &hello, "bad-grouping"]);
    let err = cd.run_ok(&mut run, *TIMEOUT).unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("WASMBAY_SHIM_GROUPING") && text.contains("node"),
        "{text}"
    );
    assert!(shims_of(&cd).is_empty());
}

#[test]
fn a_namespace_shim_that_went_idle_is_replaced_by_the_next_start() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = namespace_containerd(dir.path(), "200");
    let hello = import(&cd, dir.path(), "hello", HELLO);
    // Two starts back to back share the lingering shim; after it has exited, the next start
    // spawns a new one. Starts run one after another, so that the idle exit is what is tested.
    for round in 0..2 {
        for i in 0..2 {
            let mut run = cd.ctr_run();
            let id = format!("idle-{round}-{i}");
            run.args(["--rm", "--runtime", RUNTIME, &hello, &id]);
            let output = cd
                .run_ok(&mut run, *TIMEOUT)
                .unwrap_or_else(|e| panic!("{e:?}\n{}", cd.log_tail()));
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                "hello from the shim\n"
            );
        }
        // Past the linger time and the exit grace, the idle shim is gone.
        let left = shims_left_after_idle(&cd);
        assert!(
            left.is_empty(),
            "round {round}: idle shim still running: {left:?}"
        );
    }
}

#[test]
fn guests_ending_beside_busy_threads_always_exit() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let guests = [
        ("poll-return", "", 0),
        ("poll-exit", "(call $exit (i32.const 7))", 7),
        ("poll-trap", "unreachable", 251),
    ];
    let images: Vec<(String, &str, i32)> = guests
        .iter()
        .map(|(name, end, code)| {
            let wat = wasmbay_testkit::poll_stdin_then(end);
            (import(&cd, dir.path(), name, &wat), *name, *code)
        })
        .collect();
    let rounds = wasmbay_testkit::stress_rounds();
    let started = std::time::Instant::now();
    for round in 0..rounds {
        for (image, name, code) in &images {
            let id = format!("{name}-{round}");
            let mut run = cd.ctr_run();
            run.args(["--rm", "--runtime", RUNTIME, image, &id]);
            let out = wasmbay_testkit::run_with_timeout(&mut run, *TIMEOUT)
                .unwrap_or_else(|e| panic!("{id}: {e}\n{}", cd.log_tail()));
            assert_eq!(
                out.status.code(),
                Some(*code),
                "{id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    eprintln!(
        "stress: {} runs, no hang, in {:?}",
        rounds * images.len(),
        started.elapsed()
    );
    let tasks = cd
        .run_ok(cd.ctr().args(["tasks", "ls", "-q"]), *TIMEOUT)
        .unwrap();
    assert!(
        tasks.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&tasks.stdout)
    );
    let containers = cd
        .run_ok(cd.ctr().args(["containers", "ls", "-q"]), *TIMEOUT)
        .unwrap();
    assert!(
        containers.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&containers.stdout)
    );
}

/// Creates at once into one shim: every create runs in a worker forked from the shim's
/// single-threaded zygote, so none inherits a lock another create held (they used to hang).
#[test]
fn sixteen_concurrent_creates_into_one_namespace_shim_all_finish() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A long linger: the shim must not go idle between two runs of a round and be replaced.
    let cd = namespace_containerd(dir.path(), "20000");
    let image = import(
        &cd,
        dir.path(),
        "poll",
        &wasmbay_testkit::poll_stdin_then(""),
    );
    let rounds = wasmbay_testkit::stress_rounds().div_ceil(5);
    for round in 0..rounds {
        std::thread::scope(|scope| {
            let runs: Vec<_> = (0..16)
                .map(|i| {
                    let (cd, image) = (&cd, &image);
                    scope.spawn(move || {
                        let id = format!("par-{round}-{i}");
                        let mut run = cd.ctr_run();
                        run.args(["--rm", "--runtime", RUNTIME, image, &id]);
                        (id, wasmbay_testkit::run_with_timeout(&mut run, *TIMEOUT))
                    })
                })
                .collect();
            for run in runs {
                let (id, out) = run.join().unwrap();
                let out = out.unwrap_or_else(|e| panic!("{id}: {e}\n{}", cd.log_tail()));
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{id}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        });
        assert_eq!(shims_of(&cd).len(), 1, "one shim for the namespace");
    }
    let tasks = cd
        .run_ok(cd.ctr().args(["tasks", "ls", "-q"]), *TIMEOUT)
        .unwrap();
    assert!(
        tasks.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&tasks.stdout)
    );
}

#[test]
fn exec_runs_another_wasm_command_in_a_running_wasm_task() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let image = import(&cd, dir.path(), "exec-target", EXEC_TARGET);
    let id = "exec-wasm";
    let mut run = cd.ctr_run();
    run.args(["-d", "--runtime", RUNTIME, &image, id, "/app.wat#wait"]);
    cd.run_ok(&mut run, *TIMEOUT).unwrap();
    let init_pid: u32 = task_line(&cd, id)
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("init pid");

    let exec = |exec_id: &str, args: &[&str]| {
        wasmbay_testkit::run_with_timeout(
            cd.ctr()
                .args(["tasks", "exec", "--exec-id", exec_id, id])
                .args(args),
            *TIMEOUT,
        )
        .unwrap()
    };
    let out = exec("e1", &["/app.wat"]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (Some(5), "from exec"),
        "{out:?}\n{}",
        cd.log_tail()
    );
    // The exec's module went through the host-side preparation (and its cache), as the
    // init's did, rather than being compiled inside the tenant.
    let log = std::fs::read_to_string(dir.path().join("shim.log")).unwrap_or_default();
    assert!(
        log.lines()
            .filter(|l| l.contains("artifact prepared") && l.contains("app.wat"))
            .count()
            >= 2,
        "no host-side preparation of the exec'd module in the shim log:\n{log}"
    );
    // A second exec of the same id once the first was deleted, and the init unharmed.
    let again = exec("e1", &["/app.wat"]);
    assert_eq!(again.status.code(), Some(5), "{again:?}");
    assert!(
        task_line(&cd, id).contains("RUNNING"),
        "{}",
        task_line(&cd, id)
    );
    assert!(
        std::fs::read_to_string(format!("/proc/{init_pid}/stat")).is_ok(),
        "init {init_pid} gone"
    );

    // A command that is not in the rootfs fails naming it, and leaves no exec behind.
    let missing = exec("e2", &["/missing.wasm"]);
    assert_ne!(missing.status.code(), Some(0), "{missing:?}");
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(said.contains("missing.wasm"), "{said}");
    let bundles: Vec<_> = walk_files(&cd.state())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".wasmbay-exec-"))
        .collect();
    assert!(bundles.is_empty(), "exec specs left behind: {bundles:?}");
    kill_and_remove(&cd, id);
}

/// Every file under `dir`, recursively (unreadable parts skipped).
fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(path),
                Ok(_) => found.push(path),
                Err(_) => {}
            }
        }
    }
    found
}

/// `command` run by util-linux `script` under a pty of its own, as a user's terminal: ctr's
/// `-t` takes its console from its stdin. None, with the reason, where `script` is missing.
fn under_a_terminal(command: &std::process::Command) -> Result<std::process::Command, String> {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("util-linux `script` is not installed (package bsdutils)")?;
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(quote)
        .collect();
    let mut wrapped = std::process::Command::new(script);
    // -e: answer the command's exit status; -q: no banner; the typescript goes nowhere.
    wrapped.args(["-qec", &line.join(" "), "/dev/null"]);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    Ok(wrapped)
}

#[test]
fn a_terminal_serves_a_wasm_init_and_a_wasm_exec() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cd = containerd(&dir.path().join("cache"));
    let image = import(&cd, dir.path(), "tty-target", EXEC_TARGET);

    // The init on a terminal, in the foreground: its output comes through the pty.
    let mut run = cd.ctr_run();
    run.args([
        "-t",
        "--rm",
        "--runtime",
        RUNTIME,
        &image,
        "tty-init",
        "/app.wat",
    ]);
    let mut run = match under_a_terminal(&run) {
        Ok(command) => command,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let out = wasmbay_testkit::run_with_timeout(&mut run, *TIMEOUT).unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{out:?}\n{}", cd.log_tail());
    // A terminal turns the guest's "\n" into "\r\n" (and script's own pty once more).
    assert!(said.contains("from exec\r"), "{said:?}");

    // An exec with a terminal into a running task, then one without, beside it.
    let id = "tty-task";
    let mut start = cd.ctr_run();
    start.args(["-d", "--runtime", RUNTIME, &image, id, "/app.wat#wait"]);
    cd.run_ok(&mut start, *TIMEOUT).unwrap();
    let shims = shims_of(&cd);
    let mut exec = cd.ctr();
    exec.args(["tasks", "exec", "-t", "--exec-id", "t1", id, "/app.wat"]);
    let out =
        wasmbay_testkit::run_with_timeout(&mut under_a_terminal(&exec).unwrap(), *TIMEOUT).unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}\n{}", cd.log_tail());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from exec\r"),
        "{out:?}"
    );
    let plain = wasmbay_testkit::run_with_timeout(
        cd.ctr()
            .args(["tasks", "exec", "--exec-id", "t2", id, "/app.wat"]),
        *TIMEOUT,
    )
    .unwrap();
    assert_eq!(
        (
            plain.status.code(),
            String::from_utf8_lossy(&plain.stdout).as_ref()
        ),
        (Some(5), "from exec\n"),
        "{plain:?}"
    );
    // No console socket of the task's shim is left once its terminals are made.
    let left: Vec<_> = std::fs::read_dir("/run/wasmbay-shim/consoles")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let pid = name.split('-').next().unwrap_or_default();
            shims.iter().any(|s| s.to_string() == pid)
        })
        .collect();
    assert!(left.is_empty(), "console sockets left: {left:?}");
    kill_and_remove(&cd, id);
}
