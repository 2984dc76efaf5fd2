#!/bin/sh
# bench/shell-pipework.sh: baseline "what the pipework shell script costs".
#
# For N containers, issue per container the same sequence of `ip` commands
# (one process per step) that the original pipework issues for
#     pipework br<k> -i eth1 <guest> 10.k.x.y/16@10.k.0.1
# when it attaches a container to an existing Linux bridge with a veth pair:
#
#   ip link show br<k> | awk ...              (MTU of the bridge)
#   ip link show veth1pl<n>                   (does the host end exist? no)
#   ip link add name veth1pl<n> mtu M type veth peer name veth1pg<n> mtu M
#   ip link set veth1pl<n> master br<k>
#   ip link set veth1pl<n> up
#   ip link set veth1pg<n> netns <ns>
#   ip netns exec <ns> ip link set veth1pg<n> name eth1
#   ip netns exec <ns> ip -4 addr add 10.k.x.y/16 brd 10.k.255.255 dev eth1
#   ip netns exec <ns> ip -4 route delete default          (fails: none yet)
#   ip netns exec <ns> ip -4 link set eth1 up
#   ip netns exec <ns> ip -4 route get 10.k.0.1             (succeeds, so
#       pipework's "route add <gw>/32 dev eth1" fallback is not issued)
#   ip netns exec <ns> ip -4 route replace default via 10.k.0.1 dev eth1
#
# Differences from the real script, on purpose: pipework finds the container
# (cgroup / docker inspect), symlinks /var/run/netns/<pid>, and, only when
# busybox is installed, runs `busybox ipcalc` to compute the broadcast.  We
# skip those non-`ip` steps, use named netns "c<n>" in place of the
# /var/run/netns/<pid> symlink and <n> in place of the PID in the veth
# names, and always pass `brd` (so the end state equals the other
# baselines).  For the real script, see bench/pipework-original.sh.
#
# Teardown (timed): one `ip link del veth1pl<n>` process per container.
#
# Usage: bench/shell-pipework.sh N [PER_BRIDGE] [--verify] [--no-teardown]
# Output: key=value lines (impl=..., netns_ms=, attach_ms= per_container_ms=,
#         verify=ok, teardown_ms= teardown_per_container_ms=).
#
# SAFETY: re-execs itself under `unshare --net --mount` and refuses to run
# unless it ended up in a new, empty network namespace and a new mount
# namespace.  /run (where `ip netns` keeps its mounts) and /sys are
# re-mounted privately inside that mount namespace, so nothing is left on
# the host; everything vanishes when the script exits.
set -eu

die() { echo "shell-pipework: $*" >&2; exit 1; }

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
mkdir -p /run/netns /run/pw-bench
mount -t sysfs sysfs /sys
W=/run/pw-bench

N=
PB=1000
VERIFY=
TEARDOWN=1
for a in "$@"; do
  case "$a" in
    --verify) VERIFY=1 ;;
    --no-teardown) TEARDOWN= ;;
    -*) die "usage: $0 N [PER_BRIDGE] [--verify] [--no-teardown]" ;;
    *) if [ -z "$N" ]; then N=$a; else PB=$a; fi ;;
  esac
done
case "$N" in ''|*[!0-9]*) die "usage: $0 N [PER_BRIDGE] [--verify] [--no-teardown]" ;; esac
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
  ip link add br$k type bridge
  ip addr add 10.$k.0.1/16 brd 10.$k.255.255 dev br$k
  ip link set br$k up
  k=$((k + 1))
done

# ---- containers: N named netns (one ip -batch) ----
i=0
while [ "$i" -lt "$N" ]; do echo "netns add c$i"; i=$((i + 1)); done > $W/netns.batch
t0=$(now)
ip -batch $W/netns.batch
t1=$(now)
echo "impl=shell-pipework n=$N bridges=$NBR per_bridge=$PB"
echo "netns_ms=$(ms "$t0" "$t1")"

# ---- attach (timed): the pipework ip sequence, one process per step ----
t0=$(now)
i=0
while [ "$i" -lt "$N" ]; do
  k=$((i / PB)); h=$((i % PB + 2))
  IFNAME=br$k NS=c$i
  IPADDR=10.$k.$((h / 256)).$((h % 256))/16 GATEWAY=10.$k.0.1 BROADCAST=10.$k.255.255
  LOCAL_IFNAME=veth1pl$i GUEST_IFNAME=veth1pg$i
  MTU=$(ip link show "$IFNAME" | awk '$4=="mtu"{print $5}')
  if ip link show "$LOCAL_IFNAME" >/dev/null 2>&1; then
    die "$LOCAL_IFNAME already exists"
  fi
  ip link add name "$LOCAL_IFNAME" mtu "$MTU" type veth peer name "$GUEST_IFNAME" mtu "$MTU"
  ip link set "$LOCAL_IFNAME" master "$IFNAME"
  ip link set "$LOCAL_IFNAME" up
  ip link set "$GUEST_IFNAME" netns "$NS"
  ip netns exec "$NS" ip link set "$GUEST_IFNAME" name eth1
  ip netns exec "$NS" ip -4 addr add "$IPADDR" brd "$BROADCAST" dev eth1
  ip netns exec "$NS" ip -4 route delete default >/dev/null 2>&1 || true
  ip netns exec "$NS" ip -4 link set eth1 up
  ip netns exec "$NS" ip -4 route get "$GATEWAY" >/dev/null 2>&1 ||
    ip netns exec "$NS" ip -4 route add "$GATEWAY/32" dev eth1
  ip netns exec "$NS" ip -4 route replace default via "$GATEWAY" dev eth1
  i=$((i + 1))
done
t1=$(now)
echo "attach_ms=$(ms "$t0" "$t1") per_container_ms=$(per "$t0" "$t1" "$N")"

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
    case "$out" in *"default via 10.$k.0.1 dev eth1"*) ;; *) die "verify: c$i: no default route" ;; esac
    i=$((i + 1))
  done
  echo "verify=ok bridge_ports=$N containers_checked=$N"
fi

# ---- teardown (timed): delete every host-side veth ----
[ "$TEARDOWN" ] || exit 0
t0=$(now)
i=0
while [ "$i" -lt "$N" ]; do
  ip link del veth1pl$i
  i=$((i + 1))
done
t1=$(now)
echo "teardown_ms=$(ms "$t0" "$t1") teardown_per_container_ms=$(per "$t0" "$t1" "$N") teardown_mode=per-veth"
if [ "$VERIFY" ]; then
  left=$(ip -o link show | wc -l)
  [ "$left" -eq $((NBR + 1)) ] || die "verify: $left links left after teardown"
  echo "verify_teardown=ok host_links=$left"
fi
# the netns, mounts and bridges vanish with this process's namespaces
