#!/usr/bin/env bash
# The whole test run: set up, build the conformance corpus, check formatting and lints, run
# every test (unit, integration, the conformance matrix of every engine built through each
# frontend), a short run of every fuzz target, the cgroup v2 / systemd part inside a Debian 13
# guest (scripts/guest-suite.sh),
# then a short aarch64 subset: the corpus on wasmtime through the direct frontend under
# qemu-user (scripts/aarch64.sh) and through the oci-runtime and containerd frontends in an
# arm64 Debian 13 guest. All of aarch64 (wasmer too, and wasi-testsuite) is
# scripts/aarch64-all.sh: with it, a cold run passed CI's 90 minutes on 2 cores. Each part
# prints what it took, and the last line sums them up.
#
# Engines: wasmtime and wasmer always (wasmer needs no system library); wasmedge where
# libwasmedge is installed (scripts/find-wasmedge.sh), else its tests are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

# --aarch64 too: the arm64 guest, built in the background below, runs depmod through qemu-user.
./scripts/setup.sh --guests --aarch64
./scripts/build-corpus.sh

# The Debian 13 guest (scripts/guest.sh) is fetched and built while the host builds: cold, it
# is mostly waiting on the archive. Its log is shown if it fails.
guest_log=$(mktemp /tmp/wasmbay-guest-build-XXXXXX)
{ ./scripts/guest.sh build debian13 && ./scripts/guest.sh build debian13-arm64; } >"$guest_log" 2>&1 &
guest_build=$!
# A failing step ends the run; the builds in the background go with it (a cut debootstrap
# is redone next time, its tree is marked complete only at its end).
kill_tree() { # a process and everything it started
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
    kill "$1" 2>/dev/null || true
}
background=("$guest_build")
trap 'for pid in "${background[@]}"; do kill_tree "$pid"; done' EXIT

# What each part took, printed as it ends and summed up at the end.
times=("setup and the corpus $SECONDS s")
took() { # NAME START: records and prints how long NAME took since START
    times+=("$1 $((SECONDS - $2)) s")
    echo "test: $1 took $((SECONDS - $2)) s"
}

features=(wasmer)
if lib=$(./scripts/find-wasmedge.sh 2>/tmp/wasmbay-find-wasmedge.$$); then
    echo "test: wasmedge engine included (libwasmedge in $lib)"
    features+=(wasmedge)
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
    echo "skipped: $(cat /tmp/wasmbay-find-wasmedge.$$); the wasmedge engine and its tests are not built"
fi
rm -f /tmp/wasmbay-find-wasmedge.$$
feature_args=(--features "$(IFS=,; echo "${features[*]}")")

cargo fmt --all -- --check
# The fuzz crate is a workspace of its own (nightly), outside the one above.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
start=$SECONDS
cargo clippy --workspace --all-targets "${feature_args[@]}" -- -D warnings
took clippy "$start"
start=$SECONDS
cargo test --workspace "${feature_args[@]}" --no-run
took "the test build" "$start"

# From here on the host's two cores are not kept busy: the tests wait on containerd and on
# their containers, the fuzz run has one worker, and the Debian 13 guest under TCG leaves
# about a third of them idle. The aarch64 cross-build takes that idle time: it runs beside them at the lowest CPU and I/O priority, so that the
# tests' bounded waits see almost none of it. It writes only under target/cross and
# target/aarch64-unknown-linux-gnu, which neither the tests nor the guest read.
cross_log=$(mktemp /tmp/wasmbay-cross-build-XXXXXX)
cross_start=$SECONDS
nice -n 19 ionice -c 3 ./scripts/aarch64.sh --features wasmtime --workspace --build-only \
    >"$cross_log" 2>&1 &
cross_build=$!
background+=("$cross_build")

start=$SECONDS
cargo test --workspace "${feature_args[@]}"
took "the tests" "$start"

# The fuzz targets (fuzz/README.md): every committed corpus file replayed, then 20 s each.
# Nightly and cargo-fuzz are installed by the script when missing.
start=$SECONDS
./scripts/fuzz.sh --smoke
took "the fuzz smoke run" "$start"

# A real node: cgroup v2, systemd as init, Debian 13's containerd 1.7 (the CI part of
# scripts/guest-suite.sh; --full and the Debian 12 guest are run by hand, see README.md).
if ! wait "$guest_build"; then
    cat "$guest_log" >&2
    echo "test: building the debian13 guest failed" >&2
    exit 1
fi
rm -f "$guest_log"
start=$SECONDS
./scripts/guest-suite.sh debian13
took "the debian13 guest suite" "$start"

# The cross-build started above: wasmtime only, the CI subset (wasmer is a third of the
# cross-build). The whole workspace, as the arm64 guest below runs the shim too.
start=$SECONDS
if ! wait "$cross_build"; then
    cat "$cross_log" >&2
    echo "test: the aarch64 cross-build failed" >&2
    exit 1
fi
cat "$cross_log"
rm -f "$cross_log"
took "waiting for the aarch64 cross-build (started $((start - cross_start)) s before)" "$start"
start=$SECONDS
./scripts/aarch64.sh --features wasmtime --workspace
took "the aarch64 matrix" "$start"

# What qemu-user cannot run: the corpus through the oci-runtime and containerd frontends on
# an emulated arm64 Debian 13 (the same cross-built binaries; --full adds wasi-testsuite).
start=$SECONDS
WASMBAY_AARCH64_FEATURES=wasmtime ./scripts/guest-suite.sh debian13-arm64
took "the debian13-arm64 guest suite" "$start"
echo "test: all passed in $SECONDS s: $(IFS=';'; echo "${times[*]}" | sed 's/;/; /g')"
