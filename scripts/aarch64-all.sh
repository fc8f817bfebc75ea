#!/usr/bin/env bash
# All of the aarch64 checks, of which CI (scripts/test.sh) runs a subset (the corpus on
# wasmtime): every engine that can be cross-built (wasmtime and wasmer) over the corpus and
# wasi-testsuite's preview 1 tests, through the direct frontend under qemu-user
# (scripts/aarch64.sh) and through the oci-runtime and containerd frontends in the emulated
# arm64 Debian 13 guest (scripts/guest-suite.sh debian13-arm64). On the 2-core machine, cold:
# the cross-build about 17.5 minutes, then the two runs; each prints what it took.
#
#   scripts/aarch64-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

engines=wasmtime,wasmer
start=$SECONDS
./scripts/aarch64.sh --features "$engines" --workspace --full
echo "aarch64-all: qemu-user part took $((SECONDS - start)) s"
start=$SECONDS
WASMBAY_AARCH64_FEATURES=$engines ./scripts/guest-suite.sh debian13-arm64 --full
echo "aarch64-all: arm64 guest part took $((SECONDS - start)) s"
