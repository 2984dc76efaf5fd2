// A failure at any step of any attach leaves host and guest exactly as they
// were: every link, address, route and rule compared before and after.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AttachRequest, Session } from '../../src/index';
import { ip, netnsSet, snapshot } from '../helpers/kernel';

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
}

const scenarios: Record<string, Scenario> = {
  'veth on a new bridge, IPv4 with an off-link gateway, MAC': {
    request: { hostInterface: 'br1', addresses: ['10.66.0.2/24'], gateway: '10.77.0.1', mac: 'U:host1' },
  },
  'veth on an existing bridge, IPv4 and IPv6 with gateway': {
    setup: () => bridgeWithUplink('br0', 1400),
    request: { hostInterface: 'br0', addresses: ['10.66.0.2/24', '2001:db8::2/64'], gateway: '10.66.0.1', nodad: true },
  },
  'macvlan on a physical interface that is down': {
    setup: () => ip(host, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p'),
    request: { hostInterface: 'eth0', addresses: ['10.9.0.2/24'], gateway: '10.9.0.1' },
  },
  '--direct-phys with an address and a MAC': {
    setup: () => {
      ip(host, 'link', 'add', 'eth2', 'type', 'veth', 'peer', 'name', 'eth2p');
      ip(host, 'link', 'set', 'eth2', 'up');
    },
    request: { hostInterface: 'eth2', directPhys: true, addresses: ['10.5.0.2/24'], mac: '02:00:00:00:00:05' },
  },
};

describe('rollback at every step', () => {
  for (const [name, { setup, request }] of Object.entries(scenarios)) {
    it(name, async () => {
      setup?.();
      const before = { host: snapshot(host), guest: snapshot(guest) };
      const plan = await session.plan({ fd: guest }, request);
      expect(plan.steps.length).toBeGreaterThan(2);
      for (let k = 0; k < plan.steps.length; k++) {
        await expect(session.attach({ fd: guest }, request, { failAtStep: k }), `fault at step ${k} (${plan.steps[k].op})`)
          .rejects.toThrow(`injected fault at step ${k}`);
        expect({ host: snapshot(host), guest: snapshot(guest) }, `state after a fault at step ${k} (${plan.steps[k].op})`).toEqual(before);
      }
      // And the same request without a fault does change things.
      await session.attach({ fd: guest }, request);
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
