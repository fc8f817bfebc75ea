#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (see fuzz/README.md).
#
# Why a script: the targets need nightly and cargo-fuzz, which the stable toolchain the rest of
# the project builds with does not have; CI calls `--smoke` so that every committed corpus file
# (the regressions among them) is replayed and each target gets a short fresh run on every
# change, and `--long` is how the hour-long runs recorded in fuzz/README.md were made.
#
#   scripts/fuzz.sh --smoke          replay every corpus file, then 20 s per target; fails on
#                                    any crash. New inputs go to a scratch directory, so the
#                                    committed corpora do not change.
#   scripts/fuzz.sh --long SECONDS   SECONDS per target, growing fuzz/corpus/<target>; prints
#                                    executions. Minimise afterwards with
#                                    `cargo +nightly fuzz cmin <target>`.
#   FUZZ_TARGETS="a b" scripts/fuzz.sh ...   only those targets.
#
# Targets run one at a time with one worker: CI machines have two cores.
set -euo pipefail

cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 --smoke | --long SECONDS" >&2
    exit 2
}

mode="${1:-}"
case "$mode" in
--smoke)
    seconds=20
    ;;
--long)
    seconds="${2:-}"
    [[ "$seconds" =~ ^[0-9]+$ ]] || usage
    ;;
*)
    usage
    ;;
esac

# Idempotent: a minimal nightly and cargo-fuzz are installed only when missing.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

started=$(date +%s)
cargo +nightly fuzz build
echo "fuzz: build took $(($(date +%s) - started)) s"

read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo +nightly fuzz list | tr '\n' ' ')}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

failed=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    log="$logs/$target.log"
    t0=$(date +%s)
    status=0
    if [[ "$mode" == --smoke ]]; then
        # Replay first, on its own, so that a crash names the committed input that causes it.
        cargo +nightly fuzz run "$target" "$corpus" -- -runs=0 >"$log" 2>&1 || status=$?
        if [[ $status -eq 0 ]]; then
            # The scratch directory comes first: libFuzzer writes new inputs to the first one.
            scratch="$logs/$target.corpus"
            mkdir -p "$scratch"
            cargo +nightly fuzz run "$target" "$scratch" "$corpus" -- \
                -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
                >>"$log" 2>&1 || status=$?
        fi
    else
        cargo +nightly fuzz run "$target" "$corpus" -- \
            -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
            >"$log" 2>&1 || status=$?
    fi
    took=$(($(date +%s) - t0))
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    files=$(find "$corpus" -type f | wc -l)
    if [[ $status -ne 0 ]]; then
        echo "fuzz: $target FAILED after $took s (exit $status); last lines:"
        tail -n 40 "$log"
        failed+=("$target")
    else
        echo "fuzz: $target ok: $took s, ${execs:-0} executions, $files corpus files"
    fi
done

echo "fuzz: total $(($(date +%s) - started)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
