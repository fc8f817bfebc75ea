#!/usr/bin/env bash
# The shim's and runtime's integration tests, and the containerd-frontend matrix, inside a
# real-node guest (scripts/guest.sh): cgroup v2, systemd as init, the release's containerd.
#
#   scripts/guest-suite.sh GUEST [--full]
#
# The test binaries are built here, on the host, with the same features as scripts/test.sh,
# and run in the guest from the shared target directory. Without --full, the part CI runs
# (about 6 minutes under TCG on 2 cores, boot included): the shim's cgroup tests (placement by
# the systemd driver, OOM, metrics, pause/resume), both CRI tests (a pod with a sidecar; wasm
# and runc pods under kubelet's systemd driver: placement, OOMKilled, ContainerStats) and the
# runtime's --systemd-cgroup and native-beside-wasm tests. With --full,
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
for name in ctr cri runtime containerd; do
    [[ -n ${tests[$name]:-} ]] || { echo "guest-suite: test target $name was not built" >&2; exit 1; }
done
cargo build --workspace --features "$feature_list" --bins

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
        echo "step $repo/runtime-bridge ${tests[runtime]} --test-threads 1"
        echo "step $repo/runtime-bridge ${tests[containerd]} --test-threads 1"
        echo "step $repo $repo/target/debug/wasmbay conformance --matrix --frontends containerd --jobs 2 --timeout-scale 4 conformance/corpus ../shared/conformance/wasi-testsuite/tests/assemblyscript/testsuite/wasm32-wasip1 ../shared/conformance/wasi-testsuite/tests/c/testsuite/wasm32-wasip1 ../shared/conformance/wasi-testsuite/tests/rust/testsuite/wasm32-wasip1"
    else
        echo "step $repo/containerd-shim ${tests[ctr]} --test-threads 1 systemd pause_freezes task_metrics cgroup_oom update_changes"
        echo "step $repo/containerd-shim ${tests[cri]} --test-threads 1"
        echo "step $repo/runtime-bridge ${tests[runtime]} --test-threads 1 systemd busybox_and_wasm_side_by_side"
    fi
    echo 'exit $status'
} >"$plan"
start=$SECONDS
status=0
./scripts/guest.sh run "$guest" -- bash -c "$(cat "$plan")" || status=$?
echo "guest-suite: $guest took $((SECONDS - start)) s (boot included); status $status"
exit "$status"
