#!/usr/bin/env bash
# The shim's and runtime's integration tests, and the containerd-frontend matrix, inside a
# real-node guest (scripts/guest.sh): cgroup v2, systemd as init, the release's containerd.
#
#   scripts/guest-suite.sh GUEST [--full]
#
# On the arm64 guest: the corpus (with --full, wasi-testsuite's preview 1 tests too) through
# the oci-runtime and containerd frontends on every cross-built engine, the part of the
# aarch64 matrix that qemu-user cannot run.
#
# The test binaries are built here, on the host, with the same features as scripts/test.sh,
# and run in the guest from the shared target directory. Without --full, the part CI runs
# (about 6 minutes under TCG on 2 cores, boot included): the shim's cgroup tests (placement by
# the systemd driver, OOM, metrics, pause/resume, update, CPU and pids limits), the CRI tests
# of wasm and runc pods under kubelet's systemd driver (placement, OOMKilled, ContainerStats)
# and of a `hostUsers: false` pod (containerd 1.7's user namespaces), and the runtime's
# --systemd-cgroup and native-beside-wasm tests; and, in both, `wasmbay node install` onto the
# guest's own containerd under systemd, a pod on the handler, then uninstall; and images
# pushed to a loopback registry and pulled back by the CRI; and the Debian packages
# (scripts/deb.sh, lintian-checked on the host) installed, used and removed. With --full,
# every integration test of the two crates and the containerd-frontend matrix of every
# engine built. Under TCG every instruction is emulated, so the whole of it takes long; the
# closing note of each change says what each part cost.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

guest=${1:-}
[[ -n $guest ]] || { echo "usage: guest-suite.sh GUEST [--full]" >&2; exit 2; }
full=false
[[ ${2:-} == --full ]] && full=true

./scripts/setup.sh --guests

# The arm64 guest runs the cross-built binaries (as scripts/aarch64.sh builds them, with the
# shim too) through the two frontends qemu-user cannot run.
if [[ $guest == *-arm64 ]]; then
    ./scripts/setup.sh --aarch64
    ./scripts/build-corpus.sh
    engines=${WASMBAY_AARCH64_FEATURES:-wasmtime,wasmer}
    cargo build --profile cross --target aarch64-unknown-linux-gnu --workspace \
        --no-default-features --features "$engines"
    bin="${CARGO_TARGET_DIR:-$repo/target}/aarch64-unknown-linux-gnu/cross"
    suites=(conformance/corpus)
    if $full; then
        for lang in assemblyscript c rust; do
            suites+=("../shared/conformance/wasi-testsuite/tests/$lang/testsuite/wasm32-wasip1")
        done
    fi
    start=$SECONDS
    status=0
    ./scripts/guest.sh run "$guest" --timeout "${WASMBAY_GUEST_TIMEOUT:-7200}" -- \
        "$bin/wasmbay" conformance --matrix --frontends oci-runtime,containerd --jobs 2 \
        --timeout-scale 10 --markdown "$bin/guest-matrix.md" "${suites[@]}" || status=$?
    echo "guest-suite: $guest took $((SECONDS - start)) s (boot included); status $status"
    exit "$status"
fi

features=(wasmer)
if lib=$(./scripts/find-wasmedge.sh 2>/dev/null); then
    features+=(wasmedge)
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
feature_list=$(IFS=,; echo "${features[*]}")

# The test executables cargo built, by test target name.
declare -A tests
while IFS=' ' read -r name path; do
    tests[$name]=$path
done < <(cargo test --workspace --features "$feature_list" --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
')
for name in ctr cri faults runtime containerd node image_push packages; do
    [[ -n ${tests[$name]:-} ]] || { echo "guest-suite: test target $name was not built" >&2; exit 1; }
done
cargo build --workspace --features "$feature_list" --bins
# The Debian packages of these binaries (lintian-checked here), installed in the guest.
start=$SECONDS
./scripts/deb.sh --out target/deb >/dev/null
echo "guest-suite: the packages and their lintian check took $((SECONDS - start)) s"

# What runs in the guest: each line is a directory, then a command.
plan="$(mktemp /tmp/wasmbay-guest-plan-XXXXXX)"
trap 'rm -f "$plan"' EXIT
{
    echo 'set -u; status=0'
    echo 'step() { local dir=$1 start=$SECONDS; shift; echo "== $*"; (cd "$dir" && "$@") || status=1; echo "== $(( SECONDS - start )) s"; }'
    echo "echo \"guest: \$(. /etc/os-release; echo \$PRETTY_NAME), kernel \$(uname -r), \$(containerd --version | cut -d' ' -f3), \$(stat -fc %T /sys/fs/cgroup)\""
    if $full; then
        echo "step $repo/containerd-shim ${tests[ctr]} --test-threads 1"
        echo "step $repo/containerd-shim ${tests[cri]} --test-threads 1"
        echo "step $repo/containerd-shim ${tests[faults]} --test-threads 1"
        echo "step $repo/runtime-bridge ${tests[runtime]} --test-threads 1"
        echo "step $repo/runtime-bridge ${tests[containerd]} --test-threads 1"
        echo "step $repo $repo/target/debug/wasmbay conformance --matrix --frontends containerd --jobs 2 --timeout-scale 4 conformance/corpus ../shared/conformance/wasi-testsuite/tests/assemblyscript/testsuite/wasm32-wasip1 ../shared/conformance/wasi-testsuite/tests/c/testsuite/wasm32-wasip1 ../shared/conformance/wasi-testsuite/tests/rust/testsuite/wasm32-wasip1 ../shared/conformance/wasi-testsuite/tests/rust/testsuite/wasm32-wasip3"
    else
        # WASI 0.3 (cli, filesystem, sockets in the container's network namespace) through
        # containerd 1.7 on cgroup v2. Each case's first run compiles a ~0.5 MB component under
        # TCG, which took up to 20 s (scale 4) in a first run: hence the wider scale.
        echo "step $repo $repo/target/debug/wasmbay conformance --engine wasmtime --frontend containerd --jobs 2 --timeout-scale 12 ../shared/conformance/wasi-testsuite/tests/rust/testsuite/wasm32-wasip3"
        echo "step $repo/containerd-shim ${tests[ctr]} --test-threads 1 systemd pause_freezes task_metrics cgroup_oom update_changes cpu_quota exec_runs a_terminal"
        echo "step $repo/containerd-shim ${tests[cri]} --test-threads 1 under_kubelets a_pod_with_a_wasm without_host_users"
        echo "step $repo/containerd-shim ${tests[faults]} --test-threads 1"
        echo "step $repo/runtime-bridge ${tests[runtime]} --test-threads 1 systemd busybox_and_wasm_side_by_side the_wasm_init read_only"
    fi
    # A registry on the guest's loopback: containerd 1.7's CRI pulls artifact images too.
    echo "step $repo ${tests[image_push]} --test-threads 1"
    # dpkg -i of the packages, a wasm container through the packaged shim, dpkg -r.
    echo "step $repo env WASMBAY_DEB_TEST=system WASMBAY_DEB_DIR=$repo/target/deb ${tests[packages]} --test-threads 1"
    # Last: it starts the system's containerd (masked in the guests) and installs onto it.
    echo "step $repo/containerd-shim env WASMBAY_NODE_TEST=system ${tests[node]} --test-threads 1"
    echo 'exit $status'
} >"$plan"
start=$SECONDS
status=0
# Every instruction is emulated, and a busy host slows the guest further: the tests' bounded
# waits are stretched (wasmbay_testkit::scaled), not removed.
export WASMBAY_TEST_TIMEOUT_SCALE=${WASMBAY_TEST_TIMEOUT_SCALE:-5}
./scripts/guest.sh run "$guest" -- bash -c "$(cat "$plan")" || status=$?
echo "guest-suite: $guest took $((SECONDS - start)) s (boot included); status $status"
exit "$status"
