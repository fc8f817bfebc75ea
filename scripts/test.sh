#!/usr/bin/env bash
# The whole test run: set up, build the conformance corpus, check formatting and lints, run
# every test (unit, integration, the conformance matrix of every engine built through each
# frontend), a short run of every fuzz target, the cgroup v2 / systemd part inside a Debian 13
# guest (scripts/guest-suite.sh),
# then the matrix again on aarch64 (scripts/aarch64.sh: cross-built, emulated here), and its
# oci-runtime and containerd frontends in an arm64 Debian 13 guest.
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
# A failing step ends the run; the build in the background goes with it (a cut debootstrap
# is redone next time, its tree is marked complete only at its end).
trap 'kill "$guest_build" 2>/dev/null || true' EXIT

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
cargo clippy --workspace --all-targets "${feature_args[@]}" -- -D warnings
cargo test --workspace "${feature_args[@]}"

# The fuzz targets (fuzz/README.md): every committed corpus file replayed, then 20 s each.
# Nightly and cargo-fuzz are installed by the script when missing.
start=$SECONDS
./scripts/fuzz.sh --smoke
echo "test: the fuzz smoke run took $((SECONDS - start)) s"

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
echo "test: the debian13 guest suite took $((SECONDS - start)) s"

# wasmer always, as above; the script builds without default features, so wasmtime is named
# too (wasmedge cannot be cross-built). The whole workspace is cross-built, as the arm64
# guest below runs the shim too.
start=$SECONDS
./scripts/aarch64.sh --features wasmtime,wasmer --workspace
echo "test: the aarch64 run took $((SECONDS - start)) s"

# What qemu-user cannot run: the corpus through the oci-runtime and containerd frontends on
# an emulated arm64 Debian 13 (the same cross-built binaries; --full adds wasi-testsuite).
start=$SECONDS
WASMBAY_AARCH64_FEATURES=wasmtime,wasmer ./scripts/guest-suite.sh debian13-arm64
echo "test: the debian13-arm64 guest suite took $((SECONDS - start)) s"
