#!/usr/bin/env bash
# The main job, end to end on a fresh Debian machine: set up, build wasmbay, build an OCI
# image from the bundled example module, and run it as a container through a real containerd
# (a private instance: its own root, state and socket under a temp dir, stopped afterwards;
# the system containerd, if any, is never touched) with the wasmbay shim.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

./scripts/setup.sh
cargo build -p wasmbay -p wasmbay-containerd-shim --bins
bin="$repo/target/debug"

work=$(mktemp -d /tmp/wbdemo-XXXXXX)
containerd_pid=""
cleanup() {
    if [[ -n "$containerd_pid" ]]; then
        ctr --address "$work/c.sock" -n demo tasks kill -s SIGKILL hello >/dev/null 2>&1 || true
        kill "$containerd_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # Anything containerd left mounted under the work dir, deepest first.
    { grep -o " $work[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$work/c.sock"
[ttrpc]
  address = "$work/c.sock.ttrpc"
[debug]
  address = ""
TOML

PATH="$bin:$PATH" WASMBAY_CACHE_DIR="$work/cache" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do
    ctr --address "$work/c.sock" version >/dev/null 2>&1 && break
    sleep 0.1
done

"$bin/wasmbay" image build examples/hello.wat --name hello-wasm:demo --output "$work/hello.tar" --platform linux/amd64 >/dev/null
ctr --address "$work/c.sock" -n demo images import "$work/hello.tar" >/dev/null
echo "demo: running docker.io/library/hello-wasm:demo with runtime io.containerd.wasmbay-wasmtime.v1"
ctr --address "$work/c.sock" -n demo run --rm --fifo-dir "$work/fifo" \
    --runtime io.containerd.wasmbay-wasmtime.v1 docker.io/library/hello-wasm:demo hello
