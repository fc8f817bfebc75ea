#!/usr/bin/env bash
# Real-node guests for the tests: a whole Debian system (its own kernel, systemd, cgroup v2,
# containerd and runc from Debian) booted by qemu without a network, with host folders shared
# in over 9p at the same paths, running one command and bringing back its output and status.
#
#   scripts/guest.sh build GUEST          make GUEST's image (cached; prints its directory)
#   scripts/guest.sh run GUEST [--share DIR]... [--timeout S] -- COMMAND [ARG]...
#                                         boot GUEST, run COMMAND in it as root, print its
#                                         output, exit with its status, power off
#   scripts/guest.sh list                 the guests and what each is
#
# GUEST is one of:
#   debian13   Debian 13 (trixie): kernel 6.12, systemd 257, containerd 1.7, runc, cgroup v2
#   debian12   Debian 12 (bookworm) booted with cgroup v2 only (cgroup_no_v1=all): kernel 6.1,
#              systemd 252, containerd 1.6, runc
#   debian13-arm64
#              Debian 13 for 64-bit Arm, booted by qemu-system-aarch64 (TCG): kernel 6.12,
#              containerd 1.7, runc, cgroup v2, a small init instead of systemd; for the
#              aarch64 oci-runtime and containerd frontends, which qemu-user cannot run
#
# Everything comes from Debian's archive through debootstrap: the userland, containerd, runc
# and the kernel (linux-image-amd64, booted with its own initramfs, or -arm64). An image is a directory
# under $WASMBAY_GUEST_CACHE (default /var/cache/wasmbay/guests) named by a key of its recipe
# (this script's recipe section and the suite), so a second run reuses it and a changed recipe
# makes a new one; the debootstrapped tree under base/ is keyed by the suite and packages only. Each boot writes to a throw-away overlay (qemu's snapshot mode); the image
# itself is never changed by a run.
#
# The arm64 guest is not configured by running its packages: debootstrap's second stage
# under qemu-user ran over 35 minutes here without finishing. Its first stage (download and
# unpack, no emulation) is followed by unpacking every other package it fetched, the module
# index (depmod, the one arm64 program run at build time, through qemu-user) and the
# accounts from base-passwd's tables. No maintainer script runs, so there is no systemd
# setup and no initramfs of Debian's; the guest boots a small initramfs made here (busybox
# and the modules that mount the root and the shares) and a small init (the mounts, cgroup
# v2 with every controller delegated, then the command). About 1 minute to build, 6 s to boot.
#
# How the guest runs: qemu with TCG (software emulation) by default, as this project's
# machines offer no usable KVM (/dev/kvm is a PVM hypervisor that boots only PVM-enabled guest
# kernels; Debian's hangs after "Probing EDD"). WASMBAY_GUEST_ACCEL=kvm uses KVM where a host
# has real KVM. Debian's user-mode-linux is no way either on a host CPU with AVX-512: its
# kernels (6.1.176 and 6.12.113) restore a guest process's FPU state with
# PTRACE_SETREGSET(NT_X86_XSTATE) sized for AVX only, which the host refuses with EFAULT
# ("ptrace set fp regs failed, errno = 14"), so even a static busybox as init dies at once.
#
# The repository's parent folder (which holds the repository, its target dir and ../shared) is
# always shared; --share adds more. COMMAND runs with the current directory of the caller, the
# guest's PATH, HOME=/root, and the caller's WASMBAY_* and RUST_* variables. The boot, the
# command and the power-off are bounded by --timeout (default 3600 s); when it passes, qemu is
# killed and the run fails with status 124. The shares are mounted with 9p's cache=loose (the
# guest caches what it read), so nothing shared may change on the host during a run: a binary
# rebuilt under a running guest is seen half old, half new. WASMBAY_GUEST_CPUS (default: the host's, at most
# 4) and WASMBAY_GUEST_MEM (default 4G) size the guest.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

log() { printf 'guest: %s\n' "$*" >&2; }
die() { printf 'guest: %s\n' "$*" >&2; exit 2; }

cache_root=${WASMBAY_GUEST_CACHE:-/var/cache/wasmbay/guests}
mirror=${WASMBAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# --- recipe (everything between here and "end of recipe" is part of the image key) ---
# Packages beyond debootstrap's minbase: the kernel and its initramfs, init and a system bus
# (libcontainer's systemd cgroup driver talks to systemd over D-Bus), the container stack the
# tests drive (with CNI's plugins: a pod that is not on the node's network needs one), and
# what the tests' native containers and checks use.
GUEST_PACKAGES=linux-image-amd64,initramfs-tools,systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,busybox-static,libseccomp2,kmod,procps,iproute2,e2fsprogs,docker-registry
guest_suite() {
    case "$1" in
    debian13 | debian13-arm64) echo trixie ;;
    debian12) echo bookworm ;;
    *) die "unknown guest $1 (scripts/guest.sh list names them)" ;;
    esac
}
guest_arch() { # Debian's name of the guest's architecture
    case "$1" in
    *-arm64) echo arm64 ;;
    *) echo amd64 ;;
    esac
}
guest_packages() { # the package list for the guest's architecture
    local arch
    arch=$(guest_arch "$1")
    echo "${GUEST_PACKAGES/linux-image-amd64/linux-image-$arch}"
}
guest_cmdline() { # kernel arguments beyond the root device and init
    case "$1" in
    # Debian 13's systemd has no cgroup v1 support at all; v2 is the only hierarchy.
    debian13 | debian13-arm64) echo "" ;;
    # Debian 12 would mount v1 controllers if the kernel offered them: refuse them all.
    debian12) echo "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" ;;
    esac
}
IMAGE_SIZE=6G
# The modules the arm64 initramfs loads (with what they depend on) before it mounts the root.
INITRAMFS_MODULES="crc32c_generic virtio_blk ext4 9pnet_virtio 9p"
# The unit that runs the host's command once the system is up, then powers off. Its
# directory (a host folder shared over 9p) is given on the kernel command line.
read -r -d '' RUNNER <<'RUNNER' || true
#!/bin/bash
# Runs the host's command (scripts/guest.sh run), then powers the guest off.
set -u
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^wasmbay\.$1=//p"; }
work=$(arg work)
shares=$(arg shares)
modprobe -a 9pnet_virtio 9p
IFS=, read -r -a dirs <<<"$work,$shares"
index=0
for dir in "${dirs[@]}"; do
    mkdir -p "$dir"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=loose "share$index" "$dir"
    index=$((index + 1))
done
status=125
if [[ -f $work/command ]]; then
    cd "$(cat "$work/cwd")" || exit 1
    set -a
    # shellcheck disable=SC1091
    . "$work/env"
    set +a
    bash "$work/command" >"$work/output" 2>&1 </dev/null
    status=$?
fi
echo "$status" >"$work/status.tmp" && mv "$work/status.tmp" "$work/status"
sync
if [[ -d /run/systemd/system ]]; then
    systemctl poweroff --force --force
else
    busybox poweroff -f
fi
RUNNER
# PID 1 of the guests that do not boot systemd (the arm64 one): what a container runtime
# expects of a booted system, then the runner above.
read -r -d '' INIT <<'INIT' || true
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# As systemd does: the root cgroup delegates every controller, so containers' cgroups get
# memory, cpu, pids and io.
for controller in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$controller" >/sys/fs/cgroup/cgroup.subtree_control
done
hostname wasmbay-guest
ip link set lo up
exec /usr/local/sbin/wasmbay-guest-run
INIT
# The arm64 initramfs's /init: load the modules, mount the root, hand over to INIT.
read -r -d '' INITRAMFS_INIT <<'INITRAMFS_INIT' || true
#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /modules/order); do
    insmod "/modules/$module.ko" || echo "initramfs: insmod $module failed"
done
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^wasmbay\.$1=//p"; }
root=$(arg root)
tries=0
until mount -t ext4 -o rw "$root" /newroot; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { echo "initramfs: cannot mount $root"; poweroff -f; }
    sleep 0.2
done
init=$(arg init)
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot "$init"
INITRAMFS_INIT
read -r -d '' UNIT <<'UNIT' || true
[Unit]
Description=wasmbay: run the host's command
After=multi-user.target dbus.service
Wants=dbus.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/wasmbay-guest-run
StandardOutput=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
configure_rootfs() { # $1: rootfs directory
    local root=$1
    echo wasmbay-guest >"$root/etc/hostname"
    printf '/dev/vda / ext4 defaults 0 1\n' >"$root/etc/fstab"
    mkdir -p "$root/usr/local/sbin"
    printf '%s\n' "$RUNNER" >"$root/usr/local/sbin/wasmbay-guest-run"
    chmod 755 "$root/usr/local/sbin/wasmbay-guest-run"
    printf '%s\n' "$UNIT" >"$root/etc/systemd/system/wasmbay-guest.service"
    mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
    ln -sf /etc/systemd/system/wasmbay-guest.service \
        "$root/etc/systemd/system/multi-user.target.wants/wasmbay-guest.service"
    printf '%s\n' "$INIT" >"$root/usr/local/sbin/wasmbay-guest-init"
    chmod 755 "$root/usr/local/sbin/wasmbay-guest-init"
    # The tests start private containerds and registries; the system's ones would only cost
    # boot time and memory. Nothing here needs a login prompt, timers or the network.
    for unit in containerd.service docker-registry.service getty@tty1.service serial-getty@ttyS0.service \
        serial-getty@ttyAMA0.service \
        console-getty.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
        fstrim.timer systemd-networkd.service systemd-timesyncd.service; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    # What every node has and containerd's CRI copies into host-network pods; minbase has
    # neither file.
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\twasmbay-guest\n' \
        >"$root/etc/hosts"
    [[ -e $root/etc/resolv.conf ]] || : >"$root/etc/resolv.conf"
    # The root password is irrelevant (no login), but an empty one keeps emergency mode usable
    # when a boot is debugged by hand.
    [[ ! -f $root/etc/shadow ]] || sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
}
guest_boots_systemd() { [[ $(guest_arch "$1") == "$(dpkg --print-architecture)" ]]; }
initramfs() { # $1: rootfs, $2: the initramfs file to write
    local root=$1 out=$2 tmp kernel moddir module path line deps order=() dep
    tmp=$(mktemp -d /tmp/wasmbay-initramfs-XXXXXX)
    kernel=$(basename "$(find "$root/usr/lib/modules" -mindepth 1 -maxdepth 1 -print -quit)")
    moddir="$root/usr/lib/modules/$kernel"
    mkdir -p "$tmp"/{bin,dev,proc,sys,newroot,modules}
    cp "$root/usr/bin/busybox" "$tmp/bin/busybox"
    printf '%s\n' "$INITRAMFS_INIT" >"$tmp/init"
    chmod 755 "$tmp/init"
    # modules.dep lists a module's dependencies so that loading them from the last one up
    # works; each module goes in once, after what it needs.
    for module in $INITRAMFS_MODULES; do
        line=$(grep -E "(^|/)$module\.ko(\.xz)?:" "$moddir/modules.dep") ||
            die "initramfs: no module $module for $kernel"
        path=${line%%:*}
        deps=${line#*:}
        for dep in $(tr ' ' '\n' <<<"$deps" | tac) "$path"; do
            if [[ -n $dep && " ${order[*]} " != *" $dep "* ]]; then
                order+=("$dep")
            fi
        done
    done
    for path in "${order[@]}"; do
        module=$(basename "$path")
        module=${module%.xz}
        module=${module%.ko}
        # busybox's insmod takes the module as it is loaded: decompressed here.
        if [[ $path == *.xz ]]; then
            xz -dc "$moddir/$path" >"$tmp/modules/$module.ko"
        else
            cp "$moddir/$path" "$tmp/modules/$module.ko"
        fi
        echo "$module" >>"$tmp/modules/order"
    done
    (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
    rm -rf "$tmp"
}
# --- end of recipe ---

recipe_key() { # $1: guest
    {
        sed -n '/^# --- recipe/,/^# --- end of recipe/p' "$repo/scripts/guest.sh"
        echo "$1 $(guest_suite "$1")"
    } | sha256sum | cut -c1-16
}

image_dir() { echo "$cache_root/$1-$(recipe_key "$1")"; }

# The debootstrapped tree depends on the suite, architecture and package list only, so a
# change to the rest of the recipe (configuration, boot) reuses it instead of fetching the
# archive again.
base_dir() { # $1: suite, $2: architecture, $3: packages
    local name=$1 key="$1"
    [[ $2 == amd64 ]] || { name="$1-$2"; key="$1-$2"; }
    echo "$cache_root/base/$name-$(printf '%s %s\n' "$key" "$3" | sha256sum | cut -c1-16)"
}

unpack_foreign() { # $1: a foreign debootstrap's first-stage tree
    local root=$1 deb kernel
    log "unpacking the fetched packages into $root (no maintainer scripts)"
    for deb in "$root"/var/cache/apt/archives/*.deb; do
        dpkg-deb -x "$deb" "$root"
    done
    cp "$root/usr/share/base-passwd/passwd.master" "$root/etc/passwd"
    cp "$root/usr/share/base-passwd/group.master" "$root/etc/group"
    kernel=$(basename "$(find "$root/usr/lib/modules" -mindepth 1 -maxdepth 1 -print -quit)")
    [[ -n $kernel ]] || { echo "no kernel modules under $root/usr/lib/modules"; return 1; }
    log "module index for $kernel (depmod through qemu-user, about 30 s)"
    [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] ||
        { echo "binfmt for aarch64 is not registered (scripts/setup.sh --aarch64)"; return 1; }
    chroot "$root" /usr/sbin/depmod "$kernel"
}

debootstrapped() { # $1: suite, $2: architecture, $3: packages; prints the base tree's directory
    local suite=$1 arch=$2 packages=$3 base foreign=()
    base=$(base_dir "$suite" "$arch" "$packages")
    if [[ ! -f $base/done ]]; then
        rm -rf "$base"
        mkdir -p "$base"
        # Another architecture's packages are unpacked, not configured (see the top).
        [[ $arch == "$(dpkg --print-architecture)" ]] || foreign=(--foreign "--arch=$arch")
        log "debootstrap $suite ($arch) from $mirror into $base/rootfs"
        if ! debootstrap "${foreign[@]}" --variant=minbase --include="$packages" "$suite" \
            "$base/rootfs" "$mirror" >"$base/debootstrap.log" 2>&1; then
            tail -n 20 "$base/debootstrap.log" >&2
            die "debootstrap of $suite failed (whole log: $base/debootstrap.log)"
        fi
        if ((${#foreign[@]})); then
            unpack_foreign "$base/rootfs" >>"$base/debootstrap.log" 2>&1 ||
                die "unpacking the $suite ($arch) packages failed (log: $base/debootstrap.log)"
        fi
        rm -f "$base/rootfs/var/cache/apt/archives"/*.deb
        touch "$base/done"
    fi
    echo "$base"
}

build() { # $1: guest; prints the image directory
    local guest=$1 dir suite root start base
    dir=$(image_dir "$guest")
    if [[ -f $dir/ready ]]; then
        echo "$dir"
        return
    fi
    suite=$(guest_suite "$guest")
    command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/setup.sh --guests installs it)"
    command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 is missing (e2fsprogs)"
    start=$SECONDS
    base=$(debootstrapped "$suite" "$(guest_arch "$guest")" "$(guest_packages "$guest")")
    rm -rf "$dir"
    mkdir -p "$dir"
    root="$dir/rootfs"
    log "building $guest from $base"
    cp -a "$base/rootfs" "$root"
    configure_rootfs "$root"
    # The kernel and initramfs are booted by qemu directly (no boot loader in the image).
    local kernel initrd
    kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit)
    [[ -n $kernel ]] || die "$guest: the image has no kernel in /boot"
    cp "$kernel" "$dir/vmlinuz"
    if guest_boots_systemd "$guest"; then
        initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' -print -quit)
        [[ -n $initrd ]] || die "$guest: the image has no initramfs in /boot"
        cp "$initrd" "$dir/initrd.img"
    else
        initramfs "$root" "$dir/initrd.img"
    fi
    log "$guest: making the ext4 image ($IMAGE_SIZE, sparse)"
    mkfs.ext4 -q -F -L wasmbay-root -d "$root" "$dir/root.img" "$IMAGE_SIZE" >&2
    rm -rf "$root"
    touch "$dir/ready"
    log "$guest: built in $((SECONDS - start)) s at $dir"
    echo "$dir"
}

run() { # $1: guest, then options, --, command
    local guest=$1 dir work timeout=3600 shares=("$(dirname "$repo")") status start
    shift
    while (($#)); do
        case "$1" in
        --share) shares+=("$(realpath "$2")"); shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unknown run option $1" ;;
        esac
    done
    (($#)) || die "run needs a command after --"
    dir=$(build "$guest")
    work=$(mktemp -d /tmp/wasmbay-guest-XXXXXX)
    chmod 755 "$work"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    printf '%q ' "$@" >"$work/command"
    echo >>"$work/command"
    pwd >"$work/cwd"
    env | grep -E '^(WASMBAY|RUST)_[A-Za-z0-9_]*=' | sed -E 's/^([^=]*)=(.*)$/\1=\x27\2\x27/' >"$work/env" || true
    local IFS=,
    local share_list="${shares[*]}"
    unset IFS
    start=$SECONDS
    local accel=${WASMBAY_GUEST_ACCEL:-tcg} cpus qemu machine console cpu=max boot
    case $(guest_arch "$guest") in
    amd64)
        qemu=qemu-system-x86_64 machine=q35 console=ttyS0
        # An x86 kernel patches its own text while the other CPUs run (jump labels and static
        # calls, through a temporary int3; arm64's stops the other CPUs instead). Multi-threaded
        # TCG does not keep that coherent between vCPUs: the Debian 13 guest died twice with
        # "Oops: int3" in scheduler code while containers toggled cgroup static keys. One host
        # thread running the vCPUs in turn does; WASMBAY_GUEST_TCG_THREAD=multi gives it back.
        [[ $accel != tcg ]] || accel="tcg,thread=${WASMBAY_GUEST_TCG_THREAD:-single}"
        ;;
    # Pointer authentication emulated with QEMU's own cheap algorithm, not the architected
    # one: the same instructions and checks, several times faster under TCG.
    arm64) qemu=qemu-system-aarch64 machine=virt console=ttyAMA0 cpu=max,pauth-impdef=on ;;
    esac
    if guest_boots_systemd "$guest"; then
        boot="root=/dev/vda rw quiet systemd.show_status=0"
    else
        boot="wasmbay.root=/dev/vda wasmbay.init=/usr/local/sbin/wasmbay-guest-init quiet"
    fi
    command -v "$qemu" >/dev/null || die "$qemu is missing (scripts/setup.sh --guests installs it)"
    cpus=${WASMBAY_GUEST_CPUS:-$(nproc)}
    ((cpus <= 4)) || cpus=4
    local shares_args=() index=1 share
    shares_args+=(-virtfs "local,path=$work,mount_tag=share0,security_model=passthrough,id=share0")
    for share in "${shares[@]}"; do
        shares_args+=(-virtfs "local,path=$share,mount_tag=share$index,security_model=passthrough,id=share$index")
        index=$((index + 1))
    done
    log "booting $guest ($(basename "$dir"), $accel, $cpus CPUs); sharing $share_list"
    # A guest kernel under TCG has been seen to panic while booting (in its RCU timer code,
    # before userspace); such a boot is retried, twice at most. A run whose command started
    # (its output file exists) is never repeated.
    local attempt
    for attempt in 1 2 3; do
    rm -f "$work/console"
    status=0
    # The serial console (kernel and systemd) goes to a log beside the command's output,
    # shown when the run fails. panic=-1 with -no-reboot: a guest kernel panic ends qemu.
    timeout --kill-after=10 "$timeout" "$qemu" \
        -machine "$machine" -accel "$accel" -cpu "$cpu" -smp "$cpus" -m "${WASMBAY_GUEST_MEM:-4G}" \
        -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" \
        -append "$boot console=$console panic=-1 wasmbay.work=$work wasmbay.shares=$share_list $(guest_cmdline "$guest")" \
        -drive "file=$dir/root.img,if=virtio,format=raw,snapshot=on" \
        "${shares_args[@]}" \
        -nic none -display none -monitor none -serial "file:$work/console" -no-reboot \
        </dev/null >"$work/qemu.log" 2>&1 || status=$?
    if [[ ! -f $work/output && ! -f $work/status ]] && grep -q 'Kernel panic' "$work/console" 2>/dev/null && ((attempt < 3)); then
        grep -m1 -B2 'Kernel panic' "$work/console" >&2 || true
        log "$guest: the guest kernel panicked while booting (attempt $attempt); booting again"
        continue
    fi
    break
    done
    if [[ -f $work/output ]]; then
        cat "$work/output"
    fi
    if [[ ! -f $work/status ]]; then
        tail -n 40 "$work/console" "$work/qemu.log" >&2 || true
        if ((status == 124 || status == 137)); then
            log "$guest: no result within $timeout s; qemu was killed"
            exit 124
        fi
        log "$guest: the guest stopped (qemu status $status) before the command finished"
        exit 1
    fi
    status=$(cat "$work/status")
    log "$guest: the command exited $status after $((SECONDS - start)) s (boot included)"
    exit "$status"
}

case "${1:-}" in
build)
    [[ $# -eq 2 ]] || die "usage: guest.sh build GUEST"
    build "$2"
    ;;
run)
    [[ $# -ge 2 ]] || die "usage: guest.sh run GUEST [--share DIR]... [--timeout S] -- COMMAND..."
    guest=$2
    shift 2
    run "$guest" "$@"
    ;;
list)
    sed -n '/^# GUEST is one of:/,/^#$/p' "$0" | sed -e '1d;$d' -e 's/^#   //'

    ;;
*)
    die "usage: guest.sh build GUEST | run GUEST [--share DIR]... [--timeout S] -- COMMAND... | list"
    ;;
esac
