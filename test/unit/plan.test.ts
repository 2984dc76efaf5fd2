// The planner is pure: request + observed state -> steps. Kinds this kernel
// cannot create (vlan, ipoib, dummy) are planned here like any other.
import { describe, expect, it } from 'vitest';
import { checkRequest, planAttach, type Observed, type AttachRequest } from '../../src/plan/attach';
import { renderStep } from '../../src/plan/steps';
import { ifnameFault } from '../../src/addressing/ifname';
import { checkIfname } from '../../src/plan/names';
import { ifnameProblem } from '../../src/cni/config';
import type { Link } from '../../src/netlink/link';
import { broadcastOf, formatIp, parseCidr, parseIp } from '../../src/addressing';
import { attrsLength, u16, writeAttrs } from '../../src/netlink/attributes';

const link = (over: Partial<Link>): Link => ({
  index: 5, name: 'x', hwType: 1, flags: 1, up: true, lowerUp: true, mtu: 1500, ...over,
});
/** IFLA_INFO_DATA of a VLAN link with this id, as the kernel reports it (IFLA_VLAN_ID is attribute 1). */
function vlanInfo(id: number): Uint8Array {
  const attrs = [u16(1, id)];
  const b = new Uint8Array(attrsLength(attrs));
  writeAttrs(b, 0, attrs);
  return b;
}
const observed = (over: Partial<Observed> = {}): Observed => ({ hostIsOvs: false, guestTag: '42', guestPath: '/proc/42/ns/net', ...over });
const plan = (r: AttachRequest, o: Observed) => planAttach(checkRequest(r), o);
const ops = (r: AttachRequest, o: Observed) => plan(r, o).steps.map((s) => s.op);

describe('planAttach', () => {
  it('veth on an existing bridge: names and MTU as the original, the container side in one batch', () => {
    const p = plan({ hostInterface: 'br0', addresses: ['10.0.0.2/24'], gateway: '10.0.0.1' },
      observed({ host: link({ name: 'br0', kind: 'bridge', mtu: 9000 }) }));
    expect(p.steps.map((s) => s.op)).toEqual(['create-veth', 'add-address', 'guest-link-up', 'replace-default-route',
      'port-carrier', 'arp-notify', 'announce', 'arp-notify']);
    expect(p.steps[0]).toMatchObject({ hostName: 'veth1pl42', peerName: 'eth1', mtu: 9000, master: { name: 'br0', index: 5 } });
    expect(p.steps.map((s) => renderStep(s, p.guestPath))).toEqual([
      'ip link add veth1pl42 mtu 9000 master br0 up type veth peer name eth1 mtu 9000 netns /proc/42/ns/net'
        + ' && ip link set dev veth1pl42 addrgenmode none',
      'nsenter --net=/proc/42/ns/net ip -4 addr add 10.0.0.2/24 brd 10.0.0.255 dev eth1',
      'nsenter --net=/proc/42/ns/net ip link set dev eth1 up',
      'nsenter --net=/proc/42/ns/net ip -4 route replace default via 10.0.0.1 dev eth1',
      'ethtool veth1pl42',
      'nsenter --net=/proc/42/ns/net sysctl -w net.ipv4.conf.eth1.arp_notify=1',
      'nsenter --net=/proc/42/ns/net ip link set dev eth1 address <its own address>',
      'nsenter --net=/proc/42/ns/net sysctl -w net.ipv4.conf.eth1.arp_notify=<previous value>',
    ]);
  });

  it('gratuitous ARP: on a Linux bridge once the port forwards, elsewhere as the link comes up; none without IPv4 or with announce off', () => {
    const bridge = observed({ host: link({ name: 'br0', kind: 'bridge' }) });
    expect(ops({ hostInterface: 'brnew', addresses: ['10.0.0.2/24'] }, observed()))
      .toEqual(['create-bridge', 'create-veth', 'add-address', 'guest-link-up', 'port-carrier', 'arp-notify', 'announce', 'arp-notify']);
    expect(ops({ hostInterface: 'eth0', addresses: ['10.0.0.2/24'] }, observed({ host: link({ name: 'eth0' }) })))
      .toEqual(['create-macvlan', 'add-address', 'arp-notify', 'guest-link-up', 'arp-notify']);
    expect(ops({ hostInterface: 'br0', addresses: ['10.0.0.2/24'], announce: false }, bridge)).toEqual(['create-veth', 'add-address', 'guest-link-up']);
    expect(ops({ hostInterface: 'br0', addresses: ['2001:db8::2/64'] }, bridge)).toEqual(['create-veth', 'add-address', 'guest-link-up']);
  });

  it('IPv6: none on a Linux bridge port unless hostIpv6; ipv6: false turns it off on the container end before it comes up', () => {
    const br = observed({ host: link({ name: 'br0', kind: 'bridge' }) });
    expect(plan({ hostInterface: 'br0' }, br).steps[0]).toMatchObject({ op: 'create-veth', hostAddrGenNone: true });
    expect(plan({ hostInterface: 'br0', hostIpv6: true }, br).steps[0]).toMatchObject({ op: 'create-veth', hostAddrGenNone: false });
    expect(plan({ hostInterface: 'br7' }, observed()).steps[1]).toMatchObject({ op: 'create-veth', hostAddrGenNone: true });
    const ovs = plan({ hostInterface: 'ovs0' }, observed({ host: link({ name: 'ovs0', kind: 'openvswitch' }), hostIsOvs: true }));
    expect(ovs.steps[0]).toMatchObject({ op: 'create-veth', hostAddrGenNone: false });
    const off = plan({ hostInterface: 'br0', addresses: ['10.0.0.2/24'], ipv6: false, announce: false }, br);
    expect(off.steps.map((s) => s.op)).toEqual(['create-veth', 'add-address', 'ipv6-off', 'guest-link-up']);
    expect(renderStep(off.steps[2], off.guestPath)).toBe('nsenter --net=/proc/42/ns/net ip link set dev eth1 addrgenmode none');
    expect(() => plan({ hostInterface: 'br0', addresses: ['2001:db8::2/64'], ipv6: false }, br)).toThrow(/needs IPv6 on the container interface/);
    expect(ops({ hostInterface: 'br0', addresses: ['10.0.0.2/24'] }, br)).not.toContain('ipv6-off');
  });

  it('creates a br* bridge that is absent, and refuses other unknown names', () => {
    expect(ops({ hostInterface: 'br7', addresses: ['0/0'] }, observed())).toEqual(['create-bridge', 'create-veth', 'guest-link-up']);
    expect(() => ops({ hostInterface: 'foo0' }, observed())).toThrow('I do not know how to setup interface foo0.');
    expect(() => ops({ hostInterface: 'ovs0' }, observed({ ovsAvailable: false }))).toThrow('Need OVS installed on the system to create an ovs bridge');
  });

  it('physical with a VLAN: makes <if>.<vid> counted as used once, a macvlan on it', () => {
    const p = plan({ hostInterface: 'eth0', vlan: '10' }, observed({ host: link({ name: 'eth0' }) }));
    expect(p.steps.slice(0, 2)).toEqual([
      { op: 'create-vlan', parent: { name: 'eth0', index: 5 }, name: 'eth0.10', vid: 10, mtu: 1500 },
      expect.objectContaining({ op: 'create-macvlan', parent: { name: 'eth0.10', index: 0 }, name: 'eth1', mode: 'bridge' }),
    ]);
  });

  it('physical with a VLAN link pipework made: one more user; one it did not make is used as it is', () => {
    const ours = link({ name: 'eth0.10', kind: 'vlan', infoData: vlanInfo(10), index: 9, alias: 'pipework:vlan-users=2' });
    expect(plan({ hostInterface: 'eth0', vlan: '10' }, observed({ host: link({ name: 'eth0' }), vlanLink: ours })).steps[0])
      .toMatchObject({ op: 'vlan-user', users: 2, link: { index: 9 } });
    const theirs = link({ name: 'eth0.10', kind: 'vlan', infoData: vlanInfo(10), index: 9 });
    expect(ops({ hostInterface: 'eth0', vlan: '10' }, observed({ host: link({ name: 'eth0' }), vlanLink: theirs }))[0]).toBe('create-macvlan');
    expect(() => ops({ hostInterface: 'eth0', vlan: '10' }, observed({ host: link({ name: 'eth0' }), vlanLink: link({ kind: 'veth' }) })))
      .toThrow('eth0.10 already exists but is not a VLAN device for tag 10');
    // A VLAN link of another tag under the name (made by hand): not used as tag 10.
    const other = link({ name: 'eth0.10', kind: 'vlan', infoData: vlanInfo(11), index: 9 });
    expect(() => ops({ hostInterface: 'eth0', vlan: '10' }, observed({ host: link({ name: 'eth0' }), vlanLink: other })))
      .toThrow('eth0.10 already exists but is not a VLAN device for tag 10');
  });

  it('IPoIB (ARPHRD 32): ib0 by default, the partition key in hex, no MAC', () => {
    const ib = observed({ host: link({ name: 'ib0', hwType: 32 }) });
    expect(plan({ hostInterface: 'ib0', vlan: '8001', addresses: ['10.5.0.2/24'] }, ib).steps[0])
      .toEqual({ op: 'create-ipoib', parent: expect.objectContaining({ name: 'ib0' }), name: 'ib0', pkey: 0x8001 });
    expect(() => plan({ hostInterface: 'ib0', mac: '02:00:00:00:00:01' }, ib)).toThrow('MACADDR configuration unsupported for IPoIB interfaces.');
    expect(() => plan({ hostInterface: 'ib0', vlan: '0' }, ib)).toThrow('Invalid partition key: 0');
  });

  it('dummy*, direct-phys, macvlan modes', () => {
    expect(ops({ hostInterface: 'dummy0', addresses: ['10.1.0.2/24'] }, observed())[0]).toBe('create-dummy');
    expect(ops({ hostInterface: 'eth2', directPhys: true }, observed({ host: link({ name: 'eth2' }) }))).toEqual(['move-link', 'guest-link-up']);
    expect(plan({ hostInterface: 'eth0', macvlanMode: 'passthru' }, observed({ host: link({ name: 'eth0' }) })).steps[0]).toMatchObject({ mode: 'passthru' });
  });

  it('an off-link gateway gets a host route, unless a guest route already reaches it', () => {
    const r = { hostInterface: 'br0', addresses: ['10.0.0.2/24'], gateway: '10.9.0.1', announce: false };
    const br = link({ name: 'br0', kind: 'bridge' });
    expect(ops(r, observed({ host: br, gatewayRoutable: false }))).toContain('add-gateway-route');
    expect(ops(r, observed({ host: br, gatewayRoutable: true }))).not.toContain('add-gateway-route');
  });

  it('generated names never pass 15 characters; the -l link that is up is refused', () => {
    const p = plan({ hostInterface: 'br0', containerInterface: 'eth100' }, observed({ host: link({ kind: 'bridge' }), guestTag: '4194303' }));
    expect(p.hostInterface).toBe('veth10-kagwoadt');
    expect(() => plan({ hostInterface: 'br0', hostName: 'v0' }, observed({ host: link({ kind: 'bridge' }), localLink: link({ name: 'v0', up: true }) })))
      .toThrow('Link v0 exists and is up');
    // A down one is moved aside first and deleted last, once everything else is done.
    const downV0 = ops({ hostInterface: 'br0', hostName: 'v0' }, observed({ host: link({ kind: 'bridge' }), localLink: link({ name: 'v0', up: false }) }));
    expect([downV0[0], downV0.at(-1)]).toEqual(['move-aside-host-link', 'delete-host-link']);
  });

  it('distinct long guest names give distinct veth host names, each within 15 bytes; names that fit stay the original\'s', () => {
    const hostName = (guestTag: string, containerInterface?: string) =>
      plan({ hostInterface: 'br0', containerInterface }, observed({ host: link({ kind: 'bridge' }), guestTag })).hostInterface!;
    // Shaped like real fleets: one prefix and a counter, a UUID, a name with multibyte characters.
    const tags = Array.from({ length: 10_000 }, (_, i) => [
      `pwlongguest${i}`, `web-frontend-${i}.prod`, `${i.toString(16).padStart(8, '0')}-4f1c-9a7e-c0ffee`, `conteneur-été-${i}`,
    ][i % 4]);
    const names = tags.map((t) => hostName(t));
    expect(new Set(names).size).toBe(tags.length);
    for (const n of names) expect(Buffer.byteLength(n)).toBeLessThanOrEqual(15);
    // Two of the names whose 5 hex digits of md5 were the same (both veth1plpw-4c36f), now apart.
    expect(hostName('pwlongguest1136')).not.toBe(hostName('pwlongguest1823'));
    expect(hostName('pwlongguest1136')).toBe(hostName('pwlongguest1136'));
    // Whole characters only: no multibyte character is cut in two.
    expect(hostName('ééééééééé')).toMatch(/^veth1p-[a-z2-7]{8}$/);
    expect(hostName('x', 'éééééé')).toMatch(/^vé{2}-[a-z2-7]{8}$/);
    expect(hostName('4194303')).toBe('veth1pl4194303');
    expect(hostName('web1', 'eth2')).toBe('veth2plweb1');
  });
});

describe('requested MTU', () => {
  it('overrides the one copied from the host interface, and must be valid', () => {
    const br = observed({ host: link({ name: 'br0', kind: 'bridge', mtu: 1500 }) });
    expect(plan({ hostInterface: 'br0', mtu: 9000 }, br).steps[0]).toMatchObject({ op: 'create-veth', mtu: 9000 });
    expect(() => plan({ hostInterface: 'br0', mtu: 20 }, br)).toThrow('Invalid MTU: 20 (68-65535)');
  });
});

describe('addresses', () => {
  it('IPv4 as four plain decimal octets only; IPv6 as ipaddr.js reads it; canonical text and bytes', () => {
    expect(parseIp('10.0.0.2')).toEqual({ family: 4, address: '10.0.0.2', bytes: Buffer.from([10, 0, 0, 2]) });
    expect(parseIp('2001:DB8:0::2')).toEqual({ family: 6, address: '2001:db8::2', bytes: Buffer.from('20010db8000000000000000000000002', 'hex') });
    for (const bad of ['256.1.1.1', '1.2.3.04', '01.2.3.4', '1.2.3', '1.2.3.4.5', '0x0a.0.0.1', '10.0.0.2 ', '1e1.2.3.4', '10.0.0.-1'])
      expect(() => parseIp(bad), bad).toThrow(`Invalid IP address: ${bad}`);
  });

  it('IPv4 broadcast: all host bits set; none for /31 and /32 or IPv6', () => {
    const brd = (c: string) => { const b = broadcastOf(parseCidr(c)); return b && formatIp(b); };
    expect([brd('10.1.2.3/16'), brd('192.168.1.7/24'), brd('10.0.0.0/1'), brd('10.0.0.5/30'), brd('0.0.0.0/0')])
      .toEqual(['10.1.255.255', '192.168.1.255', '127.255.255.255', '10.0.0.7', '255.255.255.255']);
    expect([brd('10.0.0.1/31'), brd('10.0.0.1/32'), brd('2001:db8::1/64')]).toEqual([undefined, undefined, undefined]);
  });
});

describe('interface names: one rule, in the words of each front end', () => {
  it('the CLI (and the Docker driver) and the CNI plugin refuse the same names, each saying why', () => {
    const said = (name: string) => { try { checkIfname(name, 'parent'); return undefined; } catch (e) { return (e as Error).message; } };
    const cases: [string, string | undefined, string | undefined][] = [
      ['eth1', undefined, undefined],
      ['a'.repeat(15), undefined, undefined],
      ['é'.repeat(8), "The parent name 'éééééééé' is 16 characters long; Linux allows at most 15.", 'is longer than 15 characters'],
      ['', 'The parent name is empty.', 'is empty'],
      ['..', "The parent name '..' is not valid: no '/', ':' or whitespace, and not '.' or '..'.", 'is . or ..'],
      ['a:b', "The parent name 'a:b' is not valid: no '/', ':' or whitespace, and not '.' or '..'.", 'contains / or : or whitespace'],
    ];
    for (const [name, cli, cni] of cases) {
      expect([said(name), ifnameProblem(name)]).toEqual([cli, cni]);
      expect(ifnameFault(name) === undefined).toBe(cli === undefined);
    }
  });
});
