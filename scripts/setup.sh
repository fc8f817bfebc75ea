#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test wasmbay. Idempotent: every
# step checks first and does nothing when its part is already there.
set -euo pipefail

log() { printf 'setup: %s\n' "$*"; }

# Debian packages the build and the tests use.
APT_PACKAGES=(
    build-essential   # cc for crates with C parts
    pkg-config
    libseccomp-dev    # libcontainer's seccomp support (runtime-bridge)
    busybox-static    # native containers in the runtime-bridge tests
    containerd        # tests drive a private containerd (never the system one)
    runc              # the baseline runtime in tests and benchmarks
    protobuf-compiler # protoc: containerd's and the CRI's gRPC APIs (shim content reads, tests)
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    log "Debian packages present"
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi

# Test programs are written in Rust and built to wasm.
TARGETS=(wasm32-wasip1 wasm32-wasip2)
installed=$(rustup target list --installed)
for target in "${TARGETS[@]}"; do
    if ! grep -qx "$target" <<<"$installed"; then
        log "adding Rust target $target"
        rustup target add "$target"
    fi
done
log "Rust targets present: ${TARGETS[*]}"
