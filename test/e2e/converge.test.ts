// Killed at any moment, re-run with --converge, done: for each attach kind,
// the CLI is killed (SIGKILL) right after each step of its plan
// (PIPEWORK_TEST_KILL_AFTER_STEP), then the same command with --converge must
// leave exactly what a clean run leaves (links, addresses, routes, rules of
// host and container, ovsdb rows), and once more must change nothing. Only
// inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/converge.test.ts
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settle, snapshot, withoutKernelNoise } from '../helpers/kernel';
import { BIN, cliIn } from '../helpers/cli';
import { mulberry32 } from '../helpers/random';
import { type Dnsmasq, startDnsmasq } from '../support/daemons/dnsmasq';
import { run } from '../support/daemons/helpers';
import { type Ovs, startOvs } from '../support/daemons/ovs';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/converge.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

const HOST = 'cvh';
const GUEST = 'cvg';

const cli = cliIn(HOST);

const ip = (...args: string[]) => run('ip', args);
const inHost = (...args: string[]) => run('ip', ['-n', HOST, ...args]);

/** Both netns' dumps, exactly as they are. */
function dumps() {
  const fds = [HOST, GUEST].map((n) => openSync(`/run/netns/${n}`, 'r'));
  try {
    const [host, guest] = fds.map(snapshot);
    return { host, guest };
  } catch (e) {
    throw e;
  } finally {
    fds.forEach((fd) => closeSync(fd));
  }
}

const stable = withoutKernelNoise;

/**
 * Also without MACs the kernel picks at random (a veth's, so its bridge's and
 * the IDs made from it), and ifindexes (a host kept across runs counts on).
 */
function comparable(d: unknown, keepMacs: string[]): unknown {
  const text = JSON.stringify(d, (k, v) => (['bridge_id', 'root_id', 'ifindex', 'link_index'].includes(k) ? undefined : v));
  return JSON.parse(text.replace(/\b[0-9a-f]{1,2}(:[0-9a-f]{1,2}){5}\b/g, (m) => (keepMacs.includes(m) || /^(ff:|0:0|00:00)/.test(m) ? m : '<random mac>')));
}

const settled = () => settle(() => stable(dumps()), 'the namespaces');

interface Scenario {
  /** The command's arguments without the options and with GUEST for the container. */
  args: string[];
  /** The host netns as the test needs it, made fresh for each run (unless the describe keeps one). */
  setup?: () => Promise<unknown>;
  /** MACs the command sets (kept in the comparison). */
  macs?: string[];
  /** Extra state to compare (ovsdb rows). */
  extra?: () => Promise<unknown>;
  /** Puts a kept host back as before the run. */
  reset?: () => Promise<void>;
}

async function freshGuest(): Promise<void> {
  await ip('netns', 'del', GUEST).catch(() => undefined);
  await ip('netns', 'add', GUEST);
}

async function freshBoth(setup?: () => Promise<unknown>): Promise<void> {
  await ip('netns', 'del', HOST).catch(() => undefined);
  await ip('netns', 'add', HOST);
  await freshGuest();
  await setup?.();
}

/**
 * The proof for one command: a clean run's state; then for each step k, a
 * run killed right after step k, the --converge run, and a second --converge
 * run that changes nothing.
 */
async function killAfterEachStep(s: Scenario, fresh: () => Promise<void>): Promise<void> {
  const state = async () => ({ dumps: comparable(await settled(), s.macs ?? []), extra: await s.extra?.() });
  await fresh();
  const plan = await cli(['--dry-run', ...s.args]);
  expect(plan.code, plan.stderr).toBe(0);
  const steps = plan.stdout.trim().split('\n');
  expect(steps.length).toBeGreaterThan(2);
  const clean = await cli(s.args);
  expect(clean.code, clean.stderr).toBe(0);
  const want = await state();
  await s.reset?.();

  for (let k = 0; k < steps.length; k++) {
    const at = `killed after step ${k} (${steps[k]})`;
    await fresh();
    const killed = await cli(s.args, { PIPEWORK_TEST_KILL_AFTER_STEP: String(k) });
    expect(killed.signal, `${at}: ${killed.stderr}`).toBe('SIGKILL');
    // Without --converge, as before: a re-run after the veth was made is refused.
    const converged = await cli(['--converge', '--json', ...s.args]);
    expect(converged.code, `${at}: ${converged.stderr}`).toBe(0);
    expect(JSON.parse(converged.stdout).status, at).toMatch(/^(created|repaired|unchanged)$/);
    expect(await state(), at).toEqual(want);
    const before = { dumps: await settled(), extra: await s.extra?.() };
    const again = await cli(['--converge', '--json', ...s.args]);
    expect(again.code, `${at}, again: ${again.stderr}`).toBe(0);
    expect(JSON.parse(again.stdout).status, at).toBe('unchanged');
    const dry = await cli(['--converge', '--dry-run', ...s.args]);
    expect(dry.stdout, at).toBe('');
    expect({ dumps: await settled(), extra: await s.extra?.() }, `${at}, again`).toEqual(before);
    await s.reset?.();
  }
}

const scenarios: Record<string, Scenario> = {
  'veth on a new bridge, IPv4, off-link gateway, MAC': {
    args: ['br1', GUEST, '10.66.0.2/24@10.77.0.1', '02:00:00:00:01:02'],
    macs: ['02:00:00:00:01:02'],
  },
  'veth on an existing bridge with no other port, MTU 1400, -i and -l': {
    setup: () => inHost('link', 'add', 'br0', 'mtu', '1400', 'type', 'bridge'),
    args: ['br0', '-i', 'eth2', '-l', 'vweb', GUEST, '10.66.0.2/24@10.66.0.1'],
  },
  'macvlan on a physical interface that is down': {
    setup: () => inHost('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p'),
    args: ['eth0', GUEST, '10.9.0.2/24@10.9.0.1'],
  },
  '--direct-phys with an address and a MAC': {
    setup: async () => {
      await inHost('link', 'add', 'eth2', 'type', 'veth', 'peer', 'name', 'eth2p');
      await inHost('link', 'set', 'eth2', 'up');
    },
    args: ['--direct-phys', 'eth2', GUEST, '10.5.0.2/24@10.5.0.1', '02:00:00:00:00:05'],
    macs: ['02:00:00:00:00:05'],
  },
};

describe('killed after each step, then --converge: the state of a clean run', () => {
  afterAll(async () => {
    for (const n of [GUEST, HOST]) await ip('netns', 'del', n).catch(() => undefined);
  });
  for (const [name, s] of Object.entries(scenarios)) {
    it(name, () => killAfterEachStep(s, () => freshBoth(s.setup)), 120_000);
  }

  it('refuses a link that is not the attachment asked for, saying why; without --converge, refuses as before', async () => {
    await freshBoth(async () => {
      await inHost('link', 'add', 'br0', 'type', 'bridge');
      await inHost('link', 'add', 'br9', 'type', 'bridge');
    });
    expect((await cli(['br0', GUEST, '10.1.0.2/24'])).code).toBe(0);
    const attached = await settled();
    const other = await cli(['--converge', 'br9', GUEST, '10.1.0.2/24']);
    expect(other.code).toBe(1);
    expect(other.stderr).toBe(`eth1 exists but is not the attachment asked for: eth1 in the container is a veth link whose host end veth1pl${GUEST} is not on bridge br9.\n`);
    const macvlan = await cli(['--converge', 'br0', '-l', 'vx', GUEST, '10.1.0.2/24']);
    expect(macvlan.stderr).toBe('eth1 exists but is not the attachment asked for: eth1 in the container is a veth link whose peer is not vx in the host.\n');
    const plain = await cli(['br0', GUEST, '10.1.0.2/24']);
    expect([plain.code, plain.stderr]).toEqual([1, `Link veth1pl${GUEST} exists and is up\n`]);
    expect(await settled()).toEqual(attached);
  });
});

describe('killed after each step, then --converge: Open vSwitch port with a tag', () => {
  let ovs: Ovs | undefined;
  beforeAll(async () => {
    await freshBoth();
    ovs = await startOvs({ netns: `/run/netns/${HOST}` });
    await ovs.vsctl(['add-br', 'ovsbr0', '--', 'set', 'bridge', 'ovsbr0', 'datapath_type=netdev']);
  }, 60_000);
  afterAll(async () => {
    await ovs?.stop();
    for (const n of [GUEST, HOST]) await ip('netns', 'del', n).catch(() => undefined);
  });

  it('veth as an OVS port, VLAN tag, IPv4 and gateway', async () => {
    // Row uuids change with each run: compare what defines the rows.
    const rows = async (table: string, columns: string) =>
      JSON.parse(await ovs!.vsctl(['--format=json', `--columns=${columns}`, 'list', table])).data.map((r: unknown[]) => JSON.stringify(r)).sort();
    await killAfterEachStep({
      args: ['ovsbr0', GUEST, '10.44.0.2/24@10.44.0.1', '@7'],
      extra: async () => ({
        ports: await rows('Port', 'name,tag,external_ids'), ifaces: await rows('Interface', 'name,type,external_ids'), onBridge: await ovs!.vsctl(['list-ports', 'ovsbr0']),
      }),
      reset: async () => {
        await ovs!.vsctl(['--if-exists', 'del-port', 'ovsbr0', `veth1pl${GUEST}`]);
        await freshGuest();
      },
    }, freshGuest);
  }, 180_000);
});

/** The DHCP clients (udhcpc, dhclient, dhcpcd) whose netns is the named netns's. */
function dhcpClientsIn(netns: string): string[] {
  const ino = statSync(`/run/netns/${netns}`).ino;
  const clients: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (['udhcpc', 'dhclient', 'dhcpcd'].includes(comm) && statSync(`/proc/${pid}/ns/net`).ino === ino) clients.push(comm);
    } catch { /* gone meanwhile */ }
  }
  return clients;
}

/** The DHCP scratch dirs of a guest (`<guest>.<ifname>.XXXXXX`), without their random part. */
const dhcpScratch = (guest: string) => (existsSync('/run/pipework-dhcp') ? readdirSync('/run/pipework-dhcp') : [])
  .filter((d) => d.startsWith(`${guest}.`)).map((d) => d.replace(/\.[^.]+$/, '')).sort();

describe('killed after each step, then --converge: DHCP (udhcpc against dnsmasq)', () => {
  let dnsmasq: Dnsmasq | undefined;
  beforeAll(async () => {
    await freshBoth(async () => {
      await inHost('link', 'add', 'br0', 'type', 'bridge');
      await inHost('addr', 'add', '10.68.0.1/24', 'dev', 'br0');
      await inHost('link', 'set', 'br0', 'up');
    });
    dnsmasq = await startDnsmasq({ iface: 'br0', range: ['10.68.0.100', '10.68.0.200'], netmask: '255.255.255.0', router: '10.68.0.1', netns: `/run/netns/${HOST}` });
  }, 60_000);
  afterAll(async () => {
    await dnsmasq?.stop();
    for (const n of [GUEST, HOST]) await ip('netns', 'del', n).catch(() => undefined);
  });

  // Beyond the kernel: the clients running in the container's netns, its pidfile and DHCP scratch dirs.
  const dhcpState = async () => ({ clients: dhcpClientsIn(GUEST), pidfile: existsSync(`/run/udhcpc.${GUEST}.pid`), scratch: dhcpScratch(GUEST) });
  const unplugGuest = async () => {
    await cli(['unplug', GUEST]);
    await freshGuest();
  };

  it('udhcpc with a fixed MAC (the same lease each run)', async () => {
    await killAfterEachStep({ args: ['br0', GUEST, 'udhcpc', '02:00:00:00:68:02'], macs: ['02:00:00:00:68:02'], extra: dhcpState, reset: unplugGuest }, freshGuest);
  }, 180_000);

  it('udhcpc -f, the client staying: one client, its pidfile and scratch dir, as after a clean run', async () => {
    const want = { clients: ['udhcpc'], pidfile: true, scratch: [`${GUEST}.eth1`] };
    await killAfterEachStep({
      args: ['br0', GUEST, 'udhcpc-f', '02:00:00:00:68:03'], macs: ['02:00:00:00:68:03'],
      extra: async () => { const now = await dhcpState(); expect(now).toEqual(want); return now; },
      reset: unplugGuest,
    }, freshGuest);
  }, 180_000);
});

describe('a 1000-line batch killed (SIGKILL) at 20 random moments, re-run with --converge after each', () => {
  const N = 1000;
  const KILLS = 20;
  // PIPEWORK_TEST_SEED replays a run; the seed used is printed.
  const SEED = Number(process.env.PIPEWORK_TEST_SEED ?? 1313);
  const guestName = (i: number) => `b${i}`;
  const ipBatch = (lines: string[]) => new Promise<void>((done, fail) => {
    const child = spawn('ip', ['-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`ip -batch: ${err}`))));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
  const guests = (op: 'add' | 'del') => ipBatch(Array.from({ length: N }, (_, i) => `netns ${op} ${guestName(i)}`));
  const file = `/run/pipework-converge-batch.txt`;

  const dumpCommands = '/run/pipework-converge-dump.txt';
  /** Every guest's addresses (with their links) and routes: one ip process forking one `ip -batch` per netns. */
  async function perGuest(): Promise<Record<string, unknown>> {
    writeFileSync(dumpCommands, 'addr show\nroute show table all\n');
    // 1000 ip processes, one after another: far more than run()'s default minute on a loaded machine.
    const out = await run('ip', ['-all', 'netns', 'exec', 'ip', '-j', '-d', '-batch', dumpCommands], { timeoutMs: 300_000 });
    const found: Record<string, unknown> = {};
    for (const part of out.split(/^netns: /m).slice(1)) {
      const [name, addrs, routes] = part.trim().split('\n');
      if (/^b\d+$/.test(name)) found[name] = { addrs: JSON.parse(addrs), routes: JSON.parse(routes) };
    }
    return found;
  }

  /** Host links and every guest's links, addresses and routes, without random MACs and ifindexes; host links by name. */
  async function batchState() {
    const host = stable(JSON.parse(await inHost('-j', '-d', 'link', 'show')) as { ifname: string }[]);
    const guest = stable(await perGuest());
    return comparable({ host: host.sort((a, b) => a.ifname.localeCompare(b.ifname)), guest }, []);
  }

  afterAll(async () => {
    await guests('del').catch(() => undefined);
    await ip('netns', 'del', HOST).catch(() => undefined);
  });

  it(`all lines complete, in the state of a clean run (seed ${SEED})`, async () => {
    console.log(`converge batch test: seed ${SEED} (PIPEWORK_TEST_SEED replays it)`);
    const setupHost = () => freshBoth(() => inHost('link', 'add', 'br0', 'up', 'type', 'bridge'));
    const lines = Array.from({ length: N }, (_, i) => `br0 ${guestName(i)} 10.70.${(i + 2) >> 8}.${(i + 2) & 255}/16@10.70.0.1`);
    writeFileSync(file, `${lines.join('\n')}\n`);

    await setupHost();
    await guests('add');
    const clean = await cli(['--batch', file]);
    expect(clean.code, clean.stderr).toBe(0);
    const want = await batchState();
    await guests('del');

    await setupHost();
    await guests('add');
    // The moments: after a random number of lines done, plus 0-20 ms, so that every kill lands while
    // lines are in flight (a run that only looks at complete lines is not killed). At least 200 lines are
    // left at a cut: with 13 left (a cut at 987), a run finished them within those 20 ms and was not killed.
    const random = mulberry32(SEED);
    const cutSet = new Set<number>();
    while (cutSet.size < KILLS) cutSet.add(1 + Math.floor(random() * (N - 200)));
    const cuts = [...cutSet].sort((a, b) => a - b);
    const complete = new Set<string>(); // guests reported complete by any run so far
    let killed = 0;
    const t0 = performance.now();
    for (let k = 0; k < KILLS; k++) {
      const child = spawn('nsenter', [`--net=/run/netns/${HOST}`, '--', process.execPath, BIN, '--json', ...(k ? ['--converge'] : []), '--batch', file],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      const extraMs = random() * 20;
      let pending = '';
      let timer: NodeJS.Timeout | undefined;
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        pending += d;
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const l of lines) complete.add(JSON.parse(l).guest);
        if (complete.size >= cuts[k] && !timer) timer = setTimeout(() => child.kill('SIGKILL'), extraMs);
      });
      const signal = await new Promise<string | null>((resolve) => child.on('close', (_code, sig) => resolve(sig)));
      clearTimeout(timer);
      if (signal === 'SIGKILL') killed++;
      else console.log(`run ${k} not killed (cut ${cuts[k]}, ${complete.size} complete): ${stderr.slice(0, 2000)}`);
    }
    expect(killed).toBe(KILLS);
    console.log(`converge batch test: ${KILLS} runs killed at ${cuts.join(', ')} lines (+0-20 ms) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const final = await cli(['--converge', '--json', '--batch', file]);
    expect(final.code, final.stderr).toBe(0);
    expect(final.stdout.trim().split('\n').map((l) => JSON.parse(l).status).every((s: string) => /^(created|repaired|unchanged)$/.test(s))).toBe(true);
    const before = await batchState();
    expect(before).toEqual(want);

    const again = await cli(['--converge', '--json', '--batch', file]);
    expect(again.code, again.stderr).toBe(0);
    const statuses = again.stdout.trim().split('\n').map((l) => JSON.parse(l).status);
    expect(statuses.length).toBe(N);
    expect(statuses.filter((s) => s !== 'unchanged')).toEqual([]);
    expect(await batchState()).toEqual(before);
  }, 600_000);
});
