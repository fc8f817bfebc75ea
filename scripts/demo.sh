#!/usr/bin/env bash
# Sets up the machine, builds wasmbay and runs the bundled example module.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo build --release --bin wasmbay
./target/release/wasmbay run examples/hello.wat
