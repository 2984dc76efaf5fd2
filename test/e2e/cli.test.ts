// The pipework command end to end: every form of the original, run as
// `node bin/pipework.js ...` in throwaway namespaces, with the kernel state
// read back by iproute2 (`ip -j`), tc and ovs-vsctl, and connectivity proved
// with ping. Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cli.test.ts
//
// Each test gets a fresh named netns playing "host" (`pwh`: bridges, veth host
// ends, "physical" NICs) and fresh named netns as containers (`pwc1`, `pwc2`,
// ...); the CLI runs in the host netns (`nsenter --net=/run/netns/pwh node
// bin/pipework.js ...`). afterEach kills the processes the test started (by
// PID) and deletes the namespaces. Docker, LXC and OVS are started once per
// describe block with the fixtures of test/support/daemons.ts.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type LinkJson, settle } from '../helpers/kernel';
import {
  OVS_DB_SOCK, daemonsInThisNetns, startDockerd, startLxc, startOvs, type Dockerd, type Lxc, type Ovs,
} from '../support/daemons';
import { USAGE } from '../../src/cli/args';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/cli.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

const BIN = resolve(__dirname, '../../bin/pipework.js');
const HOST = 'pwh';

// ---------------------------------------------------------------------------
// Running things

interface CliResult { code: number | null; stdout: string; stderr: string }

/** A named netns, a /proc/.../ns/net path or a PID, as a netns file. */
const nsFile = (ns: string | number) =>
  typeof ns === 'number' ? `/proc/${ns}/ns/net` : ns.startsWith('/') ? ns : `/run/netns/${ns}`;

/** `pipework ARGS`, run in the netns `host` (default: this test's host netns). */
function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; host?: string; input?: string } = {}): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn('nsenter', [`--net=${nsFile(opts.host ?? HOST)}`, '--', process.execPath, BIN, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** A command for test setup: throws with its stderr on failure. */
function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `CMD ARGS` inside a netns. */
const inNs = (ns: string | number, cmd: string, ...args: string[]) => sh('nsenter', `--net=${nsFile(ns)}`, '--', cmd, ...args);
const ip = (ns: string | number, ...args: string[]) => inNs(ns, 'ip', ...args);

/** `ip -j ARGS` in a netns, parsed (iproute2 leaves empty objects in some lists: dropped). */
function ipj<T = any>(ns: string | number, ...args: string[]): T {
  const out = inNs(ns, 'ip', '-j', ...args).trim();
  const isEmpty = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
  return (out ? JSON.parse(out, (_k, v) => (Array.isArray(v) ? v.filter((x) => !isEmpty(x)) : v)) : []) as T;
}

const links = (ns: string | number): LinkJson[] => ipj(ns, '-d', 'link', 'show');
const link = (ns: string | number, name: string) => links(ns).find((l) => l.ifname === name);
const names = (ns: string | number) => links(ns).map((l) => l.ifname).sort();
const addrInfo = (ns: string | number, dev: string, fam = '-4'): any[] => ipj<any[]>(ns, fam, 'addr', 'show', 'dev', dev)[0]?.addr_info ?? [];
const routes = (ns: string | number, fam = '-4', ...args: string[]): any[] => ipj(ns, fam, 'route', 'show', ...args);

/** Everything an attach could change in a netns, comparable across time (counters, timers, DAD state stripped). */
function snapshot(ns: string | number) {
  const DERIVED = new Set(['stats', 'stats64', 'valid_life_time', 'preferred_life_time', 'qdisc', 'operstate', 'tentative',
    'tso_max_size', 'tso_max_segs', 'gso_max_size', 'gso_max_segs', 'gro_max_size', 'gso_ipv4_max_size', 'gro_ipv4_max_size']);
  const strip = (o: unknown) => JSON.parse(JSON.stringify(o, (k, v) => (DERIVED.has(k) || /_timer$/.test(k) ? undefined : v)));
  // IPv6 link-local addresses and their routes come and go with the kernel's DAD timers, not with pipework.
  const linkLocal = (dst?: string) => !!dst && (dst.startsWith('fe80') || dst === 'ff00::/8');
  const addrs = strip(ipj(ns, 'addr', 'show')).map((a: any) => ({
    ...a, addr_info: (a.addr_info ?? []).filter((i: any) => !(i.family === 'inet6' && i.scope === 'link')),
  }));
  return {
    links: strip(links(ns)),
    addrs,
    routes: strip(ipj<any[]>(ns, 'route', 'show', 'table', 'all').filter((r) => !linkLocal(r.dst))),
    routes6: strip(ipj<any[]>(ns, '-6', 'route', 'show', 'table', 'all').filter((r) => !linkLocal(r.dst))),
    rules: ipj(ns, 'rule', 'show'),
  };
}

/** Snapshots of the netns once the kernel has finished with what the test just did. */
const settled = (...nss: Array<string | number>) => settle(() => nss.map(snapshot), `netns ${nss.join(', ')}`);

/**
 * One echo answered. IPv6 gets a few tries: until the kernel's link watcher
 * reports the new veth's carrier (it batches such events, up to a second),
 * IPv6 neither sends nor answers neighbour discovery on it.
 */
function ping(ns: string | number, addr: string, waitS = 2): boolean {
  const fam = addr.includes(':') ? '-6' : '-4';
  const tries = fam === '-6' ? 3 : 1;
  for (let i = 0; i < tries; i++) {
    if (spawnSync('nsenter', [`--net=${nsFile(ns)}`, 'ping', fam, '-c', '1', '-W', String(waitS), addr], { stdio: 'ignore' }).status === 0) return true;
  }
  return false;
}

/** True if the kernel can make links of this kind (tried in a scratch netns). */
function kernelHas(kind: string, ...extra: string[]): boolean {
  return spawnSync('unshare', ['--net', 'sh', '-c', `ip link add probe0 type veth peer name probe1 && ip link add ${kind === 'vlan' ? 'link probe0 ' : ''}name probe2 type ${kind} ${extra.join(' ')}`],
    { stdio: 'ignore' }).status === 0;
}
/** True if tc knows the qdisc here. */
function hasQdisc(q: string, ...args: string[]): boolean {
  return spawnSync('unshare', ['--net', 'sh', '-c', `ip link set lo up && tc qdisc add dev lo root ${q} ${args.join(' ')}`], { stdio: 'ignore' }).status === 0;
}
const HAS_DUMMY = kernelHas('dummy');
const HAS_VLAN = kernelHas('vlan', 'id', '7');
const HAS_NETEM = hasQdisc('netem', 'delay', '10ms');
/** The original's U:<text> MAC: 02 + the first 5 bytes of md5("<text>\n"). */
const uMac = (text: string) => ['02', ...createHash('md5').update(`${text}\n`).digest().subarray(0, 5).toString('hex').match(/../g)!].join(':');
const hasBin = (b: string) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status === 0;

/** An error as users must see it: exit 1, exactly this on stderr (no stack trace), nothing on stdout. */
function expectError(r: CliResult, message: string | RegExp) {
  expect(r.stdout).toBe('');
  if (typeof message === 'string') expect(r.stderr).toBe(`${message}\n`);
  else expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.code).toBe(1);
}

function expectOk(r: CliResult) {
  if (r.code !== 0) throw new Error(`pipework exited ${r.code}: ${r.stderr}`);
  expect(r.stderr).toBe('');
}

// ---------------------------------------------------------------------------
// Per-test namespaces and processes

const madeNs: string[] = [];
/** PIDs of the daemons this file started (checked to be gone at the end). */
const ourDaemons: number[] = [];
const children: ChildProcess[] = [];
const cleanups: Array<() => unknown> = [];

function addNs(name: string): string {
  sh('ip', 'netns', 'add', name);
  madeNs.push(name);
  return name;
}

/** Fresh host netns `pwh` and `n` container netns `pwc1..n`. */
function setup(n = 1): string[] {
  addNs(HOST);
  ip(HOST, 'link', 'set', 'lo', 'up');
  return Array.from({ length: n }, (_, i) => addNs(`pwc${i + 1}`));
}

/** `ip netns exec NS sleep 300` in the background: a process whose PID names that netns. */
async function sleeperIn(ns: string): Promise<number> {
  const child = spawn('ip', ['netns', 'exec', ns, 'sleep', '300'], { stdio: 'ignore' });
  children.push(child);
  const want = statSync(nsFile(ns)).ino;
  for (let i = 0; i < 200; i++) {
    try {
      if (statSync(`/proc/${child.pid}/ns/net`).ino === want && readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() === 'sleep') return child.pid!;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`sleep never entered ${ns}`);
}

/** A veth pair in the host netns whose end `name` plays a physical NIC (the peer stays, up, as the "wire"). */
async function fakeNic(name: string, opts: { mtu?: number; mac?: string } = {}) {
  ip(HOST, 'link', 'add', name, 'mtu', String(opts.mtu ?? 1500), ...(opts.mac ? ['address', opts.mac] : []), 'type', 'veth', 'peer', 'name', `${name}p`);
  ip(HOST, 'link', 'set', name, 'up');
  ip(HOST, 'link', 'set', `${name}p`, 'up');
  // carrier comes a moment later (linkwatch): wait, so that snapshots taken now do not see it change
  for (let i = 0; i < 200; i++) {
    if ([name, `${name}p`].every((n) => link(HOST, n)?.operstate === 'UP')) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${name} never got carrier`);
}

const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await exited(c);
    }
  }
  for (const f of cleanups.splice(0)) await f();
  for (const ns of madeNs.splice(0)) {
    // Links first, synchronously: a deleted netns goes away in the background, and the host
    // ends of its veths (in a netns that stays, e.g. OVS's) with it, some time later.
    try {
      for (const l of links(ns)) if (l.ifname !== 'lo') spawnSync('ip', ['-n', ns, 'link', 'del', l.ifname], { stdio: 'ignore' });
    } catch { /* gone already */ }
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
});

// ---------------------------------------------------------------------------

describe('usage, help and options', () => {
  it('no arguments: the Syntax: block on stderr, exit 1', async () => {
    const r = await cli([], { host: '/proc/self/ns/net' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`${USAGE}\n`);
    expect(r.stderr.split('\n')[0]).toBe('Syntax:');
    for (const form of ['pipework route <guest>', 'pipework rule <guest>', 'pipework tc <guest>', 'pipework --wait', 'pipework mac:']) {
      expect(r.stderr).toContain(form);
    }
  });

  it('too few arguments (host interface and guest only): the usage block, exit 1', async () => {
    const r = await cli(['br0', 'pwc1'], { host: '/proc/self/ns/net' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${USAGE}\n`);
  });

  it('--help and -h: the usage block and our options on stdout, exit 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await cli([flag], { host: '/proc/self/ns/net' });
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout.startsWith('Syntax:\n')).toBe(true);
      for (const o of ['--dry-run', '--json', '--batch', '--direct-phys', '--macvlan-mode', '--timeout', '--no-ipv6', '--concurrency', 'unplug']) expect(r.stdout).toContain(o);
    }
  });

  it('--version prints the package version', async () => {
    const r = await cli(['--version'], { host: '/proc/self/ns/net' });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')).version);
  });

  it('an unknown option: named, exit 1', async () => {
    expectError(await cli(['--bogus', 'br0', 'pwc1', '10.0.0.2/24'], { host: '/proc/self/ns/net' }), 'Unknown option: --bogus (see pipework --help)');
    expectError(await cli(['-x', 'br0', 'pwc1', '10.0.0.2/24'], { host: '/proc/self/ns/net' }), 'Unknown option: -x (see pipework --help)');
  });

  it('-i/-l/-a out of the original order: says which order, exit 1', async () => {
    setup(1);
    const [before] = await settled(HOST);
    const r = await cli(['br0', '-l', 'vloc', '-i', 'eth2', 'pwc1', '0/0']);
    expectError(r, /^Options after the host interface go in this order: -i, -l, -a/);
    const r2 = await cli(['-a', '6', 'br0', 'pwc1', '2001:db8::2/64']);
    expectError(r2, /^Options after the host interface go in this order: -i, -l, -a|^Unknown option/);
    expect(snapshot(HOST)).toEqual(before);
  });

  it('an invalid --timeout is refused', async () => {
    expectError(await cli(['--wait', '--timeout', 'soon'], { host: '/proc/self/ns/net' }), 'Invalid --timeout: soon (seconds)');
  });
});

describe('Linux bridge', () => {
  it('br* absent: created and brought up; veth host end veth1pl<netns> enslaved; both containers and the bridge reach each other', async () => {
    const [c1, c2] = setup(2);
    expectOk(await cli(['br0', c1, '10.5.0.2/24']));
    expectOk(await cli(['br0', c2, '10.5.0.3/24']));

    const br = link(HOST, 'br0')!;
    expect(br.linkinfo?.info_kind).toBe('bridge');
    expect(br.flags).toContain('UP');
    const ports = ipj<any[]>(HOST, 'link', 'show', 'master', 'br0').map((l) => l.ifname).sort();
    expect(ports).toEqual([`veth1pl${c1}`, `veth1pl${c2}`]);
    for (const p of ports) {
      expect(link(HOST, p)!.linkinfo?.info_kind).toBe('veth');
      expect(link(HOST, p)!.flags).toContain('UP');
    }
    for (const [c, a] of [[c1, '10.5.0.2'], [c2, '10.5.0.3']]) {
      const eth1 = link(c, 'eth1')!;
      expect(eth1.linkinfo?.info_kind).toBe('veth');
      expect(eth1.flags).toEqual(expect.arrayContaining(['UP', 'LOWER_UP']));
      expect(addrInfo(c, 'eth1')).toEqual([expect.objectContaining({ local: a, prefixlen: 24, broadcast: '10.5.0.255' })]);
      expect(routes(c, '-4', 'default')).toEqual([]);
    }
    ip(HOST, 'addr', 'add', '10.5.0.1/24', 'dev', 'br0');
    expect(ping(c1, '10.5.0.3')).toBe(true);
    expect(ping(c2, '10.5.0.1')).toBe(true);
    expect(ping(HOST, '10.5.0.2')).toBe(true);
  });

  it('an existing bridge is used as it is (same ifindex), its MTU copied to both veth ends', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'lan0', 'mtu', '1400', 'type', 'bridge');
    ip(HOST, 'addr', 'add', '10.6.0.1/24', 'dev', 'lan0');
    ip(HOST, 'link', 'set', 'lan0', 'up');
    const before = link(HOST, 'lan0')!;
    expectOk(await cli(['lan0', c1, '10.6.0.2/24@10.6.0.1']));
    const after = link(HOST, 'lan0')!;
    expect(after.ifindex).toBe(before.ifindex);
    expect(link(HOST, `veth1pl${c1}`)).toMatchObject({ mtu: 1400, master: 'lan0' });
    expect(link(c1, 'eth1')).toMatchObject({ mtu: 1400 });
    // on-link gateway: no host route, just the default
    expect(routes(c1)).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: '10.6.0.1', dev: 'eth1' }),
    ]));
    expect(routes(c1).filter((r) => r.dst === '10.6.0.1')).toEqual([]);
    expect(ping(c1, '10.6.0.1')).toBe(true);
  });

  it('a PID as guest: host end veth1pl<pid> (veth<N>pl<pid> with -i eth<N>), the link in that process\'s netns', async () => {
    const [c1] = setup(1);
    const pid = await sleeperIn(c1);
    expectOk(await cli(['br0', String(pid), '10.7.0.2/24']));
    expectOk(await cli(['br0', '-i', 'eth2', String(pid), '10.7.1.2/24']));
    expect(link(HOST, `veth1pl${pid}`)).toMatchObject({ master: 'br0' });
    expect(link(HOST, `veth2pl${pid}`)).toMatchObject({ master: 'br0' });
    expect(addrInfo(pid, 'eth1')).toEqual([expect.objectContaining({ local: '10.7.0.2', prefixlen: 24 })]);
    expect(addrInfo(c1, 'eth2')).toEqual([expect.objectContaining({ local: '10.7.1.2', prefixlen: 24 })]);
  });

  it('a PID that has exited: "Container <pid> not found.", exit 1, nothing made', async () => {
    const [c1] = setup(1);
    const pid = await sleeperIn(c1);
    const child = children.find((c) => c.pid === pid)!;
    child.kill('SIGKILL');
    await exited(child);
    const [before] = await settled(HOST);
    expectError(await cli(['br0', String(pid), '10.7.0.2/24']), `Container ${pid} not found.`);
    expect(snapshot(HOST)).toEqual(before);
  });

  it('-i and -l name the container end and the host end', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', '-i', 'lan5', '-l', 'myveth', c1, '10.8.0.2/24']));
    expect(link(HOST, 'myveth')).toMatchObject({ master: 'br0' });
    expect(link(HOST, `veth1pl${c1}`)).toBeUndefined();
    expect(link(c1, 'lan5')?.linkinfo?.info_kind).toBe('veth');
    expect(link(c1, 'eth1')).toBeUndefined();
    expect(addrInfo(c1, 'lan5')).toEqual([expect.objectContaining({ local: '10.8.0.2' })]);
  });

  it('-l of a link that exists and is up: "Link X exists and is up", exit 1, nothing changed', async () => {
    const [c1, c2] = setup(2);
    expectOk(await cli(['br0', '-l', 'vloc', c1, '10.9.0.2/24']));
    const before = await settled(HOST, c1, c2);
    expectError(await cli(['br0', '-l', 'vloc', c2, '10.9.0.3/24']), 'Link vloc exists and is up');
    expect([snapshot(HOST), snapshot(c1), snapshot(c2)]).toEqual(before);
  });

  it('-l of a link that exists but is down: deleted and made again', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', '-l', 'vloc', c1, '10.9.0.2/24']));
    const old = link(HOST, 'vloc')!;
    ip(HOST, 'link', 'set', 'vloc', 'down');
    expectOk(await cli(['br0', '-l', 'vloc', c1, '10.9.0.5/24']));
    const now = link(HOST, 'vloc')!;
    expect(now.ifindex).not.toBe(old.ifindex);
    expect(now.flags).toContain('UP');
    expect(now.master).toBe('br0');
    // the old pair's container end went with it: only the new address is there
    expect(addrInfo(c1, 'eth1')).toEqual([expect.objectContaining({ local: '10.9.0.5' })]);
    expect(ipj<any[]>(HOST, 'link', 'show', 'master', 'br0').map((l) => l.ifname)).toEqual(['vloc']);
  });

  it('-l or -i longer than 15 bytes: says why, exit 1, nothing made', async () => {
    const [c1] = setup(1);
    const [before] = await settled(HOST);
    expectError(await cli(['br0', '-l', 'averyveryverylongname', c1, '0/0']),
      "The local interface name 'averyveryverylongname' is 21 characters long; Linux allows at most 15.");
    expectError(await cli(['br0', '-i', 'averyveryverylongname', c1, '0/0']),
      "The container interface name 'averyveryverylongname' is 21 characters long; Linux allows at most 15.");
    expect(snapshot(HOST)).toEqual(before);
  });

  it('a generated name over 15 bytes is shortened, never refused', async () => {
    const ns = addNs('pwverylongname');
    setup(0);
    expectOk(await cli(['br0', ns, '0/0']));
    const ports = ipj<any[]>(HOST, 'link', 'show', 'master', 'br0').map((l) => l.ifname);
    expect(ports).toHaveLength(1);
    expect(Buffer.byteLength(ports[0])).toBeLessThanOrEqual(15);
    expect(ports[0]).toMatch(/^veth1p-[a-z2-7]{8}$/);
  });

  it('@gw off-link: host route <gw>/32 dev eth1, then the default via it', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.10.0.2/24@10.99.0.1']));
    const rs = routes(c1);
    expect(rs).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: '10.99.0.1', dev: 'eth1', scope: 'link' }),
      expect.objectContaining({ dst: 'default', gateway: '10.99.0.1', dev: 'eth1' }),
    ]));
    expect(rs.find((r) => r.dst === '10.99.0.1').gateway).toBeUndefined();
  });

  it('@gw on a second interface replaces the old default route (the original deletes it first)', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.11.0.2/24@10.11.0.1']));
    const r = await cli(['br0', '-i', 'eth2', c1, '10.12.0.2/24@10.99.0.1']);
    expectOk(r);
    const rs = routes(c1);
    expect(rs.filter((x) => x.dst === 'default')).toEqual([expect.objectContaining({ gateway: '10.99.0.1', dev: 'eth2' })]);
    expect(rs).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '10.99.0.1', dev: 'eth2', scope: 'link' })]));
  });

  it('-v says what was done, on stderr', async () => {
    const [c1] = setup(1);
    const r = await cli(['-v', 'br0', c1, '10.15.0.2/24@10.15.0.1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const mac = link(c1, 'eth1')!.address;
    expect(r.stderr).toBe(`${c1}: eth1 (${mac}, mtu 1500) <-> veth1pl${c1} 10.15.0.2/24 via 10.15.0.1\n`);
  });

  it('0/0: no address, link up', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '0/0']));
    const eth1 = link(c1, 'eth1')!;
    expect(eth1.flags).toContain('UP');
    expect(addrInfo(c1, 'eth1')).toEqual([]);
    expect(routes(c1)).toEqual([]);
  });

  it('a MAC sets the container end; U:<text> gives 02 + md5(text\\n)[0..5]', async () => {
    const [c1, c2] = setup(2);
    expectOk(await cli(['br0', c1, '10.13.0.2/24', '02:12:34:56:78:9a']));
    expectOk(await cli(['br0', c2, '10.13.0.3/24', 'U:myhost.foo.com']));
    expect(link(c1, 'eth1')!.address).toBe('02:12:34:56:78:9a');
    expect(link(c2, 'eth1')!.address).toBe('02:72:6c:cd:9b:8d');
    expect(ping(c1, '10.13.0.3')).toBe(true);
    const neigh = ipj<any[]>(c1, 'neigh', 'show', '10.13.0.3');
    expect(neigh[0]?.lladdr).toBe('02:72:6c:cd:9b:8d');
  });

  it('an invalid MAC: named, exit 1, nothing made', async () => {
    const [c1] = setup(1);
    const [before] = await settled(HOST);
    expectError(await cli(['br0', c1, '10.13.0.2/24', '02:12:34:zz:78:9a']), 'Invalid MAC address: 02:12:34:zz:78:9a');
    expectError(await cli(['br0', c1, '10.13.0.2/24', '01:00:5e:00:00:01']), 'Invalid MAC address: 01:00:5e:00:00:01 is a multicast address');
    expect(snapshot(HOST)).toEqual(before);
  });

  it('-a 6: IPv6 address, on-link gateway, no broadcast; two containers ping over IPv6 (--nodad)', async () => {
    const [c1, c2] = setup(2);
    expectOk(await cli(['--nodad', 'br0', '-a', '6', c1, '2001:db8::2/64@2001:db8::1']));
    expectOk(await cli(['--nodad', 'br0', '-a', '6', c2, '2001:db8::3/64']));
    const a = addrInfo(c1, 'eth1', '-6').filter((x) => x.scope === 'global');
    expect(a).toEqual([expect.objectContaining({ local: '2001:db8::2', prefixlen: 64 })]);
    expect(a[0].broadcast).toBeUndefined();
    const rs = routes(c1, '-6');
    expect(rs).toEqual(expect.arrayContaining([expect.objectContaining({ dst: 'default', gateway: '2001:db8::1', dev: 'eth1' })]));
    expect(rs.filter((r) => r.dst === '2001:db8::1')).toEqual([]);
    expect(ping(c1, '2001:db8::3')).toBe(true);
  });

  it('-a 6 with an off-link gateway: host route <gw>/128 (not /32)', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', '-a', '6', c1, '2001:db8::2/64@2001:db8:1::1']));
    const rs = routes(c1, '-6');
    const host = rs.find((r) => r.dst === '2001:db8:1::1' || r.dst === '2001:db8:1::1/128');
    expect(host).toMatchObject({ dev: 'eth1' });
    expect(host.gateway).toBeUndefined();
    expect(rs).toEqual(expect.arrayContaining([expect.objectContaining({ dst: 'default', gateway: '2001:db8:1::1', dev: 'eth1' })]));
    // and the kernel really treats it as a /128
    expect(ipj<any[]>(c1, '-6', 'route', 'show', 'exact', '2001:db8:1::1/128')).toHaveLength(1);
  });

  it('-a 6 with an IPv4 address, or -a 5: refused, exit 1, nothing made', async () => {
    const [c1] = setup(1);
    const [before] = await settled(HOST);
    expectError(await cli(['br0', '-a', '6', c1, '10.0.0.1/24']), 'The address 10.0.0.1/24 is not an IPv6 address (-a 6).');
    expectError(await cli(['br0', '-a', '5', c1, '10.0.0.1/24']), 'Invalid address family: -a 5 (4 or 6)');
    expect(snapshot(HOST)).toEqual(before);
  });

  it('a failure after the bridge and veth were made (the kernel refuses the address) rolls all of it back', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    const r = await cli(['brnew', '-a', '6', c1, 'ff02::1/64']);
    expectError(r, /^RTM_NEWADDR eth1/);
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
    expect(link(HOST, 'brnew')).toBeUndefined();
  });

  it('@vlan on an existing Linux bridge: the original message, exit 1, nothing made', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'br0', 'type', 'bridge');
    const before = await settled(HOST, c1);
    expectError(await cli(['br0', c1, '10.14.0.2/24', '@5']), 'VLAN configuration currently unsupported for Linux bridge.');
    expectError(await cli(['br0', c1, '10.14.0.2/24', '02:12:34:56:78:9a@5']), 'VLAN configuration currently unsupported for Linux bridge.');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('@vlan with a br* bridge still to create: the same message, and no bridge is created', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['brnew', c1, '10.14.0.2/24', '@5']), 'VLAN configuration currently unsupported for Linux bridge.');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });
});

describe('gratuitous ARP, seen on the bridge', () => {
  /** tcpdump on `dev` in the host netns, ARP only; resolves once it listens. */
  async function captureArp(dev: string): Promise<{ lines(): string[]; stop(): Promise<void> }> {
    const child = spawn('nsenter', [`--net=${nsFile(HOST)}`, '--', 'tcpdump', '-i', dev, '-n', '-l', '--immediate-mode', 'arp'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    for (let i = 0; !/listening on/.test(err); i++) {
      if (child.exitCode !== null || i > 500) throw new Error(`tcpdump did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return {
      lines: () => out.split('\n').filter(Boolean),
      stop: async () => { child.kill('SIGINT'); await exited(child); },
    };
  }

  it.skipIf(!hasBin('tcpdump'))('the default announces the address (who-has itself, tell itself); --no-arp sends none', async () => {
    const [c1, c2] = setup(2);
    ip(HOST, 'link', 'add', 'br0', 'type', 'bridge');
    ip(HOST, 'link', 'set', 'br0', 'up');
    const cap = await captureArp('br0');
    // First the one that must stay silent, then the one that announces: once the announcement is seen, the
    // first attach's link has long been up, and anything it sent was captured before.
    expectOk(await cli(['--no-arp', 'br0', c1, '10.140.0.2/24']));
    expectOk(await cli(['br0', c2, '10.140.0.3/24']));
    const announce = (a: string) => new RegExp(`ARP, Request who-has ${a.replace(/\./g, '\\.')} tell ${a.replace(/\./g, '\\.')}, `);
    for (let i = 0; !cap.lines().some((l) => announce('10.140.0.3').test(l)); i++) {
      if (i > 500) throw new Error(`no gratuitous ARP for 10.140.0.3 seen on br0: ${cap.lines().join('\n')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await cap.stop();
    expect(cap.lines().filter((l) => l.includes('10.140.0.2'))).toEqual([]);
    // And the silent one still works: it answers ARP when asked.
    expect(ping(c2, '10.140.0.2')).toBe(true);
  });
});

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

describe('error texts of the original (exit 1, stderr, state unchanged)', () => {
  it('IP without a netmask: both lines', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['br0', c1, '10.40.0.2']), 'The IP address should include a netmask.\nMaybe you meant 10.40.0.2/24 ?');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('an invalid address, an invalid prefix length: named', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['br0', c1, '10.40.0.300/24']), 'Invalid IP address: 10.40.0.300');
    expectError(await cli(['br0', c1, '10.40.0.2/33']), 'Invalid prefix length /33 for 10.40.0.2 (0-32)');
    expectError(await cli(['br0', c1, '10.40.0.2/24@10.40.0.x']), 'Invalid gateway: 10.40.0.x');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('an unknown host interface: "I do not know how to setup interface <name>."', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['foo0', c1, '10.40.0.2/24']), 'I do not know how to setup interface foo0.');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it.skipIf(existsSync(OVS_DB_SOCK))('ovs* without Open vSwitch running: "Need OVS installed on the system to create an ovs bridge"', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['ovsbr9', c1, '10.40.0.2/24']), 'Need OVS installed on the system to create an ovs bridge');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('a container that is nowhere (no Docker daemon here): "Container <name> not found, ..."', async () => {
    setup(0);
    const [before] = await settled(HOST);
    const r = await cli(['br0', 'nosuchguest', '10.40.0.2/24'], { env: { DOCKER_HOST: 'unix:///run/pw-no-docker.sock' } });
    expectError(r, hasBin('docker') || hasBin('dockerd')
      ? 'Container nosuchguest not found, and Docker is not running (no socket at /run/pw-no-docker.sock).'
      : 'Container nosuchguest not found, and Docker not installed.');
    expect(snapshot(HOST)).toEqual(before);
  });

  it.skipIf(!hasBin('python3'))('a Docker socket with no daemon behind it: one line naming the socket', async () => {
    setup(0);
    const sock = '/run/pw-stale-docker.sock';
    sh('python3', '-c', `import socket; socket.socket(socket.AF_UNIX).bind('${sock}')`);
    cleanups.push(() => rmSync(sock, { force: true }));
    const r = await cli(['br0', 'nosuchguest', '10.40.0.2/24'], { env: { DOCKER_HOST: `unix://${sock}` } });
    expectError(r, `Cannot reach Docker at ${sock}: connect ECONNREFUSED ${sock}`);
  });

  it("'dhcp' on a guest that is not a Docker container: the original's 4 lines", async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['br0', c1, 'dhcp']), [
      'You asked for a Docker-specific DHCP method.',
      `However, ${c1} doesn't seem to be a Docker container.`,
      "Try to replace 'dhcp' with another option?",
      'Aborting.',
    ].join('\n'));
    expectError(await cli(['br0', c1, 'dhcp:-t 1']), /^You asked for a Docker-specific DHCP method\.\n/);
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('an invalid netns name or path: named', async () => {
    setup(0);
    expectError(await cli(['br0', '/nonexistent/netns', '10.40.0.2/24']), 'Container /nonexistent/netns not found.');
    expectError(await cli(['br0', '/etc/hostname', '10.40.0.2/24']), '/etc/hostname is not a network namespace.');
  });
});

describe('unplug', () => {
  it('removes the veth (both ends); a second unplug, or one for an interface never made, exits 0', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.50.0.2/24']));
    expectOk(await cli(['br0', '-i', 'eth2', c1, '10.50.1.2/24']));
    expectOk(await cli(['unplug', c1]));
    expect(link(c1, 'eth1')).toBeUndefined();
    expect(link(HOST, `veth1pl${c1}`)).toBeUndefined();
    expect(link(c1, 'eth2')).toBeDefined(); // only the one named
    expectOk(await cli(['unplug', c1]));
    expectOk(await cli(['unplug', c1, '-i', 'eth2']));
    expect(link(HOST, `veth2pl${c1}`)).toBeUndefined();
    expectOk(await cli(['unplug', c1, '-i', 'eth7']));
    expect(link(HOST, 'br0')).toBeDefined(); // the bridge stays
  });

  it('--json reports what happened', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '0/0']));
    const r1 = await cli(['--json', 'unplug', c1]);
    expectOk(r1);
    expect(JSON.parse(r1.stdout)).toEqual({ guest: c1, containerInterface: 'eth1', action: 'deleted', kind: 'veth' });
    const r2 = await cli(['--json', 'unplug', c1]);
    expect(JSON.parse(r2.stdout)).toEqual({ guest: c1, containerInterface: 'eth1', action: 'absent' });
  });

  it('of a guest that does not exist: exit 1, named', async () => {
    setup(0);
    expectError(await cli(['unplug', '/run/netns/pwnothere']), 'Container /run/netns/pwnothere not found.');
  });
});

describe('route, rule and tc inside the guest', () => {
  it('route add/replace/del, with via, metric, table, src, read back', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.60.0.2/24']));
    expectOk(await cli(['route', c1, 'add', '10.61.0.0/16', 'via', '10.60.0.1', 'metric', '5']));
    expect(routes(c1, '-4', '10.61.0.0/16')).toEqual([expect.objectContaining({ dst: '10.61.0.0/16', gateway: '10.60.0.1', dev: 'eth1', metric: 5 })]);
    expectOk(await cli(['route', c1, 'add', 'default', 'via', '10.60.0.1', 'table', '100']));
    expect(routes(c1, '-4', 'table', '100')).toEqual([expect.objectContaining({ dst: 'default', gateway: '10.60.0.1', dev: 'eth1' })]);
    expectOk(await cli(['route', c1, 'replace', '10.62.0.0/16', 'dev', 'eth1', 'src', '10.60.0.2', 'scope', 'link']));
    expect(routes(c1, '-4', '10.62.0.0/16')).toEqual([expect.objectContaining({ dev: 'eth1', prefsrc: '10.60.0.2', scope: 'link' })]);
    expectOk(await cli(['route', c1, 'del', '10.61.0.0/16', 'via', '10.60.0.1', 'metric', '5']));
    expect(routes(c1, '-4', '10.61.0.0/16')).toEqual([]);
    expectOk(await cli(['route', c1, 'del', 'default', 'table', '100']));
    expect(routes(c1, '-4', 'table', '100')).toEqual([]);
  });

  it('route: a bad word, a missing device, an existing route: clear errors, nothing changed', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.60.0.2/24']));
    expectOk(await cli(['route', c1, 'add', '10.61.0.0/16', 'via', '10.60.0.1']));
    const [before] = await settled(c1);
    expectError(await cli(['route', c1, 'add', '10.63.0.0/16', 'bogus', '1']), 'route: unsupported word "bogus".');
    expectError(await cli(['route', c1, 'frobnicate', '10.63.0.0/16']), 'route: unsupported command "frobnicate" (add, del, replace, change or append).');
    expectError(await cli(['route', c1, 'add', '10.63.0.0/16', 'dev', 'eth9']), 'Cannot find device "eth9"');
    expectError(await cli(['route', c1, 'add', '10.61.0.0/16', 'via', '10.60.0.1']), /exists/i);
    expect(snapshot(c1)).toEqual(before);
  });

  it('rule add/del with from, to, fwmark, table, pref, read back; a bad word names it', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['rule', c1, 'add', 'from', '10.64.0.0/24', 'table', '100', 'pref', '1000']));
    expectOk(await cli(['rule', c1, 'add', 'to', '10.65.0.0/16', 'fwmark', '0x10/0xff', 'lookup', '101', 'priority', '1001']));
    const rules = ipj<any[]>(c1, 'rule', 'show');
    expect(rules).toEqual(expect.arrayContaining([
      expect.objectContaining({ priority: 1000, src: '10.64.0.0', srclen: 24, table: '100' }),
      expect.objectContaining({ priority: 1001, dst: '10.65.0.0', dstlen: 16, fwmark: '0x10', fwmask: '0xff', table: '101' }),
    ]));
    const [before] = await settled(c1);
    expectError(await cli(['rule', c1, 'add', 'frm', '10.64.0.0/24']), 'rule: unsupported word "frm".');
    expectError(await cli(['rule', c1, 'flush']), 'rule: unsupported command "flush" (add or del).');
    expect(snapshot(c1)).toEqual(before);
    expectOk(await cli(['rule', c1, 'del', 'from', '10.64.0.0/24', 'table', '100', 'pref', '1000']));
    expect(ipj<any[]>(c1, 'rule', 'show').find((r) => r.priority === 1000)).toBeUndefined();
  });

  it(`tc: ${HAS_NETEM ? 'netem delay 10ms' : 'tbf (this kernel has no netem)'} on eth1, read back with tc -j; tc's own error when it refuses`, async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.66.0.2/24']));
    const qdisc = HAS_NETEM ? ['netem', 'delay', '10ms'] : ['tbf', 'rate', '1mbit', 'burst', '32kbit', 'latency', '400ms'];
    const r = await cli(['tc', c1, 'qdisc', 'add', 'dev', 'eth1', 'root', ...qdisc]);
    expectOk(r);
    const shown = JSON.parse(inNs(c1, 'tc', '-j', 'qdisc', 'show', 'dev', 'eth1'));
    expect(shown).toEqual([expect.objectContaining({ kind: qdisc[0], root: true })]);
    const out = await cli(['tc', c1, 'qdisc', 'show', 'dev', 'eth1']);
    expectOk(out);
    expect(out.stdout).toContain(`qdisc ${qdisc[0]}`);
    const [before] = await settled(c1);
    const bad = await cli(['tc', c1, 'qdisc', 'add', 'dev', 'eth9', 'root', 'pfifo']);
    expectError(bad, /^tc qdisc add dev eth9 root pfifo failed \(exit \d+\): .+/);
    expect(snapshot(c1)).toEqual(before);
  });

  it('route/rule/tc with too few arguments: the usage block', async () => {
    setup(1);
    for (const w of ['route', 'rule', 'tc']) {
      const r = await cli([w, 'pwc1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`${USAGE}\n`);
    }
  });
});

describe('--wait (inside the container)', () => {
  it('blocks until eth1 exists, is up and has carrier, then exits 0', async () => {
    const [c1] = setup(1);
    const w = spawn('ip', ['netns', 'exec', c1, process.execPath, BIN, '--wait', '-i', 'eth1', '--timeout', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(w);
    let err = '';
    w.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    await new Promise((r) => setTimeout(r, 400));
    expect(w.exitCode).toBeNull(); // still waiting
    const t0 = performance.now();
    expectOk(await cli(['br0', c1, '10.70.0.2/24']));
    expect(await exited(w)).toBe(0);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(err).toBe('');
  });

  it('an interface that exists but is down is not ready (upstream 243): exits only once it is up', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '0/0']));
    ip(c1, 'link', 'set', 'eth1', 'down');
    const w = spawn('ip', ['netns', 'exec', c1, process.execPath, BIN, '--wait', '--timeout', '5'], { stdio: 'ignore' });
    children.push(w);
    await new Promise((r) => setTimeout(r, 400));
    expect(w.exitCode).toBeNull();
    ip(c1, 'link', 'set', 'eth1', 'up');
    expect(await exited(w)).toBe(0);
  });

  it('--timeout: exit 1 with a message when nothing comes', async () => {
    const [c1] = setup(1);
    const t0 = performance.now();
    const r = await cli(['--wait', '-i', 'eth1', '--timeout', '0.3'], { host: c1 });
    const ms = performance.now() - t0;
    expectError(r, 'eth1 did not come up with carrier within 0.3 s');
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(ms).toBeLessThan(3000);
  });

  it('an already ready interface: exits 0 at once', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', '-i', 'eth3', c1, '0/0']));
    const r = await cli(['--wait', '-i', 'eth3', '--timeout', '2'], { host: c1 });
    expectOk(r);
  });
});

describe('--dry-run and --json', () => {
  it('--dry-run prints the equivalent commands and changes nothing', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    const r = await cli(['--dry-run', 'br0', c1, '10.80.0.2/24@10.99.0.1', 'U:myhost.foo.com']);
    expectOk(r);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual(expect.arrayContaining([
      'ip link add name br0 up type bridge && ip link set dev br0 alias pipework:bridge',
      `ip link add veth1pl${c1} master br0 up type veth peer name eth1 address 02:72:6c:cd:9b:8d netns /run/netns/${c1}`
        + ` && ip link set dev veth1pl${c1} addrgenmode none`,
      `nsenter --net=/run/netns/${c1} ip -4 addr add 10.80.0.2/24 brd 10.80.0.255 dev eth1`,
      `nsenter --net=/run/netns/${c1} ip link set dev eth1 up`,
      `nsenter --net=/run/netns/${c1} ip -4 route add 10.99.0.1/32 dev eth1`,
      `nsenter --net=/run/netns/${c1} ip -4 route replace default via 10.99.0.1 dev eth1`,
    ]));
    expect(lines.indexOf(`nsenter --net=/run/netns/${c1} ip -4 route add 10.99.0.1/32 dev eth1`))
      .toBeLessThan(lines.indexOf(`nsenter --net=/run/netns/${c1} ip -4 route replace default via 10.99.0.1 dev eth1`));
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('--dry-run of macvlan, route, rule, tc, unplug: printed, nothing changed', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0', { mtu: 1400 });
    expectOk(await cli(['br0', '-i', 'eth2', c1, '10.81.0.2/24']));
    const before = await settled(HOST, c1);
    const mv = await cli(['--dry-run', '--macvlan-mode', 'vepa', 'nic0', c1, '10.81.1.2/24']);
    expectOk(mv);
    expect(mv.stdout).toContain(`ip link add link nic0 name eth1 mtu 1400 netns /run/netns/${c1} type macvlan mode vepa`);
    const rt = await cli(['--dry-run', 'route', c1, 'add', '10.82.0.0/16', 'dev', 'eth2']);
    expect(rt.stdout).toBe(`nsenter --net=/run/netns/${c1} ip route add 10.82.0.0/16 dev eth2\n`);
    const ru = await cli(['--dry-run', 'rule', c1, 'add', 'from', '10.81.0.0/24', 'table', '7']);
    expect(ru.stdout).toBe(`nsenter --net=/run/netns/${c1} ip rule add from 10.81.0.0/24 table 7\n`);
    const tc = await cli(['--dry-run', 'tc', c1, 'qdisc', 'add', 'dev', 'eth2', 'root', 'pfifo']);
    expect(tc.stdout).toBe(`nsenter --net=/run/netns/${c1} tc qdisc add dev eth2 root pfifo\n`);
    const un = await cli(['--dry-run', 'unplug', c1, '-i', 'eth2']);
    expect(un.stdout).toBe(`nsenter --net=/run/netns/${c1} ip link del dev eth2\n`);
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('--dry-run still refuses what the real run would (exit 1, nothing printed on stdout)', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'br0', 'type', 'bridge');
    expectError(await cli(['--dry-run', 'br0', c1, '10.80.0.2/24', '@5']), 'VLAN configuration currently unsupported for Linux bridge.');
  });

  it('--json: one JSON object with the interface names, MAC, MTU, netns, addresses and gateway, matching the kernel', async () => {
    const [c1] = setup(1);
    const r = await cli(['--json', 'br0', '-i', 'eth2', c1, '10.83.0.2/24@10.83.0.1', 'U:myhost.foo.com']);
    expectOk(r);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(r.stdout);
    const eth2 = link(c1, 'eth2')!;
    expect(j).toEqual({
      guest: c1,
      netns: `/run/netns/${c1}`,
      containerInterface: { name: 'eth2', index: eth2.ifindex, mac: '02:72:6c:cd:9b:8d', mtu: eth2.mtu },
      hostInterface: `veth2pl${c1}`,
      addresses: ['10.83.0.2/24'],
      gateway: '10.83.0.1',
    });
    expect(eth2.address).toBe(j.containerInterface.mac);
    expect(link(HOST, j.hostInterface)).toBeDefined();
  });

  it('--json with a macvlan: no host interface, the kernel-chosen MAC', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0');
    const r = await cli(['--json', 'nic0', c1, '0/0']);
    expectOk(r);
    const j = JSON.parse(r.stdout);
    expect(j.hostInterface).toBeUndefined();
    expect(j.addresses).toEqual([]);
    expect(j.containerInterface.mac).toBe(link(c1, 'eth1')!.address);
  });
});

describe('--batch', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'pw-cli-batch-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a file with comments, quoted arguments and one bad line: the good lines done, "line N: <message>", exit 1', async () => {
    const [c1, c2] = setup(2);
    const file = join(dir, 'attach.txt');
    writeFileSync(file, [
      '# containers for the test',
      `br0 -i eth5 ${c1} 10.90.0.5/24`,
      `br0 -i eth6 ${c1} "10.90.0.6/24" 'U:my host'   # trailing comment`,
      `br0 -i eth7 ${c1} 10.90.0.7`,
      '',
      '   # indented comment',
      `br0 -i eth8 ${c2} 10.90.0.8/24`,
    ].join('\n') + '\n');
    const r = await cli(['--batch', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const err = r.stderr.split('\n');
    expect(err[0]).toBe('line 4: The IP address should include a netmask.');
    expect(err[1]).toBe('Maybe you meant 10.90.0.7/24 ?');
    expect(r.stderr).toMatch(/^3 done, 1 failed, in [\d.]+ s$/m);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(addrInfo(c1, 'eth5')).toEqual([expect.objectContaining({ local: '10.90.0.5' })]);
    expect(addrInfo(c1, 'eth6')).toEqual([expect.objectContaining({ local: '10.90.0.6' })]);
    expect(link(c1, 'eth6')!.address).toBe(uMac('my host'));
    expect(link(c1, 'eth7')).toBeUndefined();
    expect(addrInfo(c2, 'eth8')).toEqual([expect.objectContaining({ local: '10.90.0.8' })]);
    expect(ping(c1, '10.90.0.8')).toBe(true);

    // and undone by the same kind of file
    const un = join(dir, 'unplug.txt');
    writeFileSync(un, `${c1} -i eth5\n${c1} -i eth6\n# c1 eth7 never made\n${c1} -i eth7\n${c2} -i eth8\n`);
    const u = await cli(['unplug', '--batch', un]);
    expect(u.code).toBe(0);
    expect(u.stderr).toMatch(/^4 done, 0 failed/m);
    expect(names(c1)).toEqual(['lo']);
    expect(names(c2)).toEqual(['lo']);
    expect(ipj<any[]>(HOST, 'link', 'show', 'master', 'br0')).toEqual([]);
  });

  it('U:<text> in a batch gives the same MAC as on the command line', async () => {
    const [c1] = setup(1);
    const file = join(dir, 'mac.txt');
    writeFileSync(file, `br0 ${c1} 0/0 'U:myhost.foo.com'\n`);
    const r = await cli(['--batch', file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^1 done, 0 failed, in [\d.]+ s\n$/);
    expect(link(c1, 'eth1')!.address).toBe('02:72:6c:cd:9b:8d');
  });

  it('from stdin (-), with --json: one object per line', async () => {
    const [c1, c2] = setup(2);
    const r = await cli(['--json', '--batch', '-'], { input: `br0 ${c1} 10.91.0.2/24\nbr0 ${c2} 10.91.0.3/24\n` });
    expect(r.code).toBe(0);
    const objs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(objs.map((o) => o.guest).sort()).toEqual([c1, c2]);
    expect(ping(c1, '10.91.0.3')).toBe(true);
  });

  it('--no-ipv6 for one call, for a whole batch and on one batch line: no IPv6 address on those container ends', async () => {
    const [c1, c2, c3, c4] = setup(4);
    expectOk(await cli(['--no-ipv6', 'br0', c1, '10.93.0.2/24']));
    const line = await cli(['--batch', '-'], { input: `--no-ipv6 br0 ${c2} 10.93.0.3/24\nbr0 ${c3} 10.93.0.4/24\n` });
    expect(line.code).toBe(0);
    const all = await cli(['--no-ipv6', '--batch', '-'], { input: `br0 ${c4} 10.93.0.5/24\n` });
    expect(all.code).toBe(0);
    // c3 asked for nothing: its link-local address comes once the kernel saw carrier
    const linkLocal = (ns: string) => addrInfo(ns, 'eth1', '-6').filter((a) => a.scope === 'link');
    for (let t = 0; t < 100 && !linkLocal(c3).length; t++) await new Promise((r) => setTimeout(r, 50));
    expect(linkLocal(c3)).toHaveLength(1);
    expect(link(c3, 'eth1')!.inet6_addr_gen_mode).toBe('eui64');
    for (const c of [c1, c2, c4]) {
      expect(link(c, 'eth1')!.inet6_addr_gen_mode).toBe('none');
      expect(addrInfo(c, 'eth1', '-6')).toEqual([]);
      expect(addrInfo(c, 'eth1')).toEqual([expect.objectContaining({ prefixlen: 24 })]);
    }
    // and the bridge ports, by default, none either
    for (const port of ipj<any[]>(HOST, 'link', 'show', 'master', 'br0')) expect(addrInfo(HOST, port.ifname, '-6')).toEqual([]);
    const v6 = await cli(['--no-ipv6', 'br0', '-i', 'eth2', c1, '2001:db8::2/64']);
    expect(v6.code).toBe(1);
    expect(v6.stderr).toMatch(/needs IPv6 on the container interface/);
  });

  it('a file that cannot be read: exit 1, says so', async () => {
    setup(0);
    const r = await cli(['--batch', join(dir, 'missing.txt')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot read .*missing\.txt/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('an unterminated quote is that line\'s error only', async () => {
    const [c1] = setup(1);
    const file = join(dir, 'quote.txt');
    writeFileSync(file, `br0 ${c1} 'U:oops 10.92.0.2/24\nbr0 -i eth2 ${c1} 10.92.0.3/24\n`);
    const r = await cli(['--batch', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^line 1: unterminated single quote$/m);
    expect(addrInfo(c1, 'eth2')).toEqual([expect.objectContaining({ local: '10.92.0.3' })]);
  });
});

describe('Open vSwitch (userspace datapath)', () => {
  const OVS_HOST = 'pwovs';
  let ovs: Ovs | undefined;
  let skip = '';
  beforeAll(async () => {
    if (!hasBin('ovs-vswitchd')) { skip = 'ovs-vswitchd not installed'; return; }
    if (existsSync(OVS_DB_SOCK)) { skip = `${OVS_DB_SOCK} already in use by another test file`; return; }
    sh('ip', 'netns', 'add', OVS_HOST);
    ip(OVS_HOST, 'link', 'set', 'lo', 'up');
    ovs = await startOvs({ netns: nsFile(OVS_HOST) });
    ourDaemons.push(ovs.ovsdbPid, ovs.vswitchdPid);
    await ovs.vsctl(['add-br', 'ovsbr0', '--', 'set', 'bridge', 'ovsbr0', 'datapath_type=netdev']);
  });
  afterAll(async () => {
    await ovs?.stop();
    spawnSync('ip', ['netns', 'del', OVS_HOST], { stdio: 'ignore' });
  });
  const ports = async (br = 'ovsbr0') => (await ovs!.vsctl(['list-ports', br])).split('\n').filter(Boolean).sort();
  /** `ovs-vsctl --format=json list TABLE NAME` as an object of column -> value. */
  async function record(table: string, name: string): Promise<Record<string, any>> {
    const j = JSON.parse(await ovs!.vsctl(['--format=json', 'list', table, name]));
    return Object.fromEntries(j.headings.map((h: string, i: number) => [h, j.data[0][i]]));
  }
  const mapOf = (v: any) => Object.fromEntries((v as [string, [string, string][]])[1]);
  const ovsCli = (args: string[]) => cli(args, { host: OVS_HOST });
  const removePorts = (...p: string[]) => cleanups.push(async () => {
    for (const port of p) await ovs?.vsctl(['--if-exists', 'del-port', port]).catch(() => {});
  });

  it('an existing OVS bridge: the veth host end becomes a port with tag=<vlan> and the pipework.* external-ids; containers on the same VLAN ping', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    const c2 = addNs('pwo2');
    removePorts(`veth1pl${c1}`);
    removePorts(`veth1pl${c2}`);
    expectOk(await ovsCli(['ovsbr0', c1, '10.100.0.2/24', '@10']));
    expectOk(await ovsCli(['ovsbr0', c2, '10.100.0.3/24', '02:12:34:56:78:9a@10']));
    expect(await ports()).toEqual([`veth1pl${c1}`, `veth1pl${c2}`]);
    const port = await record('Port', `veth1pl${c1}`);
    expect(port.tag).toBe(10);
    expect(link(OVS_HOST, `veth1pl${c1}`)!.flags).toContain('UP');
    expect(link(c2, 'eth1')!.address).toBe('02:12:34:56:78:9a');
    expect(ping(c1, '10.100.0.3')).toBe(true);
    const iface = await record('Interface', `veth1pl${c1}`);
    // as the original: containerid/containername only for Docker containers (see the Docker block)
    expect(mapOf(iface.external_ids)).toEqual({
      'pipework.interface': `veth1pl${c1}`,
      'pipework.bridge': 'ovsbr0',
      'pipework.nspid': c1,
      'pipework.vlan': '10',
    });
  });

  it('containers on different VLAN tags do not reach each other', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    const c2 = addNs('pwo2');
    removePorts(`veth1pl${c1}`, `veth1pl${c2}`);
    expectOk(await ovsCli(['ovsbr0', c1, '10.100.1.2/24', '@10']));
    expectOk(await ovsCli(['ovsbr0', c2, '10.100.1.3/24', '@11']));
    expect((await record('Port', `veth1pl${c2}`)).tag).toBe(11);
    expect(ping(c1, '10.100.1.3', 1)).toBe(false);
  });

  it('without @vlan: a port with no tag and no pipework.vlan', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    removePorts(`veth1pl${c1}`);
    expectOk(await ovsCli(['ovsbr0', c1, '10.101.0.2/24']));
    const port = await record('Port', `veth1pl${c1}`);
    expect(port.tag).toEqual(['set', []]);
    expect(mapOf((await record('Interface', `veth1pl${c1}`)).external_ids)['pipework.vlan']).toBeUndefined();
  });

  it('a stale port record of the same name (its container died without unplug) does not keep its old VLAN', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    removePorts(`veth1pl${c1}`);
    // what a container that died (netns gone, veth gone) leaves in ovsdb
    await ovs!.vsctl(['add-port', 'ovsbr0', `veth1pl${c1}`, 'tag=10']);
    expectOk(await ovsCli(['ovsbr0', c1, '10.105.0.2/24', '@12']));
    expect((await record('Port', `veth1pl${c1}`)).tag).toBe(12);
    expect(mapOf((await record('Interface', `veth1pl${c1}`)).external_ids)['pipework.vlan']).toBe('12');
  });

  it('unplug removes the OVS port with the veth; again is harmless', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    removePorts(`veth1pl${c1}`);
    expectOk(await ovsCli(['ovsbr0', c1, '10.102.0.2/24', '@20']));
    expect(await ports()).toContain(`veth1pl${c1}`);
    expectOk(await ovsCli(['unplug', c1]));
    expect(await ports()).not.toContain(`veth1pl${c1}`);
    expect(link(OVS_HOST, `veth1pl${c1}`)).toBeUndefined();
    expect(link(c1, 'eth1')).toBeUndefined();
    expectOk(await ovsCli(['unplug', c1]));
  });

  it('--batch unplug with OVS running also removes the ports', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    const c2 = addNs('pwo2');
    removePorts(`veth1pl${c1}`, `veth1pl${c2}`);
    expectOk(await ovsCli(['ovsbr0', c1, '0/0']));
    expectOk(await ovsCli(['ovsbr0', c2, '0/0']));
    const r = await cli(['unplug', '--batch', '-'], { host: OVS_HOST, input: `${c1}\n${c2}\n` });
    expect(r.code).toBe(0);
    expect(await ports()).toEqual([]);
  });

  it('ovs* absent: an OVS bridge is created and the port added', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    cleanups.push(() => ovs?.vsctl(['--if-exists', 'del-br', 'ovsnew']).catch(() => {}));
    const r = await ovsCli(['ovsnew', c1, '10.103.0.2/24']);
    expectOk(r);
    await ovs!.vsctl(['br-exists', 'ovsnew']);
    expect(await ports('ovsnew')).toEqual([`veth1pl${c1}`]);
  });

  it('an attach that fails after the port was added (the kernel refuses the address) leaves no port and no veth', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    removePorts(`veth1pl${c1}`);
    const before = [await ports(), ...(await settled(OVS_HOST, c1))];
    // a multicast address: valid syntax, refused by the kernel in the guest, after the OVS port exists
    const r = await ovsCli(['ovsbr0', '-a', '6', c1, 'ff02::1/64', '@30']);
    expectError(r, /.+/);
    expect([await ports(), snapshot(OVS_HOST), snapshot(c1)]).toEqual(before);
  });
});

describe('Docker containers as guests', () => {
  let d: Dockerd | undefined;
  let skip = '';
  const pids: Record<string, number> = {};
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    if (!hasBin('dockerd')) { skip = 'dockerd not installed'; return; }
    d = await startDockerd();
    ourDaemons.push(d.pid);
    for (const name of ['pwweb', 'pwdb']) {
      ids[name] = (await d.docker(['run', '-d', '--network', 'none', '--name', name, 'busybox', 'sleep', '1000'])).trim();
      pids[name] = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', name])).trim());
    }
  }, 180_000);
  afterAll(async () => { await d?.stop(); }, 120_000);
  const dcli = (args: string[]) => cli(args, { env: { DOCKER_HOST: d!.host } });

  it('by name and by id: the address lands in the container\'s netns; veth1pl<pid>; the containers ping each other', async (ctx) => {
    if (skip) ctx.skip(skip);
    setup(0);
    expectOk(await dcli(['br0', 'pwweb', '10.110.0.2/24']));
    expectOk(await dcli(['br0', ids.pwdb, '10.110.0.3/24']));
    expect(addrInfo(pids.pwweb, 'eth1')).toEqual([expect.objectContaining({ local: '10.110.0.2', prefixlen: 24 })]);
    expect(addrInfo(pids.pwdb, 'eth1')).toEqual([expect.objectContaining({ local: '10.110.0.3', prefixlen: 24 })]);
    expect(link(HOST, `veth1pl${pids.pwweb}`)).toMatchObject({ master: 'br0' });
    expect(link(HOST, `veth1pl${pids.pwdb}`)).toMatchObject({ master: 'br0' });
    // seen from inside the container too
    const inside = await d!.docker(['exec', 'pwweb', 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth1']);
    expect(inside).toContain('10.110.0.2/24');
    expect(ping(pids.pwweb, '10.110.0.3')).toBe(true);
    expectOk(await dcli(['unplug', 'pwweb']));
    expectOk(await dcli(['unplug', ids.pwdb.slice(0, 12)]));
    expect(link(pids.pwweb, 'eth1')).toBeUndefined();
    expect(link(pids.pwdb, 'eth1')).toBeUndefined();
  });

  it('route/rule/tc by container name', async (ctx) => {
    if (skip) ctx.skip(skip);
    setup(0);
    expectOk(await dcli(['br0', 'pwweb', '10.111.0.2/24']));
    cleanups.push(() => dcli(['unplug', 'pwweb']));
    expectOk(await dcli(['route', 'pwweb', 'add', '10.112.0.0/16', 'via', '10.111.0.1']));
    expect(routes(pids.pwweb, '-4', '10.112.0.0/16')).toEqual([expect.objectContaining({ gateway: '10.111.0.1', dev: 'eth1' })]);
    expectOk(await dcli(['rule', 'pwweb', 'add', 'from', '10.111.0.0/24', 'table', '5']));
    expect(ipj<any[]>(pids.pwweb, 'rule', 'show')).toEqual(expect.arrayContaining([expect.objectContaining({ src: '10.111.0.0', table: '5' })]));
    expectOk(await dcli(['tc', 'pwweb', 'qdisc', 'add', 'dev', 'eth1', 'root', 'pfifo']));
    expect(JSON.parse(inNs(pids.pwweb, 'tc', '-j', 'qdisc', 'show', 'dev', 'eth1'))).toEqual([expect.objectContaining({ kind: 'pfifo' })]);
  });

  it('on an OVS bridge: the port carries pipework.containerid and pipework.containername', async (ctx) => {
    if (skip) ctx.skip(skip);
    if (!hasBin('ovs-vswitchd') || existsSync(OVS_DB_SOCK)) ctx.skip('Open vSwitch not installed, or its socket in use');
    setup(0);
    const ovs = await startOvs({ netns: nsFile(HOST) });
    ourDaemons.push(ovs.ovsdbPid, ovs.vswitchdPid);
    cleanups.push(() => ovs.stop());
    await ovs.vsctl(['add-br', 'ovsbr0', '--', 'set', 'bridge', 'ovsbr0', 'datapath_type=netdev']);
    expectOk(await dcli(['ovsbr0', 'pwweb', '10.115.0.2/24', '@7']));
    cleanups.unshift(() => dcli(['unplug', 'pwweb']));
    const port = `veth1pl${pids.pwweb}`;
    const j = JSON.parse(await ovs.vsctl(['--format=json', '--columns=external_ids', 'list', 'Interface', port]));
    expect(Object.fromEntries(j.data[0][0][1])).toEqual({
      'pipework.interface': port,
      'pipework.bridge': 'ovsbr0',
      'pipework.containerid': ids.pwweb,
      // the original stores docker inspect's .Name, "/pwweb"; we store "pwweb" (see the report)
      'pipework.containername': '/pwweb',
      'pipework.nspid': String(pids.pwweb),
      'pipework.vlan': '7',
    });
    expect(addrInfo(pids.pwweb, 'eth1')).toEqual([expect.objectContaining({ local: '10.115.0.2' })]);
  });

  it('an unknown name: "Container <name> not found, and unknown to Docker."', async (ctx) => {
    if (skip) ctx.skip(skip);
    setup(0);
    const [before] = await settled(HOST);
    expectError(await dcli(['br0', 'pwnosuch', '10.113.0.2/24']), 'Container pwnosuch not found, and unknown to Docker.');
    expect(snapshot(HOST)).toEqual(before);
  });

  it('a stopped container: refused with a message, nothing made', async (ctx) => {
    if (skip) ctx.skip(skip);
    setup(0);
    await d!.docker(['create', '--network', 'none', '--name', 'pwstopped', 'busybox', 'sleep', '1000']);
    cleanups.push(() => d!.docker(['rm', '-f', 'pwstopped']).catch(() => {}));
    const [before] = await settled(HOST);
    const r = await dcli(['br0', 'pwstopped', '10.114.0.2/24']);
    expectError(r, 'Docker inspect returned invalid PID 0');
    expect(snapshot(HOST)).toEqual(before);
  });
});

describe('LXC containers as guests', () => {
  let c: Lxc | undefined;
  let skip = '';
  const NAME = 'pwlxc';
  beforeAll(async () => {
    if (!hasBin('lxc-start')) { skip = 'LXC not installed'; return; }
    c = await startLxc(NAME);
    ourDaemons.push(c.monitorPid);
  }, 120_000);
  afterAll(async () => { await c?.stop(); }, 60_000);

  it('by name: found through its cgroup; the link and address are in the container', async (ctx) => {
    if (skip) ctx.skip(skip);
    const [c1] = setup(1);
    expectOk(await cli(['br0', NAME, '10.120.0.2/24']));
    expectOk(await cli(['br0', c1, '10.120.0.3/24']));
    expect(addrInfo(c!.pid, 'eth1')).toEqual([expect.objectContaining({ local: '10.120.0.2', prefixlen: 24 })]);
    expect(link(HOST, `veth1pl${c!.pid}`)).toMatchObject({ master: 'br0' });
    const inside = await c!.attach(['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth1']);
    expect(inside).toContain('10.120.0.2/24');
    expect(ping(c1, '10.120.0.2')).toBe(true);
    expectOk(await cli(['unplug', NAME]));
    expect(link(c!.pid, 'eth1')).toBeUndefined();
  });
});

describe('leftovers', () => {
  it('no daemon of ours is still running, and no netns of ours is left', () => {
    // only ours: other test files of the same run may have daemons of their own in this netns
    expect(ourDaemons.length).toBeGreaterThan(0);
    const alive = (pid: number) => {
      try { return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
    };
    expect(ourDaemons.filter(alive)).toEqual([]);
    expect(daemonsInThisNetns().filter((d) => ourDaemons.includes(d.pid))).toEqual([]);
    const left = sh('ip', 'netns', 'list').split('\n').map((l) => l.split(' ')[0]).filter((n) => /^pw/.test(n));
    expect(left).toEqual([]);
  });
});
