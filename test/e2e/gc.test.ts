// `pipework gc` after containers that died without unplug, one leftover kind
// at a time: each is found (--dry-run lists it and changes nothing) and
// removed, and nothing else changes: the host's and a live neighbour's
// links, addresses, routes and rules (and ovsdb rows) are compared with the
// state before the dead container was attached. Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/gc.test.ts
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restingState, snapshot, withoutKernelNoise } from '../helpers/kernel';
import { cliIn } from '../helpers/cli';
import { type Dnsmasq, startDnsmasq } from '../support/daemons/dnsmasq';
import { run } from '../support/daemons/helpers';
import { type Ovs, startOvs } from '../support/daemons/ovs';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/gc.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

const HOST = 'gch';
const DEAD = 'gcdead';
const ALIVE = 'gcalive';

const cli = cliIn(HOST);

const ip = (...args: string[]) => run('ip', args);
const inHost = (...args: string[]) => run('ip', ['-n', HOST, ...args]);

/**
 * The host's and the live neighbour's dumps, once the kernel has finished (a dead netns goes
 * asynchronously; carrier, and the IPv6 state that comes with it, a moment after a link is up).
 */
async function dumps() {
  const fds = [HOST, ALIVE].map((n) => openSync(`/run/netns/${n}`, 'r'));
  try {
    return await restingState(fds, () => {
      const [host, alive] = fds.map(snapshot);
      return withoutKernelNoise({ host, alive });
    });
  } finally {
    fds.forEach((fd) => closeSync(fd));
  }
}

async function fresh(setup?: () => Promise<unknown>): Promise<void> {
  for (const n of [DEAD, ALIVE, HOST]) await ip('netns', 'del', n).catch(() => undefined);
  for (const n of [HOST, ALIVE, DEAD]) await ip('netns', 'add', n);
  await setup?.();
}

/** The dead container dies without unplug: its netns goes (and the kernel deletes the links in it, with their veth peers). */
const die = () => ip('netns', 'del', DEAD);

/**
 * The proof for one kind: gc --dry-run lists exactly `expected` and changes
 * nothing; gc removes exactly that and leaves the state `want`; a second gc finds nothing.
 */
async function gcFinds(expected: string[], want: unknown, extra?: () => Promise<unknown>, flags: string[] = []): Promise<void> {
  const before = { dumps: await dumps(), extra: await extra?.() };
  const dry = await cli(['gc', '--dry-run', ...flags]);
  expect(dry.code, dry.stderr).toBe(0);
  expect(dry.stdout.trim().split('\n').filter(Boolean)).toEqual(expected);
  expect({ dumps: await dumps(), extra: await extra?.() }).toEqual(before);
  const done = await cli(['gc', ...flags]);
  expect(done.code, done.stderr).toBe(0);
  expect(done.stdout.trim().split('\n').filter(Boolean)).toEqual(expected);
  expect({ dumps: await dumps(), extra: await extra?.() }).toEqual(want);
  const again = await cli(['gc', ...flags]);
  expect([again.code, again.stdout]).toEqual([0, '']);
}

afterAll(async () => {
  for (const n of [DEAD, ALIVE, HOST]) await ip('netns', 'del', n).catch(() => undefined);
});

describe('pipework gc', () => {
  it('a bridge it created, with --bridges only, once its last port went; never one it found', async () => {
    await fresh(() => inHost('link', 'add', 'br8', 'up', 'type', 'bridge'));
    expect((await cli(['br8', ALIVE, '10.8.0.2/24'])).code).toBe(0);
    const want = { dumps: await dumps(), extra: undefined };
    expect((await cli(['br7', DEAD, '10.7.0.2/24'])).code).toBe(0);
    await inHost('link', 'add', 'br9', 'up', 'type', 'bridge'); // found, empty: not ours
    await die();
    // Without --bridges, an empty bridge it made stays.
    expect(await cli(['gc', '--dry-run'])).toMatchObject({ code: 0, stdout: '' });
    await inHost('link', 'del', 'br9');
    await gcFinds(['ip link del dev br7'], want, undefined, ['--bridges']);
  });

  it('a link a killed attach moved out of the way of the veth host end', async () => {
    await fresh(async () => {
      await inHost('link', 'add', 'br0', 'up', 'type', 'bridge');
      await inHost('link', 'add', 'vold', 'type', 'veth', 'peer', 'name', 'voldp');
    });
    const want = { dumps: await dumps(), extra: undefined };
    const killed = await cli(['br0', '-l', 'vold', DEAD, '10.9.0.2/24'], { PIPEWORK_TEST_KILL_AFTER_STEP: '0' });
    expect(killed.signal).toBe('SIGKILL');
    const aside = JSON.parse(await inHost('-j', 'link', 'show')).find((l: { ifname: string }) => /^pwold\d+$/.test(l.ifname))?.ifname;
    expect(aside).toMatch(/^pwold\d+$/);
    await die();
    // The moved-aside veth's peer stays in the host (voldp): deleting the aside link takes it too, as the attach would have.
    const wantAfter = JSON.parse(JSON.stringify(want));
    wantAfter.dumps.host.links = wantAfter.dumps.host.links.filter((l: { ifname: string }) => !['vold', 'voldp'].includes(l.ifname));
    wantAfter.dumps.host.addrs = wantAfter.dumps.host.addrs.filter((l: { ifname: string }) => !['vold', 'voldp'].includes(l.ifname));
    await gcFinds([`ip link del dev ${aside}`], wantAfter);
  });

  describe('Open vSwitch', () => {
    let ovs: Ovs | undefined;
    beforeAll(async () => {
      await fresh();
      ovs = await startOvs({ netns: `/run/netns/${HOST}` });
      await ovs.vsctl(['add-br', 'ovsbr0', '--', 'set', 'bridge', 'ovsbr0', 'datapath_type=netdev']);
    }, 60_000);
    afterAll(async () => {
      await ovs?.stop();
    });

    it('a port it added whose interface is gone; not one it did not add', async () => {
      const rows = async () => JSON.parse(await ovs!.vsctl(['--format=json', '--columns=name,external_ids', 'list', 'Interface']))
        .data.map((r: unknown[]) => JSON.stringify(r)).sort();
      const ovsState = async () => ({ rows: await rows(), ports: await ovs!.vsctl(['list-ports', 'ovsbr0']) });
      // A port someone else added, whose device is gone too: not ours.
      await inHost('link', 'add', 'theirs', 'type', 'veth', 'peer', 'name', 'theirsp');
      await ovs!.vsctl(['add-port', 'ovsbr0', 'theirs']);
      await inHost('link', 'del', 'theirs');
      expect((await cli(['ovsbr0', ALIVE, '10.44.0.2/24', '@7'])).code).toBe(0);
      const want = { dumps: await dumps(), extra: await ovsState() };
      expect((await cli(['ovsbr0', DEAD, '10.44.0.3/24', '@7'])).code).toBe(0);
      await die();
      await gcFinds([`ovs-vsctl --if-exists del-port ovsbr0 veth1pl${DEAD}`], want, ovsState);
    }, 120_000);
  });

  describe('DHCP', () => {
    let dnsmasq: Dnsmasq | undefined;
    beforeAll(async () => {
      await fresh(async () => {
        await inHost('link', 'add', 'br0', 'type', 'bridge');
        await inHost('addr', 'add', '10.69.0.1/24', 'dev', 'br0');
        await inHost('link', 'set', 'br0', 'up');
      });
      dnsmasq = await startDnsmasq({ iface: 'br0', range: ['10.69.0.100', '10.69.0.200'], netmask: '255.255.255.0', netns: `/run/netns/${HOST}` });
    }, 60_000);
    afterAll(async () => {
      // The live neighbour's client must not outlive the test: unplug stops it.
      await cli(['unplug', ALIVE]);
      await dnsmasq?.stop();
    });

    it('a client left running alone in the netns of a container that is gone: stopped, pidfile and scratch dir removed', async () => {
      const scratch = () => (existsSync('/run/pipework-dhcp') ? readdirSync('/run/pipework-dhcp').sort() : []);
      expect((await cli(['br0', ALIVE, 'udhcpc-f'])).code).toBe(0);
      const want = { dumps: await dumps(), extra: scratch() };
      const dead = await cli(['--json', 'br0', DEAD, 'udhcpc-f']);
      expect(dead.code, dead.stderr).toBe(0);
      const pid = Number((await run('cat', [`/run/udhcpc.${DEAD}.pid`])).trim());
      expect(existsSync(`/run/udhcpc.${DEAD}.pid`)).toBe(true);
      const deadDir = scratch().find((d) => d.startsWith(`${DEAD}.`));
      expect(deadDir).toBeDefined();
      await die();
      // Its client keeps the netns (and so its veth) alive: gc stops it, and the kernel then takes the rest.
      await gcFinds([expect.stringMatching(new RegExp(`^kill \\d+; rm -rf /var/run/pipework-dhcp/${deadDir}  # udhcpc for eth1 of ${DEAD}$`))] as never, want, async () => scratch());
      expect(existsSync(`/run/udhcpc.${DEAD}.pid`)).toBe(false);
      const running = () => { try { return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };
      expect(running()).toBe(false);
      // The live neighbour's client still runs.
      expect(scratch().filter((d) => d.startsWith(`${ALIVE}.`))).toHaveLength(1);
    }, 120_000);
  });
});
