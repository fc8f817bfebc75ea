#!/usr/bin/env bash
# Debian packages of wasmbay, checked by lintian (an error fails the build):
#   wasmbay          the CLI, with man pages and bash, zsh and fish completions made from its
#                    own definition (`wasmbay docs`);
#   wasmbay-runtime  the OCI runtime (`wasmbay-runtime`, with its man page) and the containerd
#                    shim, under one name per engine the binary holds
#                    (containerd-shim-wasmbay-<engine>-v1; containerd finds shims on its PATH).
# The binaries come from BIN_DIR (default: target/debug, as the tests build them), stripped;
# their library dependencies are found by dpkg-shlibdeps. Prints the packages' paths.
#
#   scripts/deb.sh [--bin-dir DIR] [--out DIR] [--no-lintian]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

bin_dir=target/debug
out=target/deb
lintian=true
while (($#)); do
    case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-lintian) lintian=false; shift ;;
    *)
        echo "deb: unknown argument $1 (usage: deb.sh [--bin-dir DIR] [--out DIR] [--no-lintian])" >&2
        exit 2
        ;;
    esac
done
log() { printf 'deb: %s\n' "$*" >&2; }
for binary in wasmbay wasmbay-runtime containerd-shim-wasmbay-wasmtime-v1; do
    [[ -x $bin_dir/$binary ]] || { log "$bin_dir/$binary is missing (cargo build --workspace --bins)"; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
revision=1
# The binaries' architecture, from their ELF header's machine field.
case $(od -An -tu2 -j18 -N2 "$bin_dir/wasmbay" | tr -d ' ') in
62) arch=amd64 ;;
183) arch=arm64 ;;
*) log "$bin_dir/wasmbay: not an amd64 or arm64 executable"; exit 1 ;;
esac
# The shim names the engines it holds in its version line.
engines=$("$bin_dir/containerd-shim-wasmbay-wasmtime-v1" -v | sed -n 's/.*(engines: \(.*\)).*/\1/p' |
    tr ',' '\n' | awk '{print $1}')
[[ -n $engines ]] || { log "the shim names no engine"; exit 1; }

work=$(mktemp -d /tmp/wasmbay-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT
maintainer="wasmbay maintainers <maintainers@wasmbay.dev>"
date=$(git log -1 --format=%aD 2>/dev/null || date -R)

# One package tree: the common files every Debian binary package must carry.
tree() { # NAME: makes $work/NAME with its doc directory
    local name=$1 root=$work/$1
    install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/doc/$name"
    cat >"$root/usr/share/doc/$name/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: wasmbay
Source: https://wasmbay.dev

Files: *
Copyright: 2026 the wasmbay authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 can be found in
 /usr/share/common-licenses/Apache-2.0.
EOF
    chmod 0644 "$root/usr/share/doc/$name/copyright"
    printf '%s (%s-%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
        "$name" "$version" "$revision" "$version" "$maintainer" "$date" |
        gzip -9n >"$root/usr/share/doc/$name/changelog.Debian.gz"
    chmod 0644 "$root/usr/share/doc/$name/changelog.Debian.gz"
}

# Lintian tags that are wrong about these binaries, each with the reason.
overrides() { # NAME BINARY...: the package's override file
    local name=$1 root=$work/$1 binary
    shift
    install -d -m 0755 "$root/usr/share/lintian/overrides"
    {
        for binary in "$@"; do
            echo "# wasmer's configuration code links unsafe-libyaml, a Rust translation of libyaml;"
            echo "# Debian's libyaml cannot stand in for it."
            echo "$name: embedded-library libyaml [usr/bin/$binary]"
            if [[ $binary == containerd-shim-* ]]; then
                echo "# Linked at a fixed address on purpose: its relocated data stays shared between"
                echo "# shim processes and the container inits they clone (containerd-shim/build.rs)."
                echo "$name: hardening-no-pie [usr/bin/$binary]"
            fi
        done
    } >"$root/usr/share/lintian/overrides/$name"
    chmod 0644 "$root/usr/share/lintian/overrides/$name"
}

binary() { # SOURCE DEST: a stripped copy
    install -m 0755 "$1" "$2"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$2"
}

man_page() { # ROFF-FILE ROOT: gzipped into ROOT's man1
    install -d -m 0755 "$2/usr/share/man/man1"
    gzip -9n <"$1" >"$2/usr/share/man/man1/$(basename "$1").gz"
    chmod 0644 "$2/usr/share/man/man1/$(basename "$1").gz"
}

# Depends from the binaries' own needs (dpkg-shlibdeps reads debian/control).
shlibs() { # FILE...: prints the Depends value
    local dir=$work/shlibs
    mkdir -p "$dir/debian"
    printf 'Source: wasmbay\n\nPackage: wasmbay\nArchitecture: any\n' >"$dir/debian/control"
    (cd "$dir" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}

control() { # NAME DEPENDS SUMMARY DESCRIPTION...: DEBIAN/control, md5sums
    local name=$1 depends=$2 summary=$3 root=$work/$1
    shift 3
    local size
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    {
        printf 'Package: %s\nVersion: %s-%s\nArchitecture: %s\nMaintainer: %s\n' \
            "$name" "$version" "$revision" "$arch" "$maintainer"
        printf 'Installed-Size: %s\nDepends: %s\n' "$size" "$depends"
        [[ $name != wasmbay-runtime ]] || printf 'Recommends: containerd\n'
        printf 'Section: admin\nPriority: optional\nHomepage: https://wasmbay.dev\n'
        printf 'Description: %s\n' "$summary"
        for line in "$@"; do printf ' %s\n' "$line"; done
    } >"$root/DEBIAN/control"
    (cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
    chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
}

# wasmbay: the CLI.
tree wasmbay
binary "$bin_dir/wasmbay" "$work/wasmbay/usr/bin/wasmbay"
"$work/wasmbay/usr/bin/wasmbay" docs --man "$work/man" --completions "$work/completions"
for page in "$work"/man/*.1; do man_page "$page" "$work/wasmbay"; done
install -D -m 0644 "$work/completions/wasmbay.bash" \
    "$work/wasmbay/usr/share/bash-completion/completions/wasmbay"
install -D -m 0644 "$work/completions/_wasmbay" "$work/wasmbay/usr/share/zsh/vendor-completions/_wasmbay"
install -D -m 0644 "$work/completions/wasmbay.fish" \
    "$work/wasmbay/usr/share/fish/vendor_completions.d/wasmbay.fish"
grep -q libyaml "$work/wasmbay/usr/bin/wasmbay" && overrides wasmbay wasmbay
control wasmbay "$(shlibs "$work/wasmbay/usr/bin/wasmbay")" \
    "run WebAssembly workloads as containers (command line)" \
    "wasmbay runs WASI modules and components on wasmtime, wasmer or WasmEdge," \
    "with a precompiled-module cache so that a module starts in milliseconds." \
    "This package holds the wasmbay command: run modules, build and push OCI" \
    "images of them, install wasmbay's shims onto a Kubernetes node's" \
    "containerd, and run the conformance matrix and the benchmarks."

# wasmbay-runtime: the OCI runtime and the shims.
tree wasmbay-runtime
binary "$bin_dir/wasmbay-runtime" "$work/wasmbay-runtime/usr/bin/wasmbay-runtime"
shim=containerd-shim-wasmbay-wasmtime-v1
binary "$bin_dir/$shim" "$work/wasmbay-runtime/usr/bin/$shim"
for engine in $engines; do
    [[ $engine == wasmtime ]] || ln -s "$shim" "$work/wasmbay-runtime/usr/bin/containerd-shim-wasmbay-$engine-v1"
done
"$work/wasmbay-runtime/usr/bin/wasmbay-runtime" --generate-man-page >"$work/wasmbay-runtime.1"
man_page "$work/wasmbay-runtime.1" "$work/wasmbay-runtime"
# The shim has no command line of its own to make a page from: containerd starts it.
for engine in $engines; do
    cat >"$work/containerd-shim-wasmbay-$engine-v1.1" <<EOF
.TH CONTAINERD-SHIM-WASMBAY-${engine^^}-V1 1 "" "wasmbay $version"
.SH NAME
containerd-shim-wasmbay-$engine-v1 \\- containerd shim running WebAssembly containers on $engine
.SH DESCRIPTION
containerd starts this shim for containers of the runtime type
.B io.containerd.wasmbay-$engine.v1
(Kubernetes runtime handler
.BR wasmbay-$engine ,
as \\fBwasmbay node install\\fR declares it). It runs wasm entrypoints on $engine, and Linux
ones, such as pause containers and sidecars, natively. It is not run by hand;
\\fB\\-v\\fR prints its version and the engines it holds.
.SH ENVIRONMENT
.TP
.B WASMBAY_SHIM_LOG
a file for the shim's log.
.TP
.B WASMBAY_SHIM_GROUPING
.B pod
(default) or
.BR namespace :
which containers one shim serves.
.SH SEE ALSO
.BR wasmbay (1),
.BR wasmbay-runtime (1)
EOF
    man_page "$work/containerd-shim-wasmbay-$engine-v1.1" "$work/wasmbay-runtime"
done
grep -q libyaml "$work/wasmbay-runtime/usr/bin/$shim" && overrides wasmbay-runtime wasmbay-runtime "$shim"
control wasmbay-runtime \
    "$(shlibs "$work/wasmbay-runtime/usr/bin/wasmbay-runtime" "$work/wasmbay-runtime/usr/bin/$shim")" \
    "run WebAssembly workloads as containers (OCI runtime, containerd shims)" \
    "wasmbay runs WASI modules and components as containers, beside Linux" \
    "containers in the same pod." \
    "This package holds wasmbay-runtime, an OCI runtime with runc's command" \
    "line that runs wasm containers and starts native ones, and the containerd" \
    "shims containerd-shim-wasmbay-<engine>-v1, for the runtime types" \
    "io.containerd.wasmbay-<engine>.v1 and the Kubernetes runtime handlers" \
    "wasmbay-<engine>."

mkdir -p "$out"
packages=()
for name in wasmbay wasmbay-runtime; do
    deb=$out/${name}_${version}-${revision}_${arch}.deb
    dpkg-deb --root-owner-group -Zxz --build "$work/$name" "$deb" >/dev/null
    packages+=("$deb")
done
if $lintian; then
    command -v lintian >/dev/null || { log "lintian is missing (scripts/setup.sh installs it)"; exit 1; }
    # Errors fail; warnings are shown, every occurrence.
    status=0
    lintian --tag-display-limit 0 --fail-on error "${packages[@]}" >&2 || status=$?
    ((status == 0)) || { log "lintian found errors"; exit 1; }
    log "lintian: no errors"
fi
printf '%s\n' "${packages[@]}"
