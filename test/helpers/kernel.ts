// Reading kernel state back for assertions, with iproute2's JSON output, in a
// netns held by fd. Tests never trust our own decoder for what they assert.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, statSync } from 'node:fs';
import { afterEach, beforeEach } from 'vitest';
import { createNetns } from '../../src/index';
import { RtnlSocket } from '../../src/netlink/socket';

export const nsPath = (fd: number) => `/proc/${process.pid}/fd/${fd}`;

/** Runs a command inside the netns; returns stdout. */
export function inNetns(fd: number, cmd: string, args: string[]): string {
  return execFileSync('nsenter', [`--net=${nsPath(fd)}`, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
}

/** `ip -j ARGS` in the netns, parsed. */
export function ipj<T = any>(fd: number, ...args: string[]): T {
  const out = inNetns(fd, 'ip', ['-j', ...args]).trim();
  // iproute2's JSON writer leaves empty objects in some lists (e.g. IPv6 addr_info): drop them.
  const isEmpty = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
  return (out ? JSON.parse(out, (_k, v) => (Array.isArray(v) ? v.filter((x) => !isEmpty(x)) : v)) : []) as T;
}

/** `ip ARGS` in the netns (for test setup only). */
export function ip(fd: number, ...args: string[]): void {
  inNetns(fd, 'ip', args);
}

export interface LinkJson {
  ifname: string;
  ifindex: number;
  mtu: number;
  flags: string[];
  master?: string;
  address?: string;
  operstate?: string;
  link_index?: number;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  /** With -d: eui64, none, stable_secret or random. */
  inet6_addr_gen_mode?: string;
}

export const links = (fd: number): LinkJson[] => ipj(fd, '-d', 'link', 'show');
export const link = (fd: number, name: string): LinkJson | undefined => links(fd).find((l) => l.ifname === name);

/**
 * Kernel-derived fields, not configuration: counters and lifetimes; the
 * qdisc a device gets when first brought up (it stays after it goes down);
 * TSO/GSO limits a bridge recomputes from whatever ports it had.
 */
const DERIVED = ['stats', 'stats64', 'valid_life_time', 'preferred_life_time', 'qdisc', 'tso_max_size', 'tso_max_segs', 'gso_max_size', 'gso_max_segs', 'gro_max_size', 'gso_ipv4_max_size', 'gro_ipv4_max_size'];

/** Everything an attach could change in a netns, in a form two snapshots can be compared. */
export function snapshot(fd: number) {
  const strip = (o: any) => JSON.parse(JSON.stringify(o, (k, v) => (DERIVED.includes(k) ? undefined : v)));
  return {
    links: strip(links(fd)).map((l: any) => ({ ...l, operstate: undefined })),
    addrs: strip(ipj(fd, 'addr', 'show')),
    routes: ipj(fd, 'route', 'show', 'table', 'all'),
    routes6: ipj(fd, '-6', 'route', 'show', 'table', 'all'),
    rules: ipj(fd, 'rule', 'show'),
  };
}

/**
 * Dumps without what the kernel changes on its own, later: timers, carrier,
 * DAD flags, and IPv6 link-local addresses and routes (made when a link
 * comes up and, on a bridge, again when its MAC changes).
 */
export function withoutKernelNoise<T>(d: T): T {
  return JSON.parse(JSON.stringify(d, (k, v) => {
    if (['tentative', 'operstate'].includes(k) || /_timer$/.test(k)) return undefined;
    if (Array.isArray(v)) return v.filter((x) => !(x?.family === 'inet6' && x?.scope === 'link') && !String(x?.dst ?? '').startsWith('fe80'));
    return v;
  }));
}

/**
 * A reading once the kernel has finished with what the test just did (carrier,
 * bridge port states settle a moment after a link comes up): two equal readings 50 ms apart.
 */
export async function settle<T>(read: () => T, what = 'the kernel state'): Promise<T> {
  let last = JSON.stringify(read());
  for (let i = 0; i < 60; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const now = JSON.stringify(read());
    if (now === last) return JSON.parse(now) as T;
    last = now;
  }
  throw new Error(`${what} never settled`);
}

/** Waits (up to 10 s) until no IPv6 address in the netns is still in duplicate address detection: its end adds routes. */
export async function dadDone(fd: number): Promise<void> {
  for (let i = 0; i < 100 && inNetns(fd, 'ip', ['-6', 'addr', 'show', 'tentative']).trim(); i++) await new Promise((r) => setTimeout(r, 100));
}

/**
 * A reading of netns state with IPv6 at rest: no address in duplicate address detection, and the same
 * reading again after linkwatch's delay (a link-local address only comes when carrier is seen, up to
 * ~1 s after the link is up, so a reading taken before it is not the state the test should compare).
 */
export async function restingState<T>(fds: number[], read: () => T): Promise<T> {
  for (let i = 0; i < 20; i++) {
    for (const fd of fds) await dadDone(fd);
    const first = JSON.stringify(await settle(read));
    await new Promise((r) => setTimeout(r, 1200));
    const again = JSON.stringify(read());
    if (first === again && !first.includes('"tentative":true')) return JSON.parse(first) as T;
  }
  throw new Error('IPv6 state never came to rest');
}

/** Waits (up to 10 s) until the link has its IPv6 link-local address, past duplicate address detection (it comes with carrier). */
export async function linkLocalDone(fd: number, ifname: string): Promise<void> {
  const ready = () => ipj<any[]>(fd, '-6', 'addr', 'show', 'dev', ifname)[0]?.addr_info?.some((a: any) => a.scope === 'link' && !a.tentative);
  for (let i = 0; i < 100 && !ready(); i++) await new Promise((r) => setTimeout(r, 100));
}

export function ping(fd: number, addr: string): boolean {
  const r = spawnSync('nsenter', [`--net=${nsPath(fd)}`, 'ping', '-c', '1', '-W', '2', addr], { stdio: 'ignore' });
  return r.status === 0;
}

/** Fresh namespaces for one test, closed (and so destroyed) by the returned function. */
export function netnsSet(n: number): { fds: number[]; close(): void } {
  const fds = Array.from({ length: n }, () => createNetns());
  return { fds, close: () => fds.forEach((fd) => closeSync(fd)) };
}

/** For each test of the calling file: a fresh netns (`fd`) and an RtnlSocket in it (`sock`), both closed after the test. */
export function socketInFreshNetns(): { fd: number; sock: RtnlSocket } {
  const t = {} as { fd: number; sock: RtnlSocket };
  let ns: ReturnType<typeof netnsSet>;
  beforeEach(() => {
    ns = netnsSet(1);
    [t.fd] = ns.fds;
    t.sock = RtnlSocket.open(t.fd);
  });
  afterEach(() => {
    t.sock.close();
    ns.close();
  });
  return t;
}

/** `ip -batch -` in the netns: many links made by one process (test setup only). */
export function ipBatch(fd: number, lines: string[]): void {
  const r = spawnSync('nsenter', [`--net=${nsPath(fd)}`, 'ip', '-batch', '-'], { input: lines.join('\n'), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip -batch failed: ${r.stderr}`);
}

/** True if this kernel can create links of the kind (tried in a scratch netns). */
export function kernelHasKind(kind: string): boolean {
  const { fds, close } = netnsSet(1);
  try {
    return spawnSync('nsenter', [`--net=${nsPath(fds[0])}`, 'ip', 'link', 'add', 'probe0', 'type', kind], { stdio: 'ignore' }).status === 0;
  } finally {
    close();
  }
}

/** Waits until process pid has entered the netns held by fd (nsenter's setns is not instant). */
export async function waitInNetns(pid: number, fd: number): Promise<void> {
  const want = fstatSync(fd).ino;
  for (let i = 0; i < 200; i++) {
    try {
      if (statSync(`/proc/${pid}/ns/net`).ino === want) return;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} never entered the netns`);
}
