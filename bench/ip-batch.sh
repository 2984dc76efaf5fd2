#!/bin/sh
# bench/ip-batch.sh: baseline "best you can do with iproute2 from a shell".
#
# Same per-container work as bench/floor.c, expressed as `ip -batch` files:
#
#   one batch for all host-side commands (one process in total):
#     link add v<n> master br<k> up type veth peer name eth1 netns c<n>
#   one batch per container namespace (`ip -n c<n> -batch FILE`, one
#   process per container):
#     addr add 10.k.x.y/16 brd 10.k.255.255 dev eth1
#     link set eth1 up
#     route replace default via 10.k.0.1 dev eth1 proto boot
#
# The batch files are written (untimed) to a tmpfs before the clock starts;
# the attach figure is the time of the host batch plus the N namespace
# batches.  Teardown (timed) is one more batch: `link del v<n>` per
# container.
#
# Usage: bench/ip-batch.sh N [PER_BRIDGE] [--verify] [--group-teardown] [--no-teardown]
#   --group-teardown  the host ends get `group 4242` when created and teardown
#                     is one `link del group 4242` (a single batched
#                     unregister in the kernel) instead of one del per veth
#   --no-teardown     skip teardown: everything goes with the namespaces
#   --host-addrgen-none  each `link add` line is followed by
#                     `link set v<n> addrgenmode none` (no IPv6 address on the
#                     bridge ports, as our library does by default)
# Output: key=value lines, same keys as bench/floor.c.
#
# SAFETY: re-execs itself under `unshare --net --mount` and refuses to run
# unless it ended up in a new, empty network namespace and a new mount
# namespace.  /run and /sys are re-mounted privately inside that mount
# namespace; nothing is left on the host.
set -eu
BENCH_NAME=ip-batch
BENCH_USAGE="$0 N [PER_BRIDGE] [--verify] [--group-teardown] [--host-addrgen-none] [--no-teardown]"
. "$(dirname "$0")/lib/common.sh"
GROUP=
TDMODE=per-veth
ADDRGEN=
bench_flag() {
  case "$1" in
    --group-teardown) GROUP=" group 4242" TDMODE=group ;;
    --host-addrgen-none) ADDRGEN=1 ;;
    *) return 1 ;;
  esac
}
enter_sandbox "$@"
cover_run_and_sys
mkdir -p $W/ns
parse_args "$@"
make_bridges

# ---- batch files (untimed) ----
i=0
: > $W/host.batch
: > $W/teardown.batch
while [ "$i" -lt "$N" ]; do
  k=$((i / PB)); h=$((i % PB + 2))
  echo "link add v$i$GROUP master br$k up type veth peer name eth1 netns c$i" >> $W/host.batch
  [ -z "$ADDRGEN" ] || echo "link set v$i addrgenmode none" >> $W/host.batch
  printf 'addr add 10.%d.%d.%d/16 brd 10.%d.255.255 dev eth1\nlink set eth1 up\nroute replace default via 10.%d.0.1 dev eth1 proto boot\n' \
    "$k" $((h / 256)) $((h % 256)) "$k" "$k" > $W/ns/c$i
  [ "$GROUP" ] || echo "link del v$i" >> $W/teardown.batch
  i=$((i + 1))
done

named_netns_timed ip-batch

# ---- attach (timed) ----
t0=$(now)
ip -batch $W/host.batch
tm=$(now)
i=0
while [ "$i" -lt "$N" ]; do
  ip -n c$i -batch $W/ns/c$i
  i=$((i + 1))
done
t1=$(now)
echo "attach_ms=$(ms "$t0" "$t1") per_container_ms=$(per "$t0" "$t1" "$N") host_batch_ms=$(ms "$t0" "$tm") ns_batches_ms=$(ms "$tm" "$t1")"

# ---- verify (untimed) ----
if [ "$VERIFY" ]; then VERIFY_ROUTE='default proto boot' verify_attach; fi

# ---- teardown (timed): delete every host-side veth, one batch ----
[ "$TEARDOWN" ] || exit 0
[ -z "$GROUP" ] || echo "link del group 4242" > $W/teardown.batch
t0=$(now)
ip -batch $W/teardown.batch
t1=$(now)
echo "teardown_ms=$(ms "$t0" "$t1") teardown_per_container_ms=$(per "$t0" "$t1" "$N") teardown_mode=$TDMODE"
[ -z "$VERIFY" ] || verify_teardown
# the netns, mounts and bridges vanish with this process's namespaces
