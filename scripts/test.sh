#!/usr/bin/env bash
# The whole test run: set up, build the conformance corpus, check formatting and lints, run
# every test (unit, integration, the conformance corpus through each frontend).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
./scripts/build-corpus.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
