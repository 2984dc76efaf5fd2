"""bench/lib/pyroute2_bench.py: the per-container work done with pyroute2.

Run by bench/lib/worker.js inside its private namespaces, where the bridges
br<k> and the named netns c<i> already exist (/run/netns is a private tmpfs).

  python3 pyroute2_bench.py attach N PER_BRIDGE GROUP
  python3 pyroute2_bench.py teardown N GROUP

attach, per container, the usual pyroute2 way with one process and no
NetNS() helper process:
  host IPRoute:  link('add') veth v<i>, peer eth1 born in netns c<i>
                 (peer net_ns_fd), master br<k>, state up, group GROUP
  container:     pushns(c<i>) + IPRoute() + popns() (a socket inside the
                 netns), link_lookup(eth1), addr('add') with broadcast,
                 link('set', state up), route('replace') default via the
                 gateway, proto boot
teardown: one link('del', group=GROUP) (the kernel's batched unregister).
Times exclude interpreter start and imports; output is key=value lines.
"""
import sys
import time

from pyroute2 import IPRoute, netns


def addr_of(i, pb):
    k, h = i // pb, i % pb + 2
    return k, '10.%d.%d.%d' % (k, h >> 8, h & 255)


def attach(n, pb, group):
    ipr = IPRoute()
    bridges = {}
    t0 = time.monotonic()
    for i in range(n):
        k, addr = addr_of(i, pb)
        br = bridges.get(k)
        if br is None:
            br = bridges[k] = ipr.link_lookup(ifname='br%d' % k)[0]
        ipr.link('add', ifname='v%d' % i, kind='veth',
                 peer={'ifname': 'eth1', 'net_ns_fd': '/run/netns/c%d' % i},
                 master=br, state='up', group=group)
        netns.pushns('c%d' % i)
        try:
            c = IPRoute()
        finally:
            netns.popns()
        try:
            idx = c.link_lookup(ifname='eth1')[0]
            c.addr('add', index=idx, address=addr, prefixlen=16,
                   broadcast='10.%d.255.255' % k)
            c.link('set', index=idx, state='up')
            c.route('replace', dst='0.0.0.0/0', gateway='10.%d.255.254' % k,
                    oif=idx, proto='boot')
        finally:
            c.close()
    t1 = time.monotonic()
    ipr.close()
    ms = (t1 - t0) * 1e3
    print('attach_ms=%.1f per_container_ms=%.4f' % (ms, ms / n))


def teardown(n, group):
    ipr = IPRoute()
    t0 = time.monotonic()
    ipr.link('del', group=group)
    t1 = time.monotonic()
    ipr.close()
    ms = (t1 - t0) * 1e3
    print('teardown_ms=%.1f teardown_per_container_ms=%.4f teardown_mode=group'
          % (ms, ms / n))


if __name__ == '__main__':
    if sys.argv[1] == 'attach':
        attach(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == 'teardown':
        teardown(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit('usage: pyroute2_bench.py attach N PB GROUP | teardown N GROUP')
    sys.stdout.flush()
