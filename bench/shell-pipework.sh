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
BENCH_NAME=shell-pipework
BENCH_USAGE="$0 N [PER_BRIDGE] [--verify] [--no-teardown]"
. "$(dirname "$0")/lib/common.sh"
enter_sandbox "$@"
cover_run_and_sys
parse_args "$@"
make_bridges

named_netns_timed shell-pipework

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
if [ "$VERIFY" ]; then VERIFY_ROUTE='default proto boot' verify_attach; fi

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
[ -z "$VERIFY" ] || verify_teardown
# the netns, mounts and bridges vanish with this process's namespaces
