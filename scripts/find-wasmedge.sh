#!/usr/bin/env bash
# Prints the directory holding libwasmedge (the WasmEdge C library 0.17.x, which no Debian
# package provides) and exits 0, or says where it looked on stderr and exits 1.
#
# The search is wasmedge-sys's own (see engines/registry/build.rs): $WASMEDGE_INCLUDE_DIR +
# $WASMEDGE_LIB_DIR, $WASMEDGE_DIR, $WASMEDGE_BUILD_DIR, ~/.wasmedge, /usr/local, ~/.local.
set -euo pipefail

candidates=()
if [[ -n "${WASMEDGE_INCLUDE_DIR:-}" && -n "${WASMEDGE_LIB_DIR:-}" ]]; then
    candidates+=("$WASMEDGE_INCLUDE_DIR|$WASMEDGE_LIB_DIR")
fi
if [[ -n "${WASMEDGE_DIR:-}" ]]; then
    candidates+=("$WASMEDGE_DIR/include|$WASMEDGE_DIR/lib64" "$WASMEDGE_DIR/include|$WASMEDGE_DIR/lib")
fi
if [[ -n "${WASMEDGE_BUILD_DIR:-}" ]]; then
    candidates+=("$WASMEDGE_BUILD_DIR/include/api|$WASMEDGE_BUILD_DIR/lib64/api"
        "$WASMEDGE_BUILD_DIR/include/api|$WASMEDGE_BUILD_DIR/lib/api")
fi
if [[ -n "${HOME:-}" ]]; then
    candidates+=("$HOME/.wasmedge/include|$HOME/.wasmedge/lib64" "$HOME/.wasmedge/include|$HOME/.wasmedge/lib")
fi
candidates+=("/usr/local/include|/usr/local/lib64" "/usr/local/include|/usr/local/lib")
if [[ -n "${HOME:-}" ]]; then
    candidates+=("$HOME/.local/include|$HOME/.local/lib64" "$HOME/.local/include|$HOME/.local/lib")
fi

looked=()
for pair in "${candidates[@]}"; do
    inc="${pair%%|*}" lib="${pair##*|}"
    looked+=("$lib")
    if [[ -f "$inc/wasmedge/wasmedge.h" ]] && [[ -e "$lib/libwasmedge.so" || -e "$lib/libwasmedge.a" ]]; then
        echo "$lib"
        exit 0
    fi
done
echo "libwasmedge not found (looked in ${looked[*]})" >&2
exit 1
