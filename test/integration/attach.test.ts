// Real links in real (throwaway) namespaces: each test makes a "host" netns
// and container netns, attaches with the library, and reads the result back
// with `ip -j`, then proves connectivity with ping.
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Session, PipeworkError, NetlinkError } from '../../src/index';
import { inNetns, ip, ipj, kernelHasKind, link, netnsSet, ping, waitInNetns } from '../helpers/kernel';
import { RtnlSocket } from '../../src/netlink/socket';
import { dumpLinks, getLinkByName, parseLink } from '../../src/netlink/link';

let ns: ReturnType<typeof netnsSet>;
let host: number;
let guests: number[];
let session: Session;

beforeEach(() => {
  ns = netnsSet(4);
  [host, ...guests] = ns.fds;
  session = new Session({ hostNetns: host });
});
afterEach(() => {
  session.close();
  ns.close();
});

/** A veth pair in the host netns whose end `name` plays a physical NIC. */
function fakePhysical(name: string, mtu = 1500) {
  ip(host, 'link', 'add', name, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', `${name}p`);
  ip(host, 'link', 'set', name, 'up');
  ip(host, 'link', 'set', `${name}p`, 'up');
}

describe('veth on a Linux bridge', () => {
  it('creates the bridge, both veth ends, addresses and routes, and the containers reach each other and the gateway', async () => {
    const r1 = await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'], gateway: '10.66.0.1' });
    await session.attach({ fd: guests[1] }, { hostInterface: 'br1', addresses: ['10.66.0.3/24'], gateway: '10.66.0.1', mac: 'U:myhost.foo.com' });
    ip(host, 'addr', 'add', '10.66.0.1/24', 'dev', 'br1');

    const br = link(host, 'br1')!;
    expect(br.linkinfo?.info_kind).toBe('bridge');
    expect(br.flags).toContain('UP');
    const ports = ipj<any[]>(host, 'link', 'show', 'master', 'br1').map((l) => l.ifname);
    expect(ports).toHaveLength(2);
    expect(ports).toContain(r1.hostInterface);
    expect(r1.hostInterface!.length).toBeLessThanOrEqual(15);

    const eth1 = link(guests[1], 'eth1')!;
    expect(eth1.linkinfo?.info_kind).toBe('veth');
    expect(eth1.flags).toContain('UP');
    expect(eth1.address).toBe('02:72:6c:cd:9b:8d');
    const addrs = ipj<any[]>(guests[1], '-4', 'addr', 'show', 'dev', 'eth1')[0].addr_info;
    expect(addrs).toEqual([expect.objectContaining({ local: '10.66.0.3', prefixlen: 24, broadcast: '10.66.0.255' })]);
    const routes = ipj<any[]>(guests[1], '-d', 'route', 'show', 'default');
    expect(routes).toEqual([expect.objectContaining({ dst: 'default', gateway: '10.66.0.1', dev: 'eth1', protocol: 'boot' })]);

    expect(ping(guests[0], '10.66.0.3')).toBe(true);
    expect(ping(guests[1], '10.66.0.1')).toBe(true);
  });

  it('makes both veth ends with one queue each way (the kernel then has none to take away under its lock)', async () => {
    const r = await session.attach({ fd: guests[0] }, { hostInterface: 'br1' });
    for (const l of [link(host, r.hostInterface!)!, link(guests[0], 'eth1')!])
      expect(l).toMatchObject({ num_tx_queues: 1, num_rx_queues: 1 });
  });

  it('copies the bridge MTU to both ends and uses the -l name', async () => {
    ip(host, 'link', 'add', 'br0', 'mtu', '1400', 'type', 'bridge');
    const r = await session.attach({ fd: guests[0] }, { hostInterface: 'br0', hostName: 'vhost0', addresses: ['0/0'] });
    expect(r.hostInterface).toBe('vhost0');
    expect(link(host, 'vhost0')).toMatchObject({ mtu: 1400, master: 'br0' });
    expect(link(guests[0], 'eth1')).toMatchObject({ mtu: 1400 });
    expect(link(guests[0], 'eth1')!.flags).toContain('UP');
    expect(ipj<any[]>(guests[0], '-4', 'addr', 'show', 'dev', 'eth1')).toEqual([]);
  });

  it('names the host end v<cif>pl<pid> for a PID guest', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn('nsenter', [`--net=/proc/${process.pid}/fd/${guests[0]}`, 'sleep', '30'], { stdio: 'ignore' });
    await waitInNetns(child.pid!, guests[0]);
    try {
      const r = await session.attach(child.pid!, { hostInterface: 'br1', containerInterface: 'eth2', addresses: ['10.1.0.2/24'] });
      expect(r.hostInterface).toBe(`veth2pl${child.pid}`);
      expect(link(guests[0], 'eth2')).toBeDefined();
    } finally {
      child.kill();
    }
  });

  it('refuses a -l link that exists and is up, and recreates one that is down', async () => {
    ip(host, 'link', 'add', 'br1', 'type', 'bridge');
    ip(host, 'link', 'add', 'vold', 'type', 'veth', 'peer', 'name', 'voldp');
    ip(host, 'link', 'set', 'vold', 'up');
    await expect(session.attach({ fd: guests[0] }, { hostInterface: 'br1', hostName: 'vold' })).rejects.toThrow('Link vold exists and is up');
    ip(host, 'link', 'set', 'vold', 'down');
    await session.attach({ fd: guests[0] }, { hostInterface: 'br1', hostName: 'vold' });
    expect(link(host, 'vold')).toMatchObject({ master: 'br1' });
    expect(link(host, 'voldp')).toBeUndefined();
  });

  it('adds a host route for an off-link IPv4 gateway, and IPv6 with a /128 one', async () => {
    await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'], gateway: '10.77.0.1' });
    expect(ipj<any[]>(guests[0], 'route', 'show', '10.77.0.1/32')).toEqual([expect.objectContaining({ dev: 'eth1', scope: 'link' })]);
    expect(ipj<any[]>(guests[0], 'route', 'show', 'default')[0]).toMatchObject({ gateway: '10.77.0.1' });

    await session.attach({ fd: guests[1] }, { hostInterface: 'br1', addresses: ['2001:db8::2/64'], gateway: '2001:db8:1::1', nodad: true });
    const a6 = ipj<any[]>(guests[1], '-6', 'addr', 'show', 'dev', 'eth1', 'scope', 'global')[0].addr_info;
    expect(a6).toEqual([expect.objectContaining({ local: '2001:db8::2', prefixlen: 64 })]);
    expect(a6[0].tentative).toBeUndefined();
    expect(ipj<any[]>(guests[1], '-6', 'route', 'show', '2001:db8:1::1/128')).toEqual([expect.objectContaining({ dev: 'eth1' })]);
    expect(ipj<any[]>(guests[1], '-6', 'route', 'show', 'default')[0]).toMatchObject({ gateway: '2001:db8:1::1', dev: 'eth1' });
  });

  it('announces the new address with a gratuitous ARP', async () => {
    await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'] });
    inNetns(guests[0], 'sysctl', ['-qw', 'net.ipv4.conf.eth1.arp_accept=1']);
    const r = await session.attach({ fd: guests[1] }, { hostInterface: 'br1', addresses: ['10.66.0.3/24'] });
    // No traffic but the announcement could have taught guest 0 this entry (it comes once the link has carrier).
    const learnt = () => ipj<any[]>(guests[0], 'neigh', 'show', '10.66.0.3');
    for (let i = 0; i < 100 && learnt().length === 0; i++) await new Promise((res) => setTimeout(res, 50));
    const neigh = learnt();
    expect(neigh).toEqual([expect.objectContaining({ lladdr: r.containerInterface.mac })]);
    // arp_notify was only on while the announcement was sent.
    expect(inNetns(guests[1], 'sysctl', ['-n', 'net.ipv4.conf.eth1.arp_notify']).trim()).toBe('0');
  });
});

describe('IPv6 on the veth ends', () => {
  const inet6 = (fd: number, dev: string): { scope: string; local: string }[] =>
    ipj<any[]>(fd, '-6', 'addr', 'show', 'dev', dev)[0]?.addr_info ?? [];
  /** Polls until the link-local address the kernel makes for dev is there (it comes once linkwatch saw carrier). */
  const linkLocal = async (fd: number, dev: string) => {
    for (let t = 0; t < 100 && !inet6(fd, dev).some((a) => a.scope === 'link'); t++) await new Promise((r) => setTimeout(r, 50));
    return inet6(fd, dev).filter((a) => a.scope === 'link');
  };

  it('gives a bridge port no IPv6 address by default, while the container end gets its link-local address', async () => {
    const r = await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'] });
    expect(await linkLocal(guests[0], 'eth1')).toHaveLength(1);
    expect(link(host, r.hostInterface!)).toMatchObject({ master: 'br1', inet6_addr_gen_mode: 'none' });
    expect(inet6(host, r.hostInterface!)).toEqual([]);
  });

  it('keeps address generation on the host end with hostIpv6: true', async () => {
    const r = await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'], hostIpv6: true });
    expect(link(host, r.hostInterface!)!.inet6_addr_gen_mode).toBe('eui64');
    expect(await linkLocal(host, r.hostInterface!)).toHaveLength(1);
  });

  it('makes no IPv6 address on the container end with ipv6: false (a neighbour attached alongside gets its own)', async () => {
    await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'], ipv6: false });
    await session.attach({ fd: guests[1] }, { hostInterface: 'br1', addresses: ['10.66.0.3/24'] });
    expect(await linkLocal(guests[1], 'eth1')).toHaveLength(1);
    expect(link(guests[0], 'eth1')!.inet6_addr_gen_mode).toBe('none');
    expect(inet6(guests[0], 'eth1')).toEqual([]);
    expect(ipj<any[]>(guests[0], '-4', 'addr', 'show', 'dev', 'eth1')[0].addr_info).toEqual([expect.objectContaining({ local: '10.66.0.2' })]);
    expect(ping(guests[0], '10.66.0.3')).toBe(true);
  });

  it('works on links too small for IPv6 (MTU < 1280: no IPv6 state to turn off)', async () => {
    const r = await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'], mtu: 1200, ipv6: false });
    expect(link(host, r.hostInterface!)).toMatchObject({ mtu: 1200, master: 'br1' });
    expect(link(guests[0], 'eth1')!.flags).toContain('UP');
    expect(inet6(guests[0], 'eth1')).toEqual([]);
  });

  it('refuses an IPv6 address or gateway with ipv6: false, and leaves nothing behind', async () => {
    await expect(session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['2001:db8::2/64'], ipv6: false }))
      .rejects.toThrow(/needs IPv6 on the container interface/);
    await expect(session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['0/0'], gateway: '2001:db8::1', ipv6: false }))
      .rejects.toThrow(/needs IPv6 on the container interface/);
    expect(link(guests[0], 'eth1')).toBeUndefined();
    expect(link(host, 'br1')).toBeUndefined();
  });
});

describe('macvlan on a physical interface', () => {
  it('creates macvlans born in the containers, MTU copied, and they reach each other', async () => {
    fakePhysical('eth0', 1450);
    await session.attach({ fd: guests[0] }, { hostInterface: 'eth0', addresses: ['10.9.0.2/24'] });
    await session.attach({ fd: guests[1] }, { hostInterface: 'eth0', addresses: ['10.9.0.3/24'], mac: '02:00:00:00:00:33' });
    const m = link(guests[1], 'eth1')!;
    expect(m.linkinfo).toMatchObject({ info_kind: 'macvlan', info_data: { mode: 'bridge' } });
    expect(m).toMatchObject({ mtu: 1450, address: '02:00:00:00:00:33' });
    expect(ipj<any[]>(host, 'link', 'show', 'type', 'macvlan')).toEqual([]);
    expect(ping(guests[0], '10.9.0.3')).toBe(true);
  });

  it('takes another macvlan mode when asked', async () => {
    fakePhysical('eth0');
    await session.attach({ fd: guests[0] }, { hostInterface: 'eth0', macvlanMode: 'vepa' });
    expect(link(guests[0], 'eth1')!.linkinfo).toMatchObject({ info_kind: 'macvlan', info_data: { mode: 'vepa' } });
    // Converge reads the mode back: the same one is the attachment asked for, another is not.
    const before = link(guests[0], 'eth1');
    await session.attach({ fd: guests[0] }, { hostInterface: 'eth0', macvlanMode: 'vepa' }, { converge: true });
    await expect(session.attach({ fd: guests[0] }, { hostInterface: 'eth0' }, { converge: true }))
      .rejects.toThrow('eth1 exists but is not the attachment asked for: eth1 in the container is a macvlan link in mode vepa, not bridge.');
    expect(link(guests[0], 'eth1')).toEqual(before);
  });

  it('moves the interface itself with --direct-phys, and detach gives it back', async () => {
    fakePhysical('eth2');
    await session.attach({ fd: guests[0] }, { hostInterface: 'eth2', directPhys: true, addresses: ['10.5.0.2/24'] });
    expect(link(host, 'eth2')).toBeUndefined();
    expect(link(guests[0], 'eth1')!.flags).toContain('UP');
    expect(await session.detach({ fd: guests[0] })).toEqual({ action: 'returned', kind: 'veth' });
    expect(link(guests[0], 'eth1')).toBeUndefined();
    const back = link(host, 'eth2')!;
    expect(back.flags).not.toContain('UP');
    expect(ipj<any[]>(host, 'link', 'show', 'eth2')[0].ifalias).toBeUndefined();
  });

  it.skipIf(kernelHasKind('vlan'))('explains that this kernel lacks VLAN links, and leaves nothing behind', async () => {
    fakePhysical('eth0');
    const err = await session.attach({ fd: guests[0] }, { hostInterface: 'eth0', vlan: '10' }).catch((e) => e);
    expect(err).toBeInstanceOf(PipeworkError);
    expect(err.message).toMatch(/cannot create vlan links \(module 8021q/);
    expect(link(host, 'eth0.10')).toBeUndefined();
  });
});

// Kernels with 8021q and dummy (not this test run's): the same forms run for real in the kernel VM
// (test/kernel/vm-tests.js: vlan-lib, vlan-foreign-lib, unplug-faults-vlan-lib, dummy-lib).
describe('dummy', () => {
  it.skipIf(kernelHasKind('dummy'))('says clearly that this kernel lacks dummy links', async () => {
    await expect(session.attach({ fd: guests[0] }, { hostInterface: 'dummy0' })).rejects.toThrow(/cannot create dummy links \(module dummy/);
  });
});

describe('refusals', () => {
  it('two long guest names whose veth host names collided before (5 hex digits of md5) both attach', async () => {
    // Named netns: their names are the tags in veth1pl<tag>, cut with a hash when over 15 bytes.
    const names = ['pwlongguest1136', 'pwlongguest1823'];
    for (const n of names) execFileSync('ip', ['netns', 'add', n]);
    try {
      const results = [];
      for (const [k, n] of names.entries())
        results.push(await session.attach({ netns: n }, { hostInterface: 'br1', addresses: [`10.66.0.${k + 2}/24`] }));
      const hostNames = results.map((r) => r.hostInterface!);
      expect(new Set(hostNames).size).toBe(2);
      const ports = ipj<any[]>(host, 'link', 'show', 'master', 'br1').map((l) => l.ifname);
      expect(ports.sort()).toEqual([...hostNames].sort());
      for (const h of hostNames) expect(Buffer.byteLength(h)).toBeLessThanOrEqual(15);
    } finally {
      for (const n of names) execFileSync('ip', ['netns', 'del', n]);
    }
  });

  it('reports the kernel refusal with errno, code, operation and extended ACK', async () => {
    ip(guests[0], 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'x');
    const err = await session.attach({ fd: guests[0] }, { hostInterface: 'br1' }).catch((e) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: 'EEXIST', errno: 17 });
    expect(err.operation).toMatch(/^RTM_NEWLINK veth1pl/);
  });

  it('refuses names over 15 characters and names the limit', async () => {
    await expect(session.attach({ fd: guests[0] }, { hostInterface: 'br1', containerInterface: 'a-very-long-name0' }))
      .rejects.toThrow("The container interface name 'a-very-long-name0' is 17 characters long; Linux allows at most 15.");
  });

  it('refuses a VLAN on a Linux bridge and a MAC on IPoIB with the original texts', async () => {
    ip(host, 'link', 'add', 'br0', 'type', 'bridge');
    await expect(session.attach({ fd: guests[0] }, { hostInterface: 'br0', vlan: '5' })).rejects.toThrow('VLAN configuration currently unsupported for Linux bridge.');
    await expect(session.attach({ fd: guests[0] }, { hostInterface: 'zz0' })).rejects.toThrow('I do not know how to setup interface zz0.');
  });
});

describe('detach', () => {
  it('removes the veth (both ends) and is harmless when repeated', async () => {
    const r = await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'] });
    expect(await session.detach({ fd: guests[0] })).toEqual({ action: 'deleted', kind: 'veth' });
    expect(link(guests[0], 'eth1')).toBeUndefined();
    expect(link(host, r.hostInterface!)).toBeUndefined();
    expect(await session.detach({ fd: guests[0] })).toEqual({ action: 'absent' });
  });

  // The deletion is done when the kernel announces it (before the RCU barrier the deleting sendmsg still waits out).
  it('returns with both veth ends, the address and the bridge port gone, read back at once, and the names free again', async () => {
    const hostSock = RtnlSocket.open(host);
    const guestSock = RtnlSocket.open(guests[0]);
    try {
      const names = async () => ({
        host: (await hostSock.request(dumpLinks())).map((m) => parseLink(m).name).sort(),
        guest: (await guestSock.request(dumpLinks())).map((m) => parseLink(m).name),
      });
      for (let i = 0; i < 5; i++) {
        const r = await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'] });
        expect(await session.detach({ fd: guests[0] })).toEqual({ action: 'deleted', kind: 'veth' });
        expect(await names()).toEqual({ host: ['br1', 'lo'], guest: ['lo'] });
        await expect(hostSock.request(getLinkByName(r.hostInterface!))).rejects.toMatchObject({ code: 'ENODEV' });
        expect(ipj<unknown[]>(host, 'link', 'show', 'master', 'br1')).toEqual([]);
        expect(ipj<unknown[]>(guests[0], '-4', 'addr', 'show', 'to', '10.66.0.2')).toEqual([]);
      }
    } finally {
      hostSock.close();
      guestSock.close();
    }
  });

  it('deletes a macvlan the same way, and many veths detached at once', async () => {
    fakePhysical('eth0');
    await session.attach({ fd: guests[0] }, { hostInterface: 'eth0', addresses: ['10.9.0.2/24'] });
    expect(await session.detach({ fd: guests[0] })).toEqual({ action: 'deleted', kind: 'macvlan' });
    expect(link(guests[0], 'eth1')).toBeUndefined();
    expect(link(host, 'eth0')).toBeDefined();

    const many = netnsSet(12);
    try {
      await Promise.all(many.fds.map((g, i) => session.attach({ fd: g }, { hostInterface: 'br1', addresses: [`10.66.0.${i + 2}/24`] })));
      expect(ipj<unknown[]>(host, 'link', 'show', 'master', 'br1')).toHaveLength(12);
      const outcomes = await Promise.all(many.fds.map((g) => session.detach({ fd: g })));
      expect(outcomes).toEqual(many.fds.map(() => ({ action: 'deleted', kind: 'veth' })));
      expect(ipj<unknown[]>(host, 'link', 'show', 'master', 'br1')).toEqual([]);
      for (const g of many.fds) expect(link(g, 'eth1')).toBeUndefined();
    } finally {
      many.close();
    }
  });
});

describe('route and rule inside the guest', () => {
  it('adds and deletes routes and rules over rtnetlink', async () => {
    await session.attach({ fd: guests[0] }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'] });
    await session.route({ fd: guests[0] }, ['add', '192.168.5.0/24', 'via', '10.66.0.1', 'dev', 'eth1', 'metric', '100', 'table', '100', 'proto', 'static']);
    expect(ipj<any[]>(guests[0], 'route', 'show', 'table', '100')).toEqual([
      expect.objectContaining({ dst: '192.168.5.0/24', gateway: '10.66.0.1', dev: 'eth1', metric: 100, protocol: 'static' }),
    ]);
    await session.rule({ fd: guests[0] }, ['add', 'from', '10.66.0.0/24', 'fwmark', '0x10/0xff', 'iif', 'eth1', 'lookup', '100', 'pref', '1000']);
    expect(ipj<any[]>(guests[0], 'rule', 'show').find((r) => r.priority === 1000)).toMatchObject({
      src: '10.66.0.0', srclen: 24, fwmark: '0x10', fwmask: '0xff', iif: 'eth1', table: '100',
    });
    await session.rule({ fd: guests[0] }, ['del', 'pref', '1000']);
    await session.route({ fd: guests[0] }, ['del', '192.168.5.0/24', 'table', '100']);
    expect(ipj<any[]>(guests[0], 'route', 'show', 'table', '100')).toEqual([]);
    expect(ipj<any[]>(guests[0], 'rule', 'show').find((r) => r.priority === 1000)).toBeUndefined();
    await expect(session.route({ fd: guests[0] }, ['add', '10.0.0.0/8', 'nexthop', 'x'])).rejects.toThrow('route: unsupported word "nexthop".');
  });
});
