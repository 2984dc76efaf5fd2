// A failure at any step of any attach leaves host and guest exactly as they
// were: every link, address, route and rule compared before and after.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Ovs, startOvs } from '../support/daemons/ovs';
import { type AttachRequest, STEP_SIDE, Session } from '../../src/index';
import { ip, netnsSet, restingState, snapshot } from '../helpers/kernel';

/** Kinds of attach step a fault was injected at, and kinds undone after a fault at a later step, in this file. */
const faulted = new Set<string>();
const undone = new Set<string>();
/** A fault at step k of the plan: the step itself never runs, the ones before it are undone. */
const injectAt = (ops: string[], k: number) => {
  faulted.add(ops[k]);
  ops.slice(0, k).forEach((op) => undone.add(op));
};

/**
 * Kinds this machine's kernel cannot make, or that need daemons set up
 * elsewhere: where their faults are injected instead.
 */
const FAULTED_ELSEWHERE: Record<string, string> = {
  'create-vlan': 'test/kernel/vm-tests.js (no 8021q module here)',
  'vlan-user': 'test/kernel/vm-tests.js (no 8021q module here)',
  'create-dummy': 'test/kernel/vm-tests.js (no dummy module here)',
  'create-ipoib': 'nowhere: no kernel we test on (here or the VM) can create IPoIB links without an InfiniBand device',
  dhcp: 'test/e2e/dhcp.test.ts (against dnsmasq)',
};

let ns: ReturnType<typeof netnsSet>;
let host: number;
let guest: number;
let session: Session;

beforeEach(() => {
  ns = netnsSet(2);
  [host, guest] = ns.fds;
  session = new Session({ hostNetns: host });
});
afterEach(() => {
  session.close();
  ns.close();
});

/**
 * A bridge with a port of its own, as in production. An empty bridge takes
 * its first port's MAC and MTU and, when that port goes, zeros and 1500:
 * kernel behaviour no undo can reverse without pinning the bridge's MAC.
 */
function bridgeWithUplink(name: string, mtu: number) {
  ip(host, 'link', 'add', name, 'mtu', String(mtu), 'type', 'bridge');
  ip(host, 'link', 'add', 'uplink', 'mtu', String(mtu), 'master', name, 'type', 'veth', 'peer', 'name', 'uplinkp');
}

interface Scenario {
  setup?: () => void;
  request: AttachRequest;
  /** Fields left out of the comparison, and why. */
  derived?: string[];
  /** Attach with converge (the setup leaves an attachment to complete). */
  converge?: boolean;
}

const scenarios: Record<string, Scenario> = {
  'veth on a new bridge, IPv4 with an off-link gateway, MAC, no IPv6': {
    request: { hostInterface: 'br1', addresses: ['10.66.0.2/24'], gateway: '10.77.0.1', mac: 'U:host1', ipv6: false },
  },
  'veth on an existing bridge, IPv4 and IPv6 with gateway': {
    setup: () => bridgeWithUplink('br0', 1400),
    request: { hostInterface: 'br0', addresses: ['10.66.0.2/24', '2001:db8::2/64'], gateway: '10.66.0.1', nodad: true },
  },
  'macvlan on a physical interface that is down': {
    setup: () => ip(host, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p'),
    request: { hostInterface: 'eth0', addresses: ['10.9.0.2/24'], gateway: '10.9.0.1' },
  },
  'veth on an existing bridge with no port (its MAC and MTU change with its first port)': {
    setup: () => ip(host, 'link', 'add', 'br0', 'mtu', '1400', 'type', 'bridge'),
    request: { hostInterface: 'br0', addresses: ['10.66.0.2/24'], gateway: '10.66.0.1' },
    // A bridge that never had a port has a MAC but no STP id yet (8000.0:0:0:0:0:0): giving its MAC back computes one.
    derived: ['bridge_id', 'root_id'],
  },
  'veth on a bridge whose ports all went (MAC 00:00:00:00:00:00)': {
    setup: () => {
      bridgeWithUplink('br0', 1500);
      ip(host, 'link', 'del', 'uplink');
    },
    request: { hostInterface: 'br0', addresses: ['10.66.0.2/24'] },
  },
  'veth replacing a down link of the same name (its peer elsewhere)': {
    setup: () => {
      bridgeWithUplink('br0', 1500);
      ip(host, 'link', 'add', 'vold', 'type', 'veth', 'peer', 'name', 'voldp');
      ip(host, 'addr', 'add', '10.1.1.1/24', 'dev', 'voldp');
    },
    request: { hostInterface: 'br0', hostName: 'vold', addresses: ['10.66.0.2/24'], gateway: '10.66.0.1' },
  },
  'veth replacing a down link whose peer is the guest\'s eth1': {
    setup: () => {
      bridgeWithUplink('br1', 1500);
      ip(host, 'link', 'add', 'vold', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', `/proc/${process.pid}/fd/${guest}`);
      ip(guest, 'addr', 'add', '10.1.1.2/24', 'dev', 'eth1');
    },
    request: { hostInterface: 'br1', hostName: 'vold', addresses: ['10.66.0.2/24'] },
  },
  'converge: a veth left down at both ends, without its MAC, address and routes': {
    setup: () => {
      bridgeWithUplink('br0', 1500);
      ip(host, 'link', 'add', 'vconv', 'master', 'br0', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', `/proc/${process.pid}/fd/${guest}`);
    },
    request: { hostInterface: 'br0', hostName: 'vconv', addresses: ['10.66.0.2/24'], gateway: '10.77.0.1', mac: '02:00:00:00:00:07' },
    converge: true,
  },
  '--direct-phys with an address, a MAC and no IPv6': {
    setup: () => {
      ip(host, 'link', 'add', 'eth2', 'type', 'veth', 'peer', 'name', 'eth2p');
      ip(host, 'link', 'set', 'eth2', 'up');
    },
    request: { hostInterface: 'eth2', directPhys: true, addresses: ['10.5.0.2/24'], mac: '02:00:00:00:00:05', ipv6: false },
  },
};

describe('rollback at every step', () => {
  for (const [name, { setup, request, derived = [], converge }] of Object.entries(scenarios)) {
    it(name, async () => {
      setup?.();
      const state = () => JSON.parse(JSON.stringify({ host: snapshot(host), guest: snapshot(guest) }, (k, v) => (derived.includes(k) ? undefined : v)));
      const before = state();
      const plan = await session.plan({ fd: guest }, request, { converge });
      expect(plan.steps.length).toBeGreaterThan(2);
      for (let k = 0; k < plan.steps.length; k++) {
        injectAt(plan.steps.map((st) => st.op), k);
        await expect(session.attach({ fd: guest }, request, { failAtStep: k, converge }), `fault at step ${k} (${plan.steps[k].op})`)
          .rejects.toThrow(`injected fault at step ${k}`);
        expect(state(), `state after a fault at step ${k} (${plan.steps[k].op})`).toEqual(before);
      }
      // And the same request without a fault does change things.
      await session.attach({ fd: guest }, request, { converge });
      expect(snapshot(guest)).not.toEqual(before.guest);
    });
  }

  it('a kernel refusal half-way through the guest batch rolls back too', async () => {
    bridgeWithUplink('br0', 1500);
    const before = { host: snapshot(host), guest: snapshot(guest) };
    // The address and link-up succeed; the kernel refuses a broadcast address as gateway.
    const err = await session.attach({ fd: guest }, { hostInterface: 'br0', addresses: ['10.67.0.2/24'], gateway: '10.67.0.255' }).catch((e) => e);
    expect(err).toMatchObject({ code: 'EINVAL', operation: 'RTM_NEWROUTE eth1 default route' });
    expect(err.message).toMatch(/invalid gateway/i);
    expect({ host: snapshot(host), guest: snapshot(guest) }).toEqual(before);
  });
});

/** Unplug scenarios: attached, then unplugged with a fault at each step; nothing may be lost or leaked. */
const unplugScenarios: Record<string, Scenario & { ops: string[] }> = {
  'veth on a bridge': {
    setup: () => bridgeWithUplink('br0', 1500),
    request: { hostInterface: 'br0', addresses: ['10.66.0.2/24'], gateway: '10.66.0.1' },
    ops: ['delete-link'],
  },
  'macvlan on a physical interface': {
    setup: () => {
      ip(host, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p');
      ip(host, 'link', 'set', 'eth0p', 'up');
      ip(host, 'link', 'set', 'eth0', 'up');
    },
    request: { hostInterface: 'eth0', addresses: ['10.9.0.2/24'], gateway: '10.9.0.1' },
    ops: ['delete-link'],
  },
  '--direct-phys': {
    setup: () => ip(host, 'link', 'add', 'eth2', 'type', 'veth', 'peer', 'name', 'eth2p'),
    request: { hostInterface: 'eth2', directPhys: true, addresses: ['10.5.0.2/24'] },
    ops: ['return-link'],
  },
};

describe('unplug: a fault at every step', () => {
  for (const [name, { setup, request, ops }] of Object.entries(unplugScenarios)) {
    it(name, async () => {
      setup?.();
      const state = () => restingState([host, guest], () => ({ host: snapshot(host), guest: snapshot(guest) }));
      const before = await state();
      await session.attach({ fd: guest }, request);
      const attached = await state();
      expect(attached).not.toEqual(before);
      const plan = await session.planUnplug({ fd: guest });
      expect(plan.steps.map((s) => s.op)).toEqual(ops);
      for (let k = 0; k < plan.steps.length; k++) {
        await expect(session.unplug({ fd: guest }, 'eth1', { failAtStep: k })).rejects.toThrow(`injected fault at step ${k}`);
        expect(await state(), `state after a fault at step ${k} (${plan.steps[k].op})`).toEqual(attached);
      }
      expect(await session.unplug({ fd: guest })).toMatchObject({ action: ops[0] === 'return-link' ? 'returned' : 'deleted' });
      expect(await state()).toEqual(before);
      expect(await session.unplug({ fd: guest })).toEqual({ action: 'absent', kind: undefined });
    }, 180_000); // every state read waits for IPv6 to come to rest (over 1 s each)
  }
});

describe('rollback at every step, Open vSwitch port', () => {
  let ovsHost: ReturnType<typeof netnsSet>;
  let ovs: Ovs | undefined;
  beforeAll(async () => {
    ovsHost = netnsSet(1);
    ovs = await startOvs({ netns: `/proc/${process.pid}/fd/${ovsHost.fds[0]}` });
    await ovs.vsctl(['add-br', 'ovsbr0', '--', 'set', 'bridge', 'ovsbr0', 'datapath_type=netdev']);
  }, 60_000);
  afterAll(async () => {
    await ovs?.stop();
    ovsHost.close();
  });

  /** A fault at every step of the attach: host, guest and the ovsdb rows as they were. Returns the plan and the state before. */
  async function faultEveryStep(ovsSession: Session, request: AttachRequest) {
    const ovsState = async () => ({ show: await ovs!.vsctl(['show']), ports: await ovs!.vsctl(['--format=json', 'list', 'Port']),
      bridges: await ovs!.vsctl(['--format=json', '--columns=name,ports,external_ids', 'list', 'Bridge']) });
    const state = async () => ({ host: snapshot(ovsHost.fds[0]), guest: snapshot(guest), ovs: await ovsState() });
    const before = await state();
    const plan = await ovsSession.plan({ fd: guest }, request);
    for (let k = 0; k < plan.steps.length; k++) {
      injectAt(plan.steps.map((st) => st.op), k);
      await expect(ovsSession.attach({ fd: guest }, request, { failAtStep: k })).rejects.toThrow(`injected fault at step ${k}`);
      expect(await state(), `after a fault at step ${k} (${plan.steps[k].op})`).toEqual(before);
    }
    return { plan, before, ovsState };
  }

  it('veth as an OVS port with a VLAN tag and external-ids, IPv4 and gateway', async () => {
    const ovsSession = new Session({ hostNetns: ovsHost.fds[0] });
    try {
      const request = { hostInterface: 'ovsbr0', addresses: ['10.44.0.2/24'], gateway: '10.44.0.1', vlan: '7' };
      const { plan, before, ovsState } = await faultEveryStep(ovsSession, request);
      expect(plan.steps.map((s) => s.op)).toContain('ovs-add-port');
      await ovsSession.attach({ fd: guest }, request);
      expect(await ovs!.vsctl(['get', 'Port', plan.hostInterface!, 'tag'])).toBe('7\n');
      // The OVS host is shared with the next test: leave it as found.
      await ovsSession.unplug({ fd: guest });
      expect({ host: snapshot(ovsHost.fds[0]), ovs: await ovsState() }).toEqual({ host: before.host, ovs: before.ovs });
    } finally {
      ovsSession.close();
    }
  }, 120_000);
  it('a new OVS bridge (ovs*), its port, IPv4 and gateway', async () => {
    const ovsSession = new Session({ hostNetns: ovsHost.fds[0] });
    try {
      const request = { hostInterface: 'ovsnew1', addresses: ['10.45.0.2/24'], gateway: '10.45.0.1' };
      const { plan } = await faultEveryStep(ovsSession, request);
      expect(plan.steps.slice(0, 3).map((s) => s.op)).toEqual(['create-ovs-bridge', 'create-veth', 'ovs-add-port']);
      await ovsSession.attach({ fd: guest }, request);
      expect(await ovs!.vsctl(['list-ports', 'ovsnew1'])).toBe(`${plan.hostInterface}\n`);
      await ovsSession.unplug({ fd: guest });
      await ovs!.vsctl(['del-br', 'ovsnew1']);
    } finally {
      ovsSession.close();
    }
  }, 120_000);
  it('unplug of an OVS port: a fault at each step puts the port back as it was', async () => {
    const ovsSession = new Session({ hostNetns: ovsHost.fds[0] });
    try {
      // Row order and uuids change when a port is re-added: compare what defines it.
      const ovsState = async () => {
        const rows = async (table: string, columns: string) =>
          JSON.parse(await ovs!.vsctl(['--format=json', `--columns=${columns}`, 'list', table])).data.map((r: unknown[]) => JSON.stringify(r)).sort();
        return { ports: await rows('Port', 'name,tag'), ifaces: await rows('Interface', 'name,type,external_ids'), onBridge: await ovs!.vsctl(['list-ports', 'ovsbr0']) };
      };
      const request = { hostInterface: 'ovsbr0', addresses: ['10.44.0.2/24'], gateway: '10.44.0.1', vlan: '9' };
      const kernel = () => restingState([ovsHost.fds[0], guest], () => ({ host: snapshot(ovsHost.fds[0]), guest: snapshot(guest) }));
      const state = async () => ({ ...(await kernel()), ovs: await ovsState() });
      const before = await state();
      const { hostInterface } = await ovsSession.attach({ fd: guest }, request);
      const attached = await state();
      expect(attached.ovs.onBridge).toContain(hostInterface);
      const plan = await ovsSession.planUnplug({ fd: guest });
      expect(plan.steps.map((s) => s.op)).toEqual(['ovs-del-port', 'delete-link']);
      expect(plan.steps[0]).toMatchObject({ port: { bridge: 'ovsbr0', port: hostInterface, tag: 9, externalIds: { 'pipework.vlan': '9' } } });
      for (let k = 0; k < plan.steps.length; k++) {
        await expect(ovsSession.unplug({ fd: guest }, 'eth1', { failAtStep: k })).rejects.toThrow(`injected fault at step ${k}`);
        expect(await state(), `after a fault at step ${k} (${plan.steps[k].op})`).toEqual(attached);
      }
      await ovsSession.unplug({ fd: guest });
      expect(await state()).toEqual(before);
    } finally {
      ovsSession.close();
    }
  }, 120_000);
});

// Last in this file: the tests above have run. A new kind of step fails here until a test injects faults around it.
describe('every kind of attach step', () => {
  it('had a fault injected at it, and its undo run after a later one, here or where FAULTED_ELSEWHERE says', () => {
    const kinds = Object.keys(STEP_SIDE);
    expect(kinds.filter((op) => !faulted.has(op) && !(op in FAULTED_ELSEWHERE))).toEqual([]);
    // delete-host-link is the commit step, always last: nothing comes after it to fail.
    expect(kinds.filter((op) => op !== 'delete-host-link' && !undone.has(op) && !(op in FAULTED_ELSEWHERE))).toEqual([]);
  });
});
