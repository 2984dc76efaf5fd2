// The pipework command end to end on a host NIC (a veth end playing one):
// macvlan, --direct-phys, mac:<addr>, and the kinds this kernel lacks (vlan,
// dummy). Each test runs `node bin/pipework.js ...` in throwaway namespaces and
// reads the kernel state back (test/e2e/cli/harness.ts). Only inside
// scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cli-nic.test.ts
import { afterEach, describe, expect, it } from 'vitest';
import {
  HOST, cli, ip, link, names, addrInfo, snapshot, settled, ping, kernelHas, expectError, expectOk, setup, fakeNic, cleanUp,
} from './cli/harness';

const HAS_DUMMY = kernelHas('dummy');
const HAS_VLAN = kernelHas('vlan', 'id', '7');

afterEach(cleanUp);

describe('macvlan and --direct-phys on a "physical" interface (a veth end in the host netns)', () => {
  it('macvlan, mode bridge, MTU copied; two containers on the same NIC reach each other; nothing left in the host', async () => {
    const [c1, c2] = setup(2);
    await fakeNic('nic0', { mtu: 1400 });
    const hostBefore = names(HOST);
    expectOk(await cli(['nic0', c1, '10.20.0.2/24']));
    expectOk(await cli(['nic0', c2, '10.20.0.3/24']));
    const nic = link(HOST, 'nic0')!;
    for (const c of [c1, c2]) {
      const eth1 = link(c, 'eth1')!;
      expect(eth1.linkinfo?.info_kind).toBe('macvlan');
      expect(eth1.linkinfo?.info_data?.mode).toBe('bridge');
      expect(eth1.mtu).toBe(1400);
      expect(eth1.link_index).toBe(nic.ifindex);
      expect(eth1.flags).toContain('UP');
    }
    expect(names(HOST)).toEqual(hostBefore); // no ph<pid>eth1 left behind
    expect(ping(c1, '10.20.0.3')).toBe(true);
  });

  it('--macvlan-mode vepa (and private) are honoured; an unknown mode is refused', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0');
    expectOk(await cli(['--macvlan-mode', 'vepa', 'nic0', c1, '10.21.0.2/24']));
    expectOk(await cli(['--macvlan-mode', 'private', 'nic0', '-i', 'eth2', c1, '10.21.1.2/24']));
    expect(link(c1, 'eth1')!.linkinfo?.info_data?.mode).toBe('vepa');
    expect(link(c1, 'eth2')!.linkinfo?.info_data?.mode).toBe('private');
    const [before] = await settled(c1);
    expectError(await cli(['--macvlan-mode', 'sideways', 'nic0', '-i', 'eth3', c1, '10.21.2.2/24']),
      'Invalid macvlan mode: sideways (private, vepa, bridge or passthru)');
    expect(snapshot(c1)).toEqual(before);
  });

  it('a down NIC is brought up for the macvlan', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0');
    ip(HOST, 'link', 'set', 'nic0', 'down');
    expectOk(await cli(['nic0', c1, '10.22.0.2/24']));
    expect(link(HOST, 'nic0')!.flags).toContain('UP');
    expect(link(c1, 'eth1')!.linkinfo?.info_kind).toBe('macvlan');
  });

  // @vlan where the kernel has 8021q: test/kernel/vm-tests.js (vlan-cli, vlan-mtu-cli, vlan-unplug-cli).
  it.skipIf(HAS_VLAN)('@vlan on a NIC where the kernel has no 8021q: a clear error naming the module, exit 1, no nic0.7 left', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0');
    const before = await settled(HOST, c1);
    expectError(await cli(['nic0', c1, '10.23.0.2/24', '@7']), /^This kernel cannot create vlan links \(module 8021q not available\)/);
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('--direct-phys moves the NIC itself in (renamed, addressed, reachable); unplug gives it back under its own name', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0', { mac: '02:00:00:00:0a:01' });
    ip(HOST, 'addr', 'add', '10.24.0.1/24', 'dev', 'nic0p');
    expectOk(await cli(['--direct-phys', 'nic0', c1, '10.24.0.2/24']));
    expect(link(HOST, 'nic0')).toBeUndefined();
    const eth1 = link(c1, 'eth1')!;
    expect(eth1.linkinfo?.info_kind).toBe('veth');
    expect(eth1.address).toBe('02:00:00:00:0a:01');
    expect(addrInfo(c1, 'eth1')).toEqual([expect.objectContaining({ local: '10.24.0.2' })]);
    expect(ping(c1, '10.24.0.1')).toBe(true);

    expectOk(await cli(['unplug', c1]));
    expect(link(c1, 'eth1')).toBeUndefined();
    const back = link(HOST, 'nic0')!;
    expect(back).toBeDefined();
    expect(back.address).toBe('02:00:00:00:0a:01');
    expectOk(await cli(['unplug', c1])); // again: harmless
    expect(link(HOST, 'nic0')).toBeDefined();
  });

  it('--direct-phys on a bridge is refused, nothing moved', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'br0', 'type', 'bridge');
    const before = await settled(HOST, c1);
    expectError(await cli(['--direct-phys', 'br0', c1, '10.24.0.2/24']), '--direct-phys needs an existing physical interface; br0 is not one.');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('mac:<addr> picks the host interface with that MAC (case-insensitive); an unknown MAC: the original message', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0');
    await fakeNic('nic1', { mac: '02:11:22:33:44:55' });
    expectOk(await cli(['mac:02:11:22:33:44:55', c1, '10.25.0.2/24']));
    expectOk(await cli(['mac:02:11:22:33:44:55'.toUpperCase().replace('MAC', 'mac'), '-i', 'eth2', c1, '10.25.1.2/24']));
    const nic1 = link(HOST, 'nic1')!;
    expect(link(c1, 'eth1')!.link_index).toBe(nic1.ifindex);
    expect(link(c1, 'eth2')!.link_index).toBe(nic1.ifindex);
    const before = await settled(HOST, c1);
    expectError(await cli(['mac:02:11:22:33:44:99', '-i', 'eth3', c1, '10.25.2.2/24']),
      'Mac address 02:11:22:33:44:99 specified for interface but no host interface matched.');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('unplug of a macvlan deletes it; the NIC stays', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0');
    expectOk(await cli(['nic0', c1, '10.26.0.2/24']));
    expectOk(await cli(['unplug', c1]));
    expect(link(c1, 'eth1')).toBeUndefined();
    expect(link(HOST, 'nic0')!.flags).toContain('UP');
  });
});

// IPoIB: no InfiniBand parent can exist in this test run (nor in the kernel VM: soft-RoCE ports are Ethernet);
// the planner's unit tests and the request compared with iproute2's (test/unit/encoding.test.ts) cover it.

describe('dummy*', () => {
  it.skipIf(HAS_DUMMY)('this kernel has no dummy links: a clear error naming the module, exit 1, nothing left', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['dummy0', c1, '10.30.0.2/24']), /^This kernel cannot create dummy links \(module dummy not available\)/);
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  // Where the kernel has dummy links: test/kernel/vm-tests.js (dummy-cli).
});
