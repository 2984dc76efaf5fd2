// What the CLI test files (test/e2e/cli-*.test.ts) share: running
// `node bin/pipework.js ...` in throwaway namespaces, reading the kernel state
// back with iproute2 (`ip -j`), proving connectivity with ping. Only inside
// scripts/in-netns.js.
//
// Each test gets a fresh named netns playing "host" (`pwh`: bridges, veth host
// ends, "physical" NICs) and fresh named netns as containers (`pwc1`, `pwc2`,
// ...); the CLI runs in the host netns (`nsenter --net=/run/netns/pwh node
// bin/pipework.js ...`). cleanUp(), each file's afterEach, kills the processes
// the test started (by PID) and deletes the namespaces.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect } from 'vitest';
import { type LinkJson, settle } from '../../helpers/kernel';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('the CLI tests change network namespaces: only inside scripts/in-netns.js');
}

export const BIN = resolve(__dirname, '../../../bin/pipework.js');
export const HOST = 'pwh';

// ---------------------------------------------------------------------------
// Running things

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** A named netns, a /proc/.../ns/net path or a PID, as a netns file. */
export const nsFile = (ns: string | number) =>
  typeof ns === 'number' ? `/proc/${ns}/ns/net` : ns.startsWith('/') ? ns : `/run/netns/${ns}`;

/** `pipework ARGS`, run in the netns `host` (default: this test's host netns). */
export function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; host?: string; input?: string } = {}): Promise<CliResult> {
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
export function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `CMD ARGS` inside a netns. */
export const inNs = (ns: string | number, cmd: string, ...args: string[]) => sh('nsenter', `--net=${nsFile(ns)}`, '--', cmd, ...args);
export const ip = (ns: string | number, ...args: string[]) => inNs(ns, 'ip', ...args);

/** `ip -j ARGS` in a netns, parsed (iproute2 leaves empty objects in some lists: dropped). */
export function ipj<T = any>(ns: string | number, ...args: string[]): T {
  const out = inNs(ns, 'ip', '-j', ...args).trim();
  const isEmpty = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
  return (out ? JSON.parse(out, (_k, v) => (Array.isArray(v) ? v.filter((x) => !isEmpty(x)) : v)) : []) as T;
}

export const links = (ns: string | number): LinkJson[] => ipj(ns, '-d', 'link', 'show');
export const link = (ns: string | number, name: string) => links(ns).find((l) => l.ifname === name);
export const names = (ns: string | number) => links(ns).map((l) => l.ifname).sort();
export const addrInfo = (ns: string | number, dev: string, fam = '-4'): any[] => ipj<any[]>(ns, fam, 'addr', 'show', 'dev', dev)[0]?.addr_info ?? [];
export const routes = (ns: string | number, fam = '-4', ...args: string[]): any[] => ipj(ns, fam, 'route', 'show', ...args);

/** Everything an attach could change in a netns, comparable across time (counters, timers, DAD state stripped). */
export function snapshot(ns: string | number) {
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
export const settled = (...nss: Array<string | number>) => settle(() => nss.map(snapshot), `netns ${nss.join(', ')}`);

/**
 * One echo answered. IPv6 gets a few tries: until the kernel's link watcher
 * reports the new veth's carrier (it batches such events, up to a second),
 * IPv6 neither sends nor answers neighbour discovery on it.
 */
export function ping(ns: string | number, addr: string, waitS = 2): boolean {
  const fam = addr.includes(':') ? '-6' : '-4';
  const tries = fam === '-6' ? 3 : 1;
  for (let i = 0; i < tries; i++) {
    if (spawnSync('nsenter', [`--net=${nsFile(ns)}`, 'ping', fam, '-c', '1', '-W', String(waitS), addr], { stdio: 'ignore' }).status === 0) return true;
  }
  return false;
}

/** True if the kernel can make links of this kind (tried in a scratch netns). */
export function kernelHas(kind: string, ...extra: string[]): boolean {
  return spawnSync('unshare', ['--net', 'sh', '-c', `ip link add probe0 type veth peer name probe1 && ip link add ${kind === 'vlan' ? 'link probe0 ' : ''}name probe2 type ${kind} ${extra.join(' ')}`],
    { stdio: 'ignore' }).status === 0;
}
/** True if tc knows the qdisc here. */
export function hasQdisc(q: string, ...args: string[]): boolean {
  return spawnSync('unshare', ['--net', 'sh', '-c', `ip link set lo up && tc qdisc add dev lo root ${q} ${args.join(' ')}`], { stdio: 'ignore' }).status === 0;
}
export const hasBin = (b: string) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status === 0;

/** An error as users must see it: exit 1, exactly this on stderr (no stack trace), nothing on stdout. */
export function expectError(r: CliResult, message: string | RegExp) {
  expect(r.stdout).toBe('');
  if (typeof message === 'string') expect(r.stderr).toBe(`${message}\n`);
  else expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.code).toBe(1);
}

export function expectOk(r: CliResult) {
  if (r.code !== 0) throw new Error(`pipework exited ${r.code}: ${r.stderr}`);
  expect(r.stderr).toBe('');
}

// ---------------------------------------------------------------------------
// Per-test namespaces and processes

const madeNs: string[] = [];
export const children: ChildProcess[] = [];
export const cleanups: Array<() => unknown> = [];

export function addNs(name: string): string {
  sh('ip', 'netns', 'add', name);
  madeNs.push(name);
  return name;
}

/** Fresh host netns `pwh` and `n` container netns `pwc1..n`. */
export function setup(n = 1): string[] {
  addNs(HOST);
  ip(HOST, 'link', 'set', 'lo', 'up');
  return Array.from({ length: n }, (_, i) => addNs(`pwc${i + 1}`));
}

/** `ip netns exec NS sleep 300` in the background: a process whose PID names that netns. */
export async function sleeperIn(ns: string): Promise<number> {
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
export async function fakeNic(name: string, opts: { mtu?: number; mac?: string } = {}) {
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

export const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

/**
 * Kills the processes the test started (by PID), runs its cleanups and deletes
 * its namespaces: every test file's afterEach.
 */
export async function cleanUp(): Promise<void> {
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
}
