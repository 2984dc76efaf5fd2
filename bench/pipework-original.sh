#!/bin/sh
# bench/pipework-original.sh: run the ORIGINAL pipework script N times.
#
#   PIPEWORK_SH=/path/to/pipework bench/pipework-original.sh N [PER_BRIDGE] [--verify] [--no-teardown]
#
# Per container it runs (timed, one after the other):
#   sh "$PIPEWORK_SH" br<k> -i eth1 <pid> 10.k.x.y/16@10.k.0.1
# where <pid> is a `sleep` started with `ip netns exec c<n>` (untimed) so
# that /proc/<pid>/ns/net is the container's netns.
#
# How the original finds the PID: on a cgroup2 system it skips the cgroup
# lookup and asks Docker (`docker inspect --format '{{ .State.Pid }}' NAME`).
# There is no Docker daemon here, so a 5-line `docker` shim is put first in
# PATH (in a private tmpfs); it answers .State.Pid with NAME itself (we pass
# the PID as the guest name), and .ID / .Name with made-up values.  Those
# three extra processes per container are part of what pipework costs with
# Docker, so they stay in the timing.  arping is absent, so pipework prints
# "Warning: arping not found ..." (on stdout; counted, not shown).  If
# busybox is absent it adds the address without `brd`, so the kernel
# computes no broadcast; --verify accepts that (see below).
#
# Teardown (timed): one `ip link del veth1pl<pid>` per container (pipework
# has no detach command).  The sleepers are then killed by PID.
#
# SAFETY: same as the other scripts: re-execs under `unshare --net --mount`,
# refuses to run unless in a new, empty netns and a new mount ns, and mounts
# private tmpfs/sysfs over /run and /sys there (pipework writes
# /var/run/netns/<pid> symlinks: they land in that tmpfs).  The sleepers
# are our only background processes; they are killed by PID on exit, and
# in any case time out by themselves.
set -eu

die() { echo "pipework-original: $*" >&2; exit 1; }

if [ "${PW_BENCH_INNER:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || die "must run as root (it only touches a private netns)"
  [ -n "${PIPEWORK_SH:-}" ] && [ -r "$PIPEWORK_SH" ] ||
    die "set PIPEWORK_SH to the original pipework script"
  PIPEWORK_SH=$(readlink -f "$PIPEWORK_SH")
  PW_BENCH_OUTER_NET=$(readlink /proc/self/ns/net)
  PW_BENCH_OUTER_MNT=$(readlink /proc/self/ns/mnt)
  PW_BENCH_INNER=1
  export PW_BENCH_INNER PW_BENCH_OUTER_NET PW_BENCH_OUTER_MNT PIPEWORK_SH
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
# read the script before /run gets covered (in case it lives there)
PIPEWORK_TEXT=$(cat "$PIPEWORK_SH")
mount -t tmpfs -o mode=755 pw-bench /run
mkdir -p /run/netns /run/pw-bench/bin
mount -t sysfs sysfs /sys        # pipework reads /sys/class/net/<bridge>
W=/run/pw-bench
PIPEWORK=$W/pipework
printf '%s\n' "$PIPEWORK_TEXT" > "$PIPEWORK"
unset PIPEWORK_TEXT

cat > $W/bin/docker <<'EOF'
#!/bin/sh
# pipework-bench shim: `docker inspect --format=TEMPLATE NAME`, NAME is a PID
case "$2" in
  *State.Pid*) echo "$3" ;;
  *.ID*) echo "pwbench$3" ;;
  *.Name*) echo "/pwbench$3" ;;
  *) exit 1 ;;
esac
EOF
chmod +x $W/bin/docker

N=
PB=1000
VERIFY=
TEARDOWN=1
for a in "$@"; do
  case "$a" in
    --verify) VERIFY=1 ;;
    --no-teardown) TEARDOWN= ;;
    -*) die "usage: PIPEWORK_SH=... $0 N [PER_BRIDGE] [--verify] [--no-teardown]" ;;
    *) if [ -z "$N" ]; then N=$a; else PB=$a; fi ;;
  esac
done
case "$N" in ''|*[!0-9]*) die "usage: PIPEWORK_SH=... $0 N [PER_BRIDGE] [--verify] [--no-teardown]" ;; esac
case "$PB" in ''|*[!0-9]*) die "bad PER_BRIDGE" ;; esac
[ "$N" -ge 1 ] && [ "$PB" -ge 1 ] || die "N and PER_BRIDGE must be >= 1"
NBR=$(( (N + PB - 1) / PB ))
[ "$NBR" -le 256 ] || die "too many bridges (max 256): raise PER_BRIDGE"

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.4f", (b - a) / 1e6 / n }'; }

PIDS=
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  PIDS=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- setup (untimed): bridges with their gateway address ----
k=0
while [ "$k" -lt "$NBR" ]; do
  ip link add br$k type bridge
  ip addr add 10.$k.0.1/16 brd 10.$k.255.255 dev br$k
  ip link set br$k up
  k=$((k + 1))
done

# ---- containers: N named netns + one sleeper in each ----
i=0
while [ "$i" -lt "$N" ]; do echo "netns add c$i"; i=$((i + 1)); done > $W/netns.batch
t0=$(now)
ip -batch $W/netns.batch
i=0
: > $W/pids
while [ "$i" -lt "$N" ]; do
  ip netns exec c$i sleep 1800 &       # `ip netns exec` execs sleep: same PID
  p=$!
  PIDS="$PIDS $p"
  echo "$p" >> $W/pids
  i=$((i + 1))
done
# wait until every sleeper has entered its netns
i=0
for p in $(cat $W/pids); do
  want=$(stat -L -c %i /run/netns/c$i)
  tries=0
  while [ "$(stat -L -c %i /proc/$p/ns/net 2>/dev/null || echo x)" != "$want" ]; do
    tries=$((tries + 1))
    [ "$tries" -lt 500 ] || die "sleeper $p never entered c$i"
    sleep 0.01
  done
  i=$((i + 1))
done
t1=$(now)
echo "impl=pipework-original n=$N bridges=$NBR per_bridge=$PB"
echo "netns_ms=$(ms "$t0" "$t1") netns_includes_sleepers=1"

# ---- attach (timed): the real script, once per container ----
OLDPATH=$PATH
export PATH="$W/bin:$PATH"
warn=0
t0=$(now)
i=0
for p in $(cat $W/pids); do
  k=$((i / PB)); h=$((i % PB + 2))
  out=$(sh "$PIPEWORK" br$k -i eth1 "$p" "10.$k.$((h / 256)).$((h % 256))/16@10.$k.0.1") ||
    die "pipework failed for container $i (pid $p): $out"
  case "$out" in *arping*) warn=$((warn + 1)) ;; esac
  i=$((i + 1))
done
t1=$(now)
export PATH="$OLDPATH"
echo "attach_ms=$(ms "$t0" "$t1") per_container_ms=$(per "$t0" "$t1" "$N") arping_warnings=$warn"

# ---- verify (untimed) ----
if [ "$VERIFY" ]; then
  k=0
  while [ "$k" -lt "$NBR" ]; do
    want=$PB; [ "$k" -eq $((NBR - 1)) ] && want=$((N - k * PB))
    got=$(ip -o link show master br$k up | grep -c 'LOWER_UP' || true)
    [ "$got" -eq "$want" ] || die "verify: br$k has $got UP ports, want $want"
    k=$((k + 1))
  done
  printf 'route show default\naddr show dev eth1\nlink show dev eth1\n' > $W/verify.batch
  i=0
  for p in $(cat $W/pids); do
    k=$((i / PB)); h=$((i % PB + 2))
    out=$(ip -n c$i -o -4 -batch $W/verify.batch)
    case "$out" in *"eth1@"*"UP,LOWER_UP"*) ;; *) die "verify: c$i: eth1 not up" ;; esac
    # brd only when busybox ipcalc was available to pipework
    case "$out" in *"inet 10.$k.$((h / 256)).$((h % 256))/16 "*) ;;
      *) die "verify: c$i: address missing" ;; esac
    case "$out" in *"default via 10.$k.0.1 dev eth1"*) ;; *) die "verify: c$i: no default route" ;; esac
    i=$((i + 1))
  done
  echo "verify=ok bridge_ports=$N containers_checked=$N"
fi

# ---- teardown (timed): delete every host-side veth ----
[ "$TEARDOWN" ] || { cleanup; exit 0; }
t0=$(now)
for p in $(cat $W/pids); do
  ip link del "veth1pl$p"
done
t1=$(now)
echo "teardown_ms=$(ms "$t0" "$t1") teardown_per_container_ms=$(per "$t0" "$t1" "$N") teardown_mode=per-veth"
if [ "$VERIFY" ]; then
  left=$(ip -o link show | wc -l)
  [ "$left" -eq $((NBR + 1)) ] || die "verify: $left links left after teardown"
  echo "verify_teardown=ok host_links=$left"
fi
cleanup
