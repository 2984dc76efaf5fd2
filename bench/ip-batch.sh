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
# Output: key=value lines, same keys as bench/floor.c.
#
# SAFETY: re-execs itself under `unshare --net --mount` and refuses to run
# unless it ended up in a new, empty network namespace and a new mount
# namespace.  /run and /sys are re-mounted privately inside that mount
# namespace; nothing is left on the host.
set -eu

die() { echo "ip-batch: $*" >&2; exit 1; }

if [ "${PW_BENCH_INNER:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || die "must run as root (it only touches a private netns)"
  PW_BENCH_OUTER_NET=$(readlink /proc/self/ns/net)
  PW_BENCH_OUTER_MNT=$(readlink /proc/self/ns/mnt)
  PW_BENCH_INNER=1
  export PW_BENCH_INNER PW_BENCH_OUTER_NET PW_BENCH_OUTER_MNT
  exec unshare --net --mount --propagation private -- /bin/sh "$0" "$@"
fi

# ---- inside the throwaway namespaces: check before touching anything ----
[ -n "${PW_BENCH_OUTER_NET:-}" ] && [ -n "${PW_BENCH_OUTER_MNT:-}" ] ||
  die "refusing to run: outer namespaces unknown"
[ "$(readlink /proc/self/ns/net)" != "$PW_BENCH_OUTER_NET" ] ||
  die "refusing to run: not in a private network namespace"
[ "$(readlink /proc/self/ns/mnt)" != "$PW_BENCH_OUTER_MNT" ] ||
  die "refusing to run: not in a private mount namespace"
[ "$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')" = "lo " ] ||
  die "refusing to run: network namespace is not empty (expected only lo)"
mount -t tmpfs -o mode=755 pw-bench /run
mkdir -p /run/netns /run/pw-bench/ns
mount -t sysfs sysfs /sys
W=/run/pw-bench

N=
PB=1000
VERIFY=
GROUP=
TDMODE=per-veth
TEARDOWN=1
for a in "$@"; do
  case "$a" in
    --verify) VERIFY=1 ;;
    --group-teardown) GROUP=" group 4242" TDMODE=group ;;
    --no-teardown) TEARDOWN= ;;
    -*) die "usage: $0 N [PER_BRIDGE] [--verify] [--group-teardown] [--no-teardown]" ;;
    *) if [ -z "$N" ]; then N=$a; else PB=$a; fi ;;
  esac
done
case "$N" in ''|*[!0-9]*) die "usage: $0 N [PER_BRIDGE] [--verify]" ;; esac
case "$PB" in ''|*[!0-9]*) die "bad PER_BRIDGE" ;; esac
[ "$N" -ge 1 ] && [ "$PB" -ge 1 ] || die "N and PER_BRIDGE must be >= 1"
NBR=$(( (N + PB - 1) / PB ))
[ "$NBR" -le 256 ] || die "too many bridges (max 256): raise PER_BRIDGE"

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.4f", (b - a) / 1e6 / n }'; }

# ---- setup (untimed): bridges with their gateway address ----
k=0
while [ "$k" -lt "$NBR" ]; do
  echo "link add br$k type bridge"
  echo "addr add 10.$k.0.1/16 brd 10.$k.255.255 dev br$k"
  echo "link set br$k up"
  k=$((k + 1))
done > $W/bridges.batch
ip -batch $W/bridges.batch

# ---- batch files (untimed) ----
i=0
: > $W/host.batch
: > $W/teardown.batch
: > $W/netns.batch
while [ "$i" -lt "$N" ]; do
  k=$((i / PB)); h=$((i % PB + 2))
  echo "netns add c$i" >> $W/netns.batch
  echo "link add v$i$GROUP master br$k up type veth peer name eth1 netns c$i" >> $W/host.batch
  printf 'addr add 10.%d.%d.%d/16 brd 10.%d.255.255 dev eth1\nlink set eth1 up\nroute replace default via 10.%d.0.1 dev eth1 proto boot\n' \
    "$k" $((h / 256)) $((h % 256)) "$k" "$k" > $W/ns/c$i
  [ "$GROUP" ] || echo "link del v$i" >> $W/teardown.batch
  i=$((i + 1))
done

# ---- containers: N named netns (one ip -batch) ----
t0=$(now)
ip -batch $W/netns.batch
t1=$(now)
echo "impl=ip-batch n=$N bridges=$NBR per_bridge=$PB"
echo "netns_ms=$(ms "$t0" "$t1")"

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
if [ "$VERIFY" ]; then
  k=0
  while [ "$k" -lt "$NBR" ]; do
    want=$PB; [ "$k" -eq $((NBR - 1)) ] && want=$((N - k * PB))
    got=$(ip -o link show master br$k up | grep -c 'LOWER_UP' || true)
    [ "$got" -eq "$want" ] || die "verify: br$k has $got UP ports, want $want"
    k=$((k + 1))
  done
  # (order matters: after `link show`, a batched `addr show` prints no inet line)
  printf 'route show default proto boot\naddr show dev eth1\nlink show dev eth1\n' > $W/verify.batch
  i=0
  while [ "$i" -lt "$N" ]; do
    k=$((i / PB)); h=$((i % PB + 2))
    out=$(ip -n c$i -o -4 -batch $W/verify.batch)
    case "$out" in *"eth1@"*"UP,LOWER_UP"*) ;; *) die "verify: c$i: eth1 not up" ;; esac
    case "$out" in *"inet 10.$k.$((h / 256)).$((h % 256))/16 brd 10.$k.255.255 "*) ;;
      *) die "verify: c$i: address missing" ;; esac
    case "$out" in *"default via 10.$k.0.1 dev eth1"*) ;;
      *) die "verify: c$i: no default route" ;; esac
    i=$((i + 1))
  done
  echo "verify=ok bridge_ports=$N containers_checked=$N"
fi

# ---- teardown (timed): delete every host-side veth, one batch ----
[ "$TEARDOWN" ] || exit 0
[ -z "$GROUP" ] || echo "link del group 4242" > $W/teardown.batch
t0=$(now)
ip -batch $W/teardown.batch
t1=$(now)
echo "teardown_ms=$(ms "$t0" "$t1") teardown_per_container_ms=$(per "$t0" "$t1" "$N") teardown_mode=$TDMODE"
if [ "$VERIFY" ]; then
  left=$(ip -o link show | wc -l)
  [ "$left" -eq $((NBR + 1)) ] || die "verify: $left links left after teardown"
  echo "verify_teardown=ok host_links=$left"
fi
# the netns, mounts and bridges vanish with this process's namespaces
