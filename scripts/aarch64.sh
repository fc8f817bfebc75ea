#!/usr/bin/env bash
# The conformance matrix on 64-bit Arm: cross-builds `wasmbay` and `wasmbay-runtime` for
# aarch64-unknown-linux-gnu and runs the whole corpus (the project's own cases and
# wasi-testsuite's) through the direct and oci-runtime frontends on every engine built, under
# qemu user-mode emulation when this machine is not aarch64 itself.
#
#   scripts/aarch64.sh [--features LIST] [--workspace] [--build-only] [--full]
#
# Without --full, the project's corpus only: that is what CI (scripts/test.sh) runs, as the
# cold CI run on 2 cores had no room left for more. --full adds wasi-testsuite's preview 1
# tests (about 40 more cases per engine).
#
# LIST (or $WASMBAY_AARCH64_FEATURES) names the engines to build, comma-separated. Default:
# every engine feature of the root Cargo.toml that can be cross-built; wasmedge cannot (it
# links libwasmedge, which nothing provides for arm64 here) and is left out with a message.
#
# --workspace also cross-builds every crate and binary of the workspace (the containerd shim
# too), which the matrix does not need: on 2 cores that is ~10 more CPU-minutes, as the extra
# crates change the features of shared dependencies. CI (scripts/test.sh) builds it anyway, as
# the arm64 guest runs the shim too.
#
# --build-only stops after the cross-build: scripts/test.sh builds in the background, at the
# lowest priority, while the host's tests run, and runs the matrix afterwards.
#
# Environment: WASMBAY_SHARED_DIR (where conformance/wasi-testsuite is; default ../shared
# beside the repository, as for the tests), CARGO_TARGET_DIR (as for cargo),
# WASMBAY_AARCH64_TIMEOUT_SCALE (case timeouts' factor under emulation; default 6).
#
# The containerd frontend stays on the host architecture (scripts/test.sh). Emulation needs
# binfmt_misc (scripts/setup.sh --aarch64 registers qemu); where it cannot be had, the run is
# skipped with the reason and the script exits 0, as scripts/test.sh does for wasmedge.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

log() { printf 'aarch64: %s\n' "$*"; }
skip() { printf 'skipped: aarch64 matrix: %s\n' "$*"; exit 0; }

target=aarch64-unknown-linux-gnu
features="${WASMBAY_AARCH64_FEATURES:-}"
workspace=false
build_only=false
full=false
while (($#)); do
    case "$1" in
    --workspace)
        workspace=true
        shift
        ;;
    --build-only)
        build_only=true
        shift
        ;;
    --full)
        full=true
        shift
        ;;
    --features)
        [[ $# -ge 2 ]] || { echo "aarch64: --features needs a value" >&2; exit 2; }
        features="$2"
        shift 2
        ;;
    --features=*)
        features="${1#--features=}"
        shift
        ;;
    *)
        echo "aarch64: unknown argument $1 (usage: aarch64.sh [--features LIST] [--workspace] [--build-only] [--full])" >&2
        exit 2
        ;;
    esac
done

# Engines: the root package's features that select an engine (`name = ["wasmbay-engines/name"]`).
mapfile -t all_engines < <(sed -n 's/^\([a-z0-9_-]*\) = \["wasmbay-engines\/\1"\]$/\1/p' Cargo.toml)
if [[ -z $features ]]; then
    picked=()
    for engine in "${all_engines[@]}"; do
        if [[ $engine == wasmedge ]]; then
            echo "skipped: wasmedge engine on aarch64: it links libwasmedge, which is not available for arm64 here"
            continue
        fi
        picked+=("$engine")
    done
    features=$(IFS=,; echo "${picked[*]}")
fi
if [[ ,$features, == *,wasmedge,* ]]; then
    echo "aarch64: the wasmedge engine cannot be cross-built here (libwasmedge for arm64 is missing)" >&2
    exit 2
fi
log "engines: $features"

shared="${WASMBAY_SHARED_DIR:-$repo/../shared}/conformance/wasi-testsuite/tests"
if [[ ! -d $shared ]]; then
    echo "aarch64: wasi-testsuite not found at $shared (set WASMBAY_SHARED_DIR to the shared directory)" >&2
    exit 1
fi

./scripts/setup.sh --aarch64

# Only the two binaries the frontends run; the linker comes from .cargo/config.toml. The
# `cross` profile (Cargo.toml) is dev with line tables only: a release build (LTO) costs more
# build time than it saves in emulated run time (docs/ARCHITECTURE.md, "aarch64").
start=$SECONDS
# With --workspace, one build of everything: building the two first and then the workspace
# would compile most dependencies twice, with different feature sets.
if $workspace; then
    cargo build --profile cross --target "$target" --workspace --no-default-features --features "$features"
else
    cargo build --profile cross --target "$target" -p wasmbay -p wasmbay-runtime-bridge --bins \
        --no-default-features --features "$features"
    echo "skipped: cross-building the rest of the workspace (containerd shim): not needed by the matrix (--workspace builds it)"
fi
log "cross-build took $((SECONDS - start)) s"
$build_only && exit 0
./scripts/build-corpus.sh
bin="${CARGO_TARGET_DIR:-$repo/target}/$target/cross"

# Can this machine run aarch64 binaries, and their children?
if [[ $(uname -m) != aarch64 ]]; then
    entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
    if [[ ! -e $entry ]] || ! head -n1 "$entry" | grep -qx enabled; then
        skip "aarch64 binaries cannot run here: qemu-aarch64 is not registered with binfmt_misc (scripts/setup.sh --aarch64 said why)"
    fi
    log "running under $(qemu-aarch64-static --version | head -n1)"
fi
work=$(mktemp -d /tmp/wasmbay-aarch64-XXXXXX)
trap 'rm -rf "$work"' EXIT

# Under qemu, libcontainer cannot create a container: it clones the container's init with
# CLONE_PARENT (clone3 first, which qemu-user does not implement: ENOSYS, then clone), and
# qemu-user runs every clone without CLONE_VM through the host's fork(), refusing any flag
# fork() cannot honour with EINVAL. One container tells whether that is the case here, and
# qemu's own syscall trace is the evidence. Any other failure leaves the frontend in the run,
# so that the matrix shows it.
probe_oci_runtime() { # prints the reason the frontend cannot run under this emulator, if any
    local bundle="$work/probe" trace
    mkdir -p "$bundle/rootfs/proc"
    cp examples/hello.wat "$bundle/rootfs/"
    cat >"$bundle/config.json" <<'JSON'
{"ociVersion": "1.0.2",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/hello.wat"], "env": [], "cwd": "/"},
 "root": {"path": "rootfs", "readonly": true},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
 "annotations": {"wasmbay.wasi.root": ""},
 "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]}}
JSON
    if QEMU_STRACE=1 WASMBAY_CACHE_DIR="$work/probe-cache" "$bin/wasmbay-runtime" --root "$work/probe-state" \
        run --bundle "$bundle" "wasmbay-aarch64-probe-$$" >"$work/probe.out" 2>"$work/probe.err"; then
        return 0
    fi
    "$bin/wasmbay-runtime" --root "$work/probe-state" delete --force "wasmbay-aarch64-probe-$$" >/dev/null 2>&1 || true
    # e.g. "22141 clone(CLONE_PARENT,child_stack=0x...,tls=0x0,...) = -1 errno=22 (Invalid argument)"
    trace=$(sed -n -E 's/^[0-9]+ (clone\(CLONE_PARENT)[,|].*\) = (-1 errno=22 .*)$/\1, ...) = \2/p' "$work/probe.err" | head -n1)
    if [[ -n $trace ]]; then
        echo "qemu-user cannot emulate clone(CLONE_PARENT), with which libcontainer starts the container's init (qemu's trace of the runtime: $trace)"
    fi
}

frontends=direct
not_run=""
# The oci-runtime frontend needs root (namespaces, cgroups), as on the host.
if [[ $(id -u) -ne 0 ]]; then
    not_run="needs root (namespaces, cgroups)"
elif [[ $(uname -m) != aarch64 ]] && why=$(probe_oci_runtime) && [[ -n $why ]]; then
    not_run="$why"
else
    frontends+=",oci-runtime"
fi
[[ -z $not_run ]] || echo "skipped: oci-runtime frontend on aarch64: $not_run"

# Emulated guests run several times slower than native ones, and slower still when CI keeps
# both cores busy: at the cases' own timeouts a correct wasmer run of corpus/stdout_10mib was
# cut short at 95 % of its output. Natively the cases keep the timeouts they were written with.
scale=1
[[ $(uname -m) == aarch64 ]] || scale=${WASMBAY_AARCH64_TIMEOUT_SCALE:-6}
log "case timeouts scaled by $scale"

suites=(conformance/corpus)
if $full; then
    for lang in assemblyscript c rust; do suites+=("$shared/$lang/testsuite/wasm32-wasip1"); done
    suites+=("$shared/rust/testsuite/wasm32-wasip3")
else
    echo "skipped: wasi-testsuite on aarch64: run only with --full (scripts/aarch64.sh), to keep CI within its time"
fi
cache="$work/cache"
start=$SECONDS
status=0
WASMBAY_CACHE_DIR="$cache" "$bin/wasmbay" conformance --matrix --frontends "$frontends" \
    --timeout-scale "$scale" \
    --markdown "${CARGO_TARGET_DIR:-$repo/target}/$target/matrix.md" \
    "${suites[@]}" || status=$?
log "matrix took $((SECONDS - start)) s"
# Said again under the table, which has no column for it.
[[ -z $not_run ]] || echo "skipped: oci-runtime frontend on aarch64: $not_run"
exit "$status"
