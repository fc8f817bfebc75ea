#!/usr/bin/env bash
# Whether the static binaries (scripts/installer-image.sh) run on an older userland than the
# one they were built on: each one's --version in a chroot of a Debian 11 (bullseye, glibc
# 2.31) minbase tree, the arm64 ones through qemu-user's binfmt_misc registration; and this
# machine's dynamically linked build there too, which needs a newer glibc and must fail.
# The tree is debootstrapped once, into the guests' cache.
#
#   scripts/static-check.sh [--dynamic PATH]
set -euo pipefail
cd "$(dirname "$0")/.."

dynamic=target/debug/wasmbay
[[ ${1:-} != --dynamic ]] || dynamic=$2
cache=${WASMBAY_GUEST_CACHE:-/var/cache/wasmbay/guests}/base/bullseye-minbase
mirror=${WASMBAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf 'static-check: %s\n' "$*"; }

./scripts/setup.sh --guests --aarch64
if [[ ! -e $cache/.complete ]]; then
    log "debootstrap bullseye (minbase) into $cache"
    rm -rf "$cache"
    mkdir -p "$cache"
    debootstrap --variant=minbase bullseye "$cache/rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    touch "$cache/.complete"
fi
root=$cache/rootfs
log "$(chroot "$root" sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(chroot "$root" ldd --version | head -1)"
work=$(mktemp -d "$root/tmp/static-check-XXXXXX")
trap 'rm -rf "$work"' EXIT
inside=${work#"$root"}

failed=0
for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; do
    for binary in wasmbay wasmbay-runtime containerd-shim-wasmbay-wasmtime-v1; do
        built=target/static/$target/cross/$binary
        [[ -f $built ]] || { log "$built is missing: run scripts/installer-image.sh first"; exit 1; }
        flag=--version
        [[ $binary != containerd-shim-* ]] || flag=-v
        mkdir -p "$work/$target"
        cp "$built" "$work/$target/"
        if out=$(timeout 120 chroot "$root" "$inside/$target/$binary" $flag 2>&1); then
            log "$target $binary: $(echo "$out" | tr '\n' ' ')"
        else
            log "$target $binary FAILED on bullseye: $out"
            failed=1
        fi
    done
done
cp "$dynamic" "$work/dynamic-wasmbay"
if out=$(timeout 120 chroot "$root" "$inside/dynamic-wasmbay" --version 2>&1); then
    log "the dynamically linked $dynamic ran on bullseye, where it was expected to fail: $out"
    failed=1
else
    log "the dynamically linked $dynamic fails there, as expected: $(echo "$out" | head -2 | tr '\n' ' ')"
fi
exit "$failed"
