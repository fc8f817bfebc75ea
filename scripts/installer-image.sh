#!/usr/bin/env bash
# The node installer's image for deploy/: static `wasmbay`, `wasmbay-runtime` and shim for
# linux/amd64 and linux/arm64 (glibc linked in with crt-static, libseccomp from Debian's static
# library; no libraries in the image), packed by `wasmbay image installer` into one OCI image
# index. The static builds have their own target directory (target/static), so they do not
# undo the ordinary ones. WasmEdge links libwasmedge dynamically and is left out.
#
#   scripts/installer-image.sh [--name REF] [-o PATH] [--features LIST]
#
# Then `ctr images import --all-platforms PATH`, or push it to a registry (docs/kubernetes.md).
set -euo pipefail
cd "$(dirname "$0")/.."

name=
output=target/static/node-installer.tar
features=wasmtime,wasmer
while (($#)); do
    case "$1" in
    --name) name=$2; shift 2 ;;
    -o | --output) output=$2; shift 2 ;;
    --features) features=$2; shift 2 ;;
    *)
        echo "installer-image: unknown argument $1 (usage: installer-image.sh [--name REF] [-o PATH] [--features LIST])" >&2
        exit 2
        ;;
    esac
done
[[ $features != *wasmedge* ]] || { echo "installer-image: wasmedge cannot be linked statically" >&2; exit 2; }

./scripts/setup.sh --aarch64
binaries=()
for pair in amd64:x86_64-unknown-linux-gnu arm64:aarch64-unknown-linux-gnu; do
    arch=${pair%%:*} target=${pair#*:}
    start=$SECONDS
    # RUSTFLAGS apply to the target only when --target is given: build scripts and proc
    # macros stay ordinary host programs. On aarch64 rustc links static glibc as a non-PIE,
    # whose start code (built -fpic, a 32 KiB GOT) cannot reach the GOT of a binary this size
    # when Rust's code is position-independent too ("relocation truncated to fit:
    # R_AARCH64_LD64_GOTPAGE_LO15"); compiled for a fixed address, it makes no GOT entries.
    rustflags="-C target-feature=+crt-static"
    [[ $arch != arm64 ]] || rustflags+=" -C relocation-model=static"
    # libseccomp-sys links libseccomp dynamically unless told otherwise, which in a static
    # executable crashes it at start: Debian's static library, from the target's multiarch
    # directory.
    LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/${target%%-unknown-*}-linux-gnu \
        RUSTFLAGS=$rustflags cargo build --profile cross --target "$target" \
            --target-dir target/static --workspace --bins --no-default-features --features "$features"
    echo "installer-image: the static $arch build took $((SECONDS - start)) s"
    # Stripped copies: debug information is most of each binary's size.
    stripped=target/static/$target/stripped
    mkdir -p "$stripped"
    strip_tool=strip
    [[ $arch != arm64 ]] || strip_tool=aarch64-linux-gnu-strip
    for binary in wasmbay wasmbay-runtime containerd-shim-wasmbay-wasmtime-v1; do
        "$strip_tool" --strip-unneeded -o "$stripped/$binary" "target/static/$target/cross/$binary"
    done
    binaries+=(--binaries "$arch=$stripped")
done
name_args=()
[[ -z $name ]] || name_args=(--name "$name")
cargo run --quiet -- image installer "${binaries[@]}" "${name_args[@]}" -o "$output"
