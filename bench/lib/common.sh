# bench/lib/common.sh: what the shell baselines share. Each sources it first
# thing, with BENCH_NAME (for messages) and BENCH_USAGE set, then calls
# enter_sandbox "$@".

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

# Re-execs the calling script under `unshare --net --mount` (exporting the
# variables named in BENCH_CARRY too) and, inside, refuses to go on unless
# it is in a new, empty network namespace and a new mount namespace.
enter_sandbox() {
  if [ "${PW_BENCH_INNER:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || die "must run as root (it only touches a private netns)"
    PW_BENCH_OUTER_NET=$(readlink /proc/self/ns/net)
    PW_BENCH_OUTER_MNT=$(readlink /proc/self/ns/mnt)
    PW_BENCH_INNER=1
    export PW_BENCH_INNER PW_BENCH_OUTER_NET PW_BENCH_OUTER_MNT ${BENCH_CARRY:-}
    exec unshare --net --mount --propagation private -- /bin/sh "$0" "$@"
  fi
  [ -n "${PW_BENCH_OUTER_NET:-}" ] && [ -n "${PW_BENCH_OUTER_MNT:-}" ] ||
    die "refusing to run: outer namespaces unknown"
  [ "$(readlink /proc/self/ns/net)" != "$PW_BENCH_OUTER_NET" ] ||
    die "refusing to run: not in a private network namespace"
  [ "$(readlink /proc/self/ns/mnt)" != "$PW_BENCH_OUTER_MNT" ] ||
    die "refusing to run: not in a private mount namespace"
  [ "$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')" = "lo " ] ||
    die "refusing to run: network namespace is not empty (expected only lo)"
}

# A private /run (where `ip netns` keeps its mounts; W=/run/pw-bench is the
# work dir) and /sys (showing this netns), gone with the namespaces.
cover_run_and_sys() {
  mount -t tmpfs -o mode=755 pw-bench /run
  W=/run/pw-bench
  mkdir -p /run/netns $W
  mount -t sysfs sysfs /sys
}

# N [PER_BRIDGE] [--verify] [--no-teardown]; other flags go to bench_flag,
# which a script may define (return 0 if it took the flag).
parse_args() {
  N= PB=1000 VERIFY= TEARDOWN=1
  for a in "$@"; do
    case "$a" in
      --verify) VERIFY=1 ;;
      --no-teardown) TEARDOWN= ;;
      -*) command -v bench_flag >/dev/null && bench_flag "$a" || die "usage: $BENCH_USAGE" ;;
      *) if [ -z "$N" ]; then N=$a; else PB=$a; fi ;;
    esac
  done
  case "$N" in ''|*[!0-9]*) die "usage: $BENCH_USAGE" ;; esac
  case "$PB" in ''|*[!0-9]*) die "bad PER_BRIDGE" ;; esac
  [ "$N" -ge 1 ] && [ "$PB" -ge 1 ] || die "N and PER_BRIDGE must be >= 1"
  NBR=$(( (N + PB - 1) / PB ))
  [ "$NBR" -le 256 ] || die "too many bridges (max 256): raise PER_BRIDGE"
}

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.4f", (b - a) / 1e6 / n }'; }

# Setup (untimed): bridge k is br<k> with 10.k.0.1/16.
make_bridges() {
  k=0
  while [ "$k" -lt "$NBR" ]; do
    echo "link add br$k type bridge"
    echo "addr add 10.$k.0.1/16 brd 10.$k.255.255 dev br$k"
    echo "link set br$k up"
    k=$((k + 1))
  done > $W/bridges.batch
  ip -batch $W/bridges.batch
}

# The `ip -batch` lines that make the N containers: named netns c0..c<N-1>.
netns_batch() {
  _i=0
  while [ "$_i" -lt "$N" ]; do echo "netns add c$_i"; _i=$((_i + 1)); done
}

# The N containers, one `ip -batch` timed (its file written before), then the
# first output lines: impl=$1 ... and netns_ms=.
named_netns_timed() {
  netns_batch > $W/netns.batch
  _t0=$(now)
  ip -batch $W/netns.batch || die "ip netns add failed"
  _t1=$(now)
  echo "impl=$1 n=$N bridges=$NBR per_bridge=$PB"
  echo "netns_ms=$(ms "$_t0" "$_t1")"
}

# Verify (untimed): every bridge has its ports up, and container c<i> has
# eth1 up, its address (with `brd` unless VERIFY_NO_BRD) and the default
# route (`ip route show` arguments: VERIFY_ROUTE).
verify_attach() {
  k=0
  while [ "$k" -lt "$NBR" ]; do
    want=$PB; [ "$k" -eq $((NBR - 1)) ] && want=$((N - k * PB))
    got=$(ip -o link show master br$k up | grep -c 'LOWER_UP' || true)
    [ "$got" -eq "$want" ] || die "verify: br$k has $got UP ports, want $want"
    k=$((k + 1))
  done
  # (order matters: after `link show`, a batched `addr show` prints no inet line)
  printf 'route show %s\naddr show dev eth1\nlink show dev eth1\n' "$VERIFY_ROUTE" > $W/verify.batch
  i=0
  while [ "$i" -lt "$N" ]; do
    k=$((i / PB)); h=$((i % PB + 2))
    brd=" brd 10.$k.255.255"; [ -z "${VERIFY_NO_BRD:-}" ] || brd=
    out=$(ip -n c$i -o -4 -batch $W/verify.batch)
    case "$out" in *"eth1@"*"UP,LOWER_UP"*) ;; *) die "verify: c$i: eth1 not up" ;; esac
    case "$out" in *"inet 10.$k.$((h / 256)).$((h % 256))/16$brd "*) ;;
      *) die "verify: c$i: address missing" ;; esac
    case "$out" in *"default via 10.$k.0.1 dev eth1"*) ;; *) die "verify: c$i: no default route" ;; esac
    i=$((i + 1))
  done
  echo "verify=ok bridge_ports=$N containers_checked=$N"
}

# After teardown: only lo and the bridges left.
verify_teardown() {
  left=$(ip -o link show | wc -l)
  [ "$left" -eq $((NBR + 1)) ] || die "verify: $left links left after teardown"
  echo "verify_teardown=ok host_links=$left"
}
