#!/usr/bin/env bash
# The whole test run: set up, build the conformance corpus, check formatting and lints, run
# every test (unit, integration, the conformance matrix of every engine built through each
# frontend), then the matrix again on aarch64 (scripts/aarch64.sh: cross-built, emulated here).
#
# Engines: wasmtime and wasmer always (wasmer needs no system library); wasmedge where
# libwasmedge is installed (scripts/find-wasmedge.sh), else its tests are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
./scripts/build-corpus.sh

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
cargo clippy --workspace --all-targets "${feature_args[@]}" -- -D warnings
cargo test --workspace "${feature_args[@]}"

# wasmer always, as above; the script builds without default features, so wasmtime is named
# too (wasmedge cannot be cross-built).
start=$SECONDS
./scripts/aarch64.sh --features wasmtime,wasmer
echo "test: the aarch64 run took $((SECONDS - start)) s"
