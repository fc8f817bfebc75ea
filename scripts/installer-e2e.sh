#!/usr/bin/env bash
# The node installer's image run as deploy/'s DaemonSet runs it, on a whole node: in the
# Debian 13 guest (scripts/guest.sh), the system's containerd under systemd imports the image
# and runs `wasmbay node install` from it, privileged, with the host's root at /host and the
# host's PID namespace; a second run must change nothing; a wasm container then runs through
# the installed shim; `wasmbay node uninstall` from the image must restore the configuration
# byte for byte and take the shim away. By hand (it needs scripts/installer-image.sh's static
# build first, which CI cannot afford); it prints each step's evidence and fails on a wrong one.
#
#   scripts/installer-e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
stripped=target/static/x86_64-unknown-linux-gnu/stripped
[[ -x $stripped/wasmbay ]] || { echo "installer-e2e: run scripts/installer-image.sh first" >&2; exit 1; }
work=target/e2e
mkdir -p "$work"
target/debug/wasmbay image installer --binaries "amd64=$stripped" \
    --name localhost/wasmbay/node-installer:e2e -o "$work/installer-amd64.tar" >/dev/null
printf '%s' '(module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32))) (memory (export "memory") 1) (data (i32.const 16) "hello after the installer\n") (func (export "_start") (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 26)) (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))' >"$work/hello.wat"
target/debug/wasmbay image build "$work/hello.wat" --name hello:e2e --platform linux/amd64 -o "$work/hello.tar" >/dev/null
cat >"$work/run.sh" <<'GUEST'
set -eu
cd "$(dirname "$0")"
fail() { echo "installer-e2e: FAILED: $*"; exit 1; }
rm -f /etc/systemd/system/containerd.service   # the guests mask it
systemctl daemon-reload; systemctl start containerd
original=$(sha256sum /etc/containerd/config.toml | cut -d' ' -f1)
ctr -n k8s.io images import --all-platforms installer-amd64.tar >/dev/null
ctr -n k8s.io images import hello.tar >/dev/null
# As the DaemonSet runs it: privileged, host root at /host, the host's PID namespace.
installer() { # ID ARGS...: runs the image to its end (containerd restarts under it), prints its log
    local id=$1 state i
    shift
    ctr -n k8s.io run -d --privileged --net-host --with-ns pid:/proc/1/ns/pid --log-uri "file:///tmp/$id.log" \
        --mount type=bind,src=/,dst=/host,options=rbind:rslave \
        localhost/wasmbay/node-installer:e2e "$id" /usr/local/bin/wasmbay "$@" --host-root=/host
    for i in $(seq 1 180); do
        state=$(ctr -n k8s.io task ls 2>/dev/null | awk -v id="$id" '$1 == id {print $3}')
        [ "$state" = STOPPED ] && break
        sleep 1
    done
    echo "== $id: $state after $i s"; cat "/tmp/$id.log"
    ctr -n k8s.io task rm "$id" >/dev/null; ctr -n k8s.io containers rm "$id"
}
installer install-1 node install
installed=$(sha256sum /etc/containerd/config.toml | cut -d' ' -f1)
[ "$installed" != "$original" ] || fail "the first install changed nothing"
installer install-2 node install
[ "$(sha256sum /etc/containerd/config.toml | cut -d' ' -f1)" = "$installed" ] || fail "the second install changed the file"
out=$(ctr -n k8s.io run --rm --runtime io.containerd.wasmbay-wasmtime.v1 docker.io/library/hello:e2e hello)
echo "== a wasm container: $out"
[ "$out" = "hello after the installer" ] || fail "the wasm container printed: $out"
installer uninstall node uninstall
[ "$(sha256sum /etc/containerd/config.toml | cut -d' ' -f1)" = "$original" ] || fail "uninstall did not restore the file"
[ ! -e /usr/local/bin/containerd-shim-wasmbay-wasmtime-v1 ] || fail "the shim is still there"
echo "installer-e2e: install, no-op reinstall, a wasm container, uninstall byte for byte: all held"
GUEST
./scripts/guest.sh run debian13 --timeout 1200 -- bash "$work/run.sh"
