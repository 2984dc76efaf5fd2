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
BENCH_NAME=pipework-original
BENCH_USAGE="PIPEWORK_SH=... $0 N [PER_BRIDGE] [--verify] [--no-teardown]"
. "$(dirname "$0")/lib/common.sh"
if [ "${PW_BENCH_INNER:-}" != 1 ]; then
  [ -n "${PIPEWORK_SH:-}" ] && [ -r "$PIPEWORK_SH" ] ||
    die "set PIPEWORK_SH to the original pipework script"
  PIPEWORK_SH=$(readlink -f "$PIPEWORK_SH")
  BENCH_CARRY=PIPEWORK_SH
fi
enter_sandbox "$@"
# read the script before /run gets covered (in case it lives there)
PIPEWORK_TEXT=$(cat "$PIPEWORK_SH")
cover_run_and_sys               # pipework reads /sys/class/net/<bridge>
mkdir -p $W/bin
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

parse_args "$@"

PIDS=
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  PIDS=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_bridges

# ---- containers: N named netns + one sleeper in each ----
netns_batch > $W/netns.batch
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
# (no `brd`: pipework passes one only when busybox ipcalc is there to compute it)
if [ "$VERIFY" ]; then VERIFY_ROUTE=default VERIFY_NO_BRD=1 verify_attach; fi

# ---- teardown (timed): delete every host-side veth ----
[ "$TEARDOWN" ] || { cleanup; exit 0; }
t0=$(now)
for p in $(cat $W/pids); do
  ip link del "veth1pl$p"
done
t1=$(now)
echo "teardown_ms=$(ms "$t0" "$t1") teardown_per_container_ms=$(per "$t0" "$t1" "$N") teardown_mode=per-veth"
[ -z "$VERIFY" ] || verify_teardown
cleanup
