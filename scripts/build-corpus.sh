#!/usr/bin/env bash
# Builds the Rust guest programs of the conformance corpus and copies each
# binary to conformance/corpus/<name>.wasm (the case <name>.json beside it).
#
#   conformance/programs/p1  -> wasm32-wasip1 core modules
#   conformance/programs/p2  -> wasm32-wasip2 components
#   conformance/programs/http -> http_handler.wasm, a wasi:http handler (served, not run)
#
# WAT cases (conformance/corpus/*.wat) are checked in and need no build.
# Idempotent: rerunning rebuilds only what changed and recopies the outputs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
programs="$root/conformance/programs"
corpus="$root/conformance/corpus"
target_dir="$programs/target"

for target in wasm32-wasip1 wasm32-wasip2; do
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        echo "build-corpus: installing Rust target $target" >&2
        rustup target add "$target" >&2
    fi
done

build() { # crate target
    cargo build --quiet --release --manifest-path "$programs/Cargo.toml" \
        --target-dir "$target_dir" --target "$2" -p "$1"
}

copy_bins() { # crate-dir target -> prints the number of files copied
    local crate_dir="$1" target="$2" n=0 src name
    for src in "$programs/$crate_dir"/src/bin/*.rs; do
        name="$(basename "$src" .rs)"
        # Replace by rename, and only when changed: tests may be reading the corpus meanwhile.
        if ! cmp -s "$target_dir/$target/release/$name.wasm" "$corpus/$name.wasm"; then
            cp -f "$target_dir/$target/release/$name.wasm" "$corpus/.$name.wasm.tmp"
            mv -f "$corpus/.$name.wasm.tmp" "$corpus/$name.wasm"
        fi
        n=$((n + 1))
    done
    echo "$n"
}

build conformance-p1 wasm32-wasip1
build conformance-p2 wasm32-wasip2
build http-handler wasm32-wasip2
# corpus/*.wasm are all build products (gitignored): drop any whose source is gone.
for wasm in "$corpus"/*.wasm; do
    [ -e "$wasm" ] || continue
    name="$(basename "$wasm" .wasm)"
    [ "$name" = http_handler ] && continue
    if [ ! -e "$programs/p1/src/bin/$name.rs" ] && [ ! -e "$programs/p2/src/bin/$name.rs" ]; then
        rm -f "$wasm"
    fi
done
n1="$(copy_bins p1 wasm32-wasip1)"
n2="$(copy_bins p2 wasm32-wasip2)"
if ! cmp -s "$target_dir/wasm32-wasip2/release/http_handler.wasm" "$corpus/http_handler.wasm"; then
    cp -f "$target_dir/wasm32-wasip2/release/http_handler.wasm" "$corpus/.http_handler.wasm.tmp"
    mv -f "$corpus/.http_handler.wasm.tmp" "$corpus/http_handler.wasm"
fi

cases="$(find "$corpus" -maxdepth 1 -name '*.json' | wc -l)"
wats="$(find "$corpus" -maxdepth 1 -name '*.wat' | wc -l)"
echo "build-corpus: built $n1 wasip1 modules and $n2 wasip2 components into conformance/corpus/ ($cases cases: $((n1 + n2)) .wasm + $wats .wat)"
