#!/usr/bin/env bash
# npm run test:kernel: boots a stock Debian kernel (newest linux-image-*-amd64,
# unsigned variant, from Debian's archive) under qemu with software emulation
# and no network device, with an initramfs holding busybox, node, iproute2,
# Open vSwitch and this project, and runs test/kernel/vm-tests.js there: real
# vlan, dummy, ipvlan and openvswitch links (kinds this machine's kernel lacks),
# plus veth/bridge/macvlan and rollback, made by our library and our CLI.
#
# Everything fetched or built lives in test/kernel/.cache/ (gitignored): the
# .deb, the kernel with the modules we load, the initramfs (a base part keyed by
# kernel version + host binaries + this script, a project part keyed by dist/,
# the addon, bin/, the VM test program and this script).
#
# Environment: PIPEWORK_KERNEL_TIMEOUT (s, default 900), PIPEWORK_KERNEL_PACKAGE
# (a linux-image package name instead of the newest), PIPEWORK_KERNEL_NO_BUILD=1
# (use dist/ as it is, no tsc), PIPEWORK_KERNEL_NO_OVS=1 (an image without Open
# vSwitch: the OVS tests report SKIP), PIPEWORK_KERNEL_CACHE (cache directory).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${PIPEWORK_KERNEL_CACHE:-$ROOT/test/kernel/.cache}
TIMEOUT=${PIPEWORK_KERNEL_TIMEOUT:-900}
T0=$(date +%s)

say() { echo "test-kernel: $*" >&2; }
die() { echo "test-kernel: $*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: install the Debian package $2 (it is in .ci/apt-packages.txt)"; }

need qemu-system-x86_64 qemu-system-x86
need busybox busybox-static
need objcopy binutils
need depmod kmod
need modprobe kmod
need dpkg-deb dpkg
need apt-get apt
need ldd libc-bin
need node nodejs
[ -x /sbin/ip ] || die "/sbin/ip not found: install iproute2"
BUSYBOX=$(command -v busybox)

mkdir -p "$CACHE"
TMP=$(mktemp -d "$CACHE/tmp.XXXXXX")
chmod 0755 "$TMP"  # apt-get download writes as _apt where it can
trap 'rm -rf "$TMP"' EXIT

# --- 1. The project, compiled -------------------------------------------------
if [ "${PIPEWORK_KERNEL_NO_BUILD:-}" != 1 ]; then
  npx --no-install tsc -p tsconfig.json || die "tsc failed"
fi
[ -f dist/index.js ] || die "dist/ is missing: run npx tsc -p ."
if [ ! -f build/Release/pipework.node ]; then
  npm run --silent build:native || die "the native addon does not build"
fi

# --- 2. The kernel package ----------------------------------------------------
newest() { awk '{print $1}' | grep -Ev -- '-(cloud|rt)-amd64' | sort -V | tail -1; }
pkg=${PIPEWORK_KERNEL_PACKAGE:-}
if [ -z "$pkg" ]; then
  pkg=$(apt-cache search --names-only '^linux-image-[0-9].*-amd64-unsigned$' | newest)
  [ -n "$pkg" ] || pkg=$(apt-cache search --names-only '^linux-image-[0-9].*-amd64$' | newest)
fi
if [ -z "$pkg" ]; then
  # No apt lists (apt-get update never ran): the newest kernel already cached, if any.
  deb=$(ls "$CACHE"/debs/linux-image-*.deb 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$deb" ] || die "no linux-image-*-amd64 package known to apt: run apt-get update"
  pkg=$(basename "$deb" | cut -d_ -f1)
fi
kver=${pkg#linux-image-}
kver=${kver%-unsigned}
mkdir -p "$CACHE/debs"
deb=$(ls "$CACHE/debs/${pkg}"_*.deb 2>/dev/null | tail -1 || true)
if [ -z "$deb" ]; then
  say "downloading $pkg"
  mkdir -p "$TMP/dl" && chmod 0777 "$TMP/dl"
  (cd "$TMP/dl" && apt-get download -q "$pkg" >/dev/null) || die "apt-get download $pkg failed"
  find "$CACHE/debs" -name 'linux-image-*.deb' -delete
  mv "$TMP"/dl/*.deb "$CACHE/debs/"
  deb=$(ls "$CACHE/debs/${pkg}"_*.deb | tail -1)
fi

# --- 3. The kernel and the modules we load, in load order -----------------------
# Kinds the tests create; the stock kernel has them all as modules.
MODULES="veth bridge macvlan 8021q dummy ipvlan openvswitch"
KDIR=$CACHE/kernel-$kver
if [ ! -f "$KDIR/done" ]; then
  say "extracting $pkg"
  rm -rf "$KDIR" && mkdir -p "$KDIR/modules"
  x=$TMP/kernel
  mkdir -p "$x"
  dpkg-deb -x "$deb" "$x"
  cp "$x/boot/vmlinuz-$kver" "$KDIR/vmlinuz"
  # The package ships no modules.dep: make one, then let modprobe say the order.
  depmod -b "$x" "$kver"
  mkdir -p "$TMP/noconf"
  : >"$KDIR/load.list"
  for m in $MODULES; do
    modprobe -C "$TMP/noconf" --show-depends -d "$x" -S "$kver" "$m" | while read -r verb path _opts; do
      [ "$verb" = insmod ] || continue
      ko=$(basename "$path"); ko=${ko%.xz}; ko=${ko%.zst}; ko=${ko%.gz}
      awk -v k="$ko" '$1 == k { f = 1 } END { exit !f }' "$KDIR/load.list" && continue
      case "$path" in
        *.xz) "$BUSYBOX" xzcat "$path" >"$KDIR/modules/$ko" ;;
        *.gz) "$BUSYBOX" zcat "$path" >"$KDIR/modules/$ko" ;;
        *.zst) zstd -qdc "$path" >"$KDIR/modules/$ko" ;;
        *) cp "$path" "$KDIR/modules/$ko" ;;
      esac
      # dummy: no dummy0 at load time (the tests give that name a meaning).
      opts=""; [ "$ko" = dummy.ko ] && opts="numdummies=0"
      echo "$ko $opts" >>"$KDIR/load.list"
    done
  done
  rm -rf "$x"
  touch "$KDIR/done"
fi

# --- 4. Base initramfs: busybox, node, iproute2, Open vSwitch, modules ----------
NODE=$(readlink -f "$(command -v node)")
OVS_BINS="/usr/sbin/ovsdb-server /usr/sbin/ovs-vswitchd /usr/bin/ovs-vsctl /usr/bin/ovsdb-tool /usr/bin/ovs-dpctl /usr/bin/ovs-appctl"
OVS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
ovs_missing=""
for f in $OVS_BINS $OVS_SCHEMA; do
  [ -e "$f" ] || { ovs_missing="$f is not installed on the build host (Debian packages openvswitch-switch, openvswitch-common)"; break; }
done
[ "${PIPEWORK_KERNEL_NO_OVS:-}" != 1 ] || ovs_missing="the image was built without Open vSwitch (PIPEWORK_KERNEL_NO_OVS=1)"
base_inputs=("$ROOT/scripts/test-kernel.sh" "$NODE" "$BUSYBOX" /sbin/ip "$KDIR/load.list")
[ -n "$ovs_missing" ] || base_inputs+=($OVS_BINS)
base_key=$( (echo "$ovs_missing"; sha256sum "${base_inputs[@]}") | sha256sum | cut -c1-16)
BASE=$CACHE/base-$kver-$base_key.cpio

# Copies a binary to the same path in the image, with every shared library it
# needs (at the path the loader looks for it).
copy_with_libs() {
  local img=$1 bin=$2 dest=${3:-$2}
  mkdir -p "$img$(dirname "$dest")"
  cp -L "$bin" "$img$dest"
  { ldd "$bin" 2>/dev/null || true; } | awk '/=>/ { if ($3 ~ /^\//) print $3; next } $1 ~ /^\// { print $1 }' | while read -r lib; do
    [ -e "$img$lib" ] && continue
    mkdir -p "$img$(dirname "$lib")"
    cp -L "$lib" "$img$lib"
  done
}

if [ ! -f "$BASE" ]; then
  say "building the base initramfs (kernel $kver)"
  img=$TMP/base
  mkdir -p "$img"/{bin,sbin,dev,proc,sys,run,tmp,etc,var/log,root,usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,usr/share}
  # Debian's merged /usr: the paths ldd reports (/lib/..., /lib64/...) go under usr/.
  ln -s usr/lib "$img/lib"
  ln -s usr/lib64 "$img/lib64"
  ln -s /run "$img/var/run"
  copy_with_libs "$img" "$BUSYBOX" /bin/busybox
  for a in $("$BUSYBOX" --list); do
    # No busybox `ip`: /sbin/ip is iproute2 (and busybox sh runs its own applets first anyway).
    case "$a" in busybox|ip) continue ;; esac
    ln -s busybox "$img/bin/$a"
  done
  ln -s /bin/busybox "$img/usr/bin/env"
  copy_with_libs "$img" /sbin/ip /sbin/ip
  # node without its debug sections (~96 MB).
  copy_with_libs "$img" "$NODE" /usr/bin/node
  objcopy --strip-debug "$NODE" "$img/usr/bin/node"
  if [ -z "$ovs_missing" ]; then
    for b in $OVS_BINS; do copy_with_libs "$img" "$b"; done
    mkdir -p "$img/usr/share/openvswitch" "$img/etc/openvswitch" "$img/var/log/openvswitch"
    cp "$OVS_SCHEMA" "$img/usr/share/openvswitch/"
  else
    echo "$ovs_missing" >"$img/etc/ovs-missing"
  fi
  echo "root:x:0:0:root:/root:/bin/sh" >"$img/etc/passwd"
  echo "root:x:0:" >"$img/etc/group"
  mkdir -p "$img/lib/modules/pipework"
  cp "$KDIR"/modules/*.ko "$KDIR/load.list" "$img/lib/modules/pipework/"
  (cd "$img" && find . -mindepth 1 -print0 | sort -z | "$BUSYBOX" cpio -o -H newc -R 0:0 -0 2>/dev/null) >"$TMP/base.cpio"
  find "$CACHE" -maxdepth 1 -name 'base-*.cpio' -delete
  mv "$TMP/base.cpio" "$BASE"
fi

# --- 5. Project initramfs: dist, addon, bin, runtime node_modules, the tests ------
PROJECT_FILES=$(find dist bin -type f | sort; echo build/Release/pipework.node package.json \
  test/kernel/init test/kernel/vm-tests.js node_modules/netlink/package.json \
  node_modules/node-gyp-build/package.json node_modules/ipaddr.js/package.json)
# shellcheck disable=SC2086
key=$kver-$( (echo "$base_key"; sha256sum $PROJECT_FILES) | sha256sum | cut -c1-16)
INITRD=$CACHE/initrd-$key.cpio
if [ ! -f "$INITRD" ]; then
  say "building the project initramfs"
  img=$TMP/project
  p=$img/pipework
  mkdir -p "$p/build/Release" "$p/node_modules" "$img/test"
  cp -r dist bin package.json "$p/"
  cp build/Release/pipework.node "$p/build/Release/"
  # Runtime dependencies only (no devDependencies, no build inputs).
  mkdir -p "$p/node_modules/netlink/prebuilds"
  cp -r node_modules/netlink/package.json node_modules/netlink/dist "$p/node_modules/netlink/"
  cp -r node_modules/netlink/prebuilds/linux-x64 "$p/node_modules/netlink/prebuilds/"
  cp -r node_modules/node-gyp-build node_modules/ipaddr.js "$p/node_modules/"
  cp test/kernel/init "$img/init"
  chmod 0755 "$img/init"
  cp test/kernel/vm-tests.js "$img/test/"
  (cd "$img" && find . -mindepth 1 -print0 | sort -z | "$BUSYBOX" cpio -o -H newc -R 0:0 -0 2>/dev/null) >"$TMP/project.cpio"
  find "$CACHE" -maxdepth 1 -name 'initrd-*.cpio' -delete
  # The kernel unpacks concatenated newc archives in order: base, then project.
  cat "$BASE" "$TMP/project.cpio" >"$INITRD"
fi
T1=$(date +%s)

# --- 6. Boot and run ----------------------------------------------------------
say "booting $kver under qemu (TCG, timeout ${TIMEOUT}s); image ready in $((T1 - T0)) s"
LOG=$CACHE/last-run.log
set +e
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 \
  -nographic -no-reboot -nic none -monitor none \
  -kernel "$KDIR/vmlinuz" -initrd "$INITRD" \
  -append "console=ttyS0 panic=-1 quiet" </dev/null 2>&1 |
  tr -d '\r' | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$LOG" |
  grep --line-buffered -E '^(PASS|FAIL|SKIP|KERNEL-|MODULE-|# )'
rc=${PIPESTATUS[0]}
set -e
T2=$(date +%s)

passed=$(grep -c '^PASS ' "$LOG" || true)
failed=$(grep -c '^FAIL ' "$LOG" || true)
skipped=$(grep -c '^SKIP ' "$LOG" || true)
problem=""
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  problem="timeout: the VM did not finish within ${TIMEOUT}s"
elif [ "$rc" != 0 ]; then
  problem="qemu exited with status $rc"
elif ! grep -q '^KERNEL-TESTS-DONE ' "$LOG"; then
  problem="no KERNEL-TESTS-DONE line: the VM stopped before the tests finished"
elif grep -q '^MODULE-FAIL ' "$LOG"; then
  problem="a kernel module did not load (MODULE-FAIL above)"
fi
if [ -n "$problem" ] || [ "$failed" != 0 ]; then
  # What was not echoed above: firmware, kernel and /init messages.
  echo "--- other console output, last lines (all of it: $LOG) ---" >&2
  grep -vE '^(PASS|FAIL|SKIP|KERNEL-|MODULE-|# )' "$LOG" | tail -n 30 >&2
fi
[ -z "$problem" ] || say "$problem"
say "boot + tests $((T2 - T1)) s, total $((T2 - T0)) s"
echo "kernel: $passed passed, $failed failed, $skipped skipped"
[ -z "$problem" ] && [ "$failed" = 0 ]
