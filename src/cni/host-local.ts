/**
 * The `host-local` IPAM plugin, run inside our process instead of exec'd: the
 * same configuration, the same answers, and the same files, so reservations
 * move freely between us and the reference plugin (containernetworking's
 * host-local) on one dataDir, and neither hands out an address twice:
 *
 *   <dataDir>/<network>/<ip>                   "<containerID>\r\n<ifname>"
 *   <dataDir>/<network>/last_reserved_ip.<N>   the last address range set N gave
 *   <dataDir>/<network>/lock                   flock(2)ed around every change
 *
 * Addresses come round-robin from the one after the last reserved, skipping
 * the gateway; requested ones (CNI_ARGS `IP=`, `args.cni.ips`,
 * `runtimeConfig.ips`: NetConf.requestedIps) are reserved as asked. The lock is tried without
 * blocking (a daemon serves other calls meanwhile) and everything under it is
 * synchronous, so calls within one process never wait on each other.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { formatIp, parseIp } from '../addressing';
import { native } from '../native';
import { CniError, ErrorCode } from './errors';
import type { Dns, Result, ResultIp, ResultRoute } from './config';

const DEFAULT_DATA_DIR = '/var/lib/cni/networks';
const LAST_RESERVED = 'last_reserved_ip.';
/** How long a lock held by another process is waited for before the call fails (try again later). */
const LOCK_WAIT_MS = 30_000;

/** One range of a range set: addresses rangeStart..rangeEnd of subnet (both inclusive). */
interface Range {
  subnet: Uint8Array;
  prefixLen: number;
  start: Uint8Array;
  end: Uint8Array;
  gateway: Uint8Array;
}

export interface HostLocalConf {
  network: string;
  /** `<dataDir>/<network>`. */
  dir: string;
  rangeSets: Range[][];
  routes: ResultRoute[];
  resolvConf?: string;
  /** Addresses asked for by the runtime, in the order given. */
  requested: Uint8Array[];
}

const err = (msg: string, details = '') => new CniError(ErrorCode.Internal, msg, details);

// ---------------------------------------------------------------------------
// Addresses as bytes (4 or 16)

function ipBytes(text: unknown, what: string): Uint8Array {
  if (typeof text !== 'string') throw err(`${what} must be a string`);
  try {
    return parseIp(text).bytes;
  } catch {
    throw err(`invalid IP address ${JSON.stringify(text)} in ${what}`);
  }
}

const cmp = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b);
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && cmp(a, b) === 0;

function next(ip: Uint8Array): Uint8Array {
  const out = Uint8Array.from(ip);
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] !== 0xff) {
      out[i]++;
      return out;
    }
    out[i] = 0;
  }
  return out;
}

function masked(ip: Uint8Array, prefixLen: number, hostBits: 0 | 1): Uint8Array {
  const out = Uint8Array.from(ip);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - i * 8));
    const mask = (0xff << (8 - bits)) & 0xff;
    out[i] = hostBits ? out[i] | (~mask & 0xff) : out[i] & mask;
  }
  return out;
}

const inSubnet = (ip: Uint8Array, r: Range) => ip.length === r.subnet.length && same(masked(ip, r.prefixLen, 0), r.subnet);
const inRange = (ip: Uint8Array, r: Range) => inSubnet(ip, r) && cmp(ip, r.start) >= 0 && cmp(ip, r.end) <= 0;
const rangeFor = (ip: Uint8Array, set: Range[]) => set.find((r) => inRange(ip, r));
const cidrText = (r: Range) => `${formatIp(r.subnet)}/${r.prefixLen}`;
const rangeText = (r: Range) => `${formatIp(r.start)}-${formatIp(r.end)}`;
const setText = (set: Range[]) => set.map(rangeText).join(',');

// ---------------------------------------------------------------------------
// Configuration (host-local's own keys; errors in its words)

function parseRange(v: unknown): Range {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw err('a range must be an object with "subnet"');
  const o = v as Record<string, unknown>;
  if (typeof o.subnet !== 'string') throw err('IP <nil> not v4 nor v6', 'a range needs "subnet"');
  const slash = o.subnet.indexOf('/');
  let ip: Uint8Array;
  let prefixLen: number;
  try {
    if (slash < 0 || !/^\d{1,3}$/.test(o.subnet.slice(slash + 1))) throw new Error();
    ip = parseIp(o.subnet.slice(0, slash)).bytes;
    prefixLen = Number(o.subnet.slice(slash + 1));
    if (prefixLen > ip.length * 8) throw new Error();
  } catch {
    throw err(`invalid CIDR address: ${o.subnet}`);
  }
  if (prefixLen > ip.length * 8 - 2) throw err(`Network ${o.subnet} too small to allocate from`);
  const subnet = masked(ip, prefixLen, 0);
  if (!same(subnet, ip))
    throw err(`Network has host bits set. For a subnet mask of length ${prefixLen} the network address is ${formatIp(subnet)}`);
  const r: Range = { subnet, prefixLen, start: next(subnet), end: masked(subnet, prefixLen, 1), gateway: next(subnet) };
  if (r.end.length === 4) r.end[3]--; // IPv4: not the broadcast address
  if (o.gateway !== undefined) r.gateway = ipBytes(o.gateway, 'gateway');
  if (o.rangeStart !== undefined) {
    const start = ipBytes(o.rangeStart, 'rangeStart');
    if (!inSubnet(start, r)) throw err(`RangeStart ${formatIp(start)} not in network ${cidrText(r)}`);
    r.start = start;
  }
  if (o.rangeEnd !== undefined) {
    const end = ipBytes(o.rangeEnd, 'rangeEnd');
    if (!inSubnet(end, r) || cmp(end, r.start) < 0) throw err(`RangeEnd ${formatIp(end)} not in network ${cidrText(r)}`);
    r.end = end;
  }
  return r;
}

const overlaps = (a: Range, b: Range) =>
  a.start.length === b.start.length && (inRange(b.start, a) || inRange(b.end, a) || inRange(a.start, b) || inRange(a.end, b));

function parseRangeSet(v: unknown): Range[] {
  if (!Array.isArray(v) || v.length === 0) throw err('empty range set');
  const set = v.map(parseRange);
  if (set.some((r) => r.start.length !== set[0].start.length)) throw err('mixed address families');
  for (let i = 0; i < set.length; i++)
    for (let j = i + 1; j < set.length; j++)
      if (overlaps(set[i], set[j])) throw err(`subnets ${rangeText(set[i])} and ${rangeText(set[j])} overlap`);
  return set;
}

/**
 * host-local's view of the network configuration (a JSON object), with the
 * addresses the runtime asks for as config.ts read them (CNI_ARGS `IP=`,
 * `args.cni.ips`, `runtimeConfig.ips`, in that order, as the reference takes them).
 */
export function parseHostLocal(raw: Record<string, unknown>, requestedIps: readonly string[]): HostLocalConf {
  const ipam = raw.ipam as Record<string, unknown>;
  const runtime = (raw.runtimeConfig ?? {}) as Record<string, unknown>;
  const requested = requestedIps.map((ip) => ipBytes(ip.split('/')[0], 'a requested address'));

  const sets: unknown[] = [];
  if (Array.isArray(runtime.ipRanges)) sets.push(...runtime.ipRanges);
  if (ipam.subnet !== undefined) sets.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges)) throw err('ipam.ranges must be a list of range sets');
    sets.push(...ipam.ranges);
  }
  if (sets.length === 0) throw err('no IP ranges specified');
  const rangeSets = sets.map((s, i) => {
    try {
      return parseRangeSet(s);
    } catch (e) {
      throw err(`invalid range set ${i}: ${(e as Error).message}`);
    }
  });
  for (let i = 0; i < rangeSets.length; i++)
    for (let j = i + 1; j < rangeSets.length; j++)
      if (rangeSets[i].some((a) => rangeSets[j].some((b) => overlaps(a, b)))) throw err(`range set ${i} overlaps with ${j}`);

  const routes = ipam.routes === undefined || ipam.routes === null ? [] : ipam.routes;
  if (!Array.isArray(routes) || !routes.every((r) => typeof r === 'object' && r !== null && typeof r.dst === 'string'))
    throw err('ipam.routes must be a list of {"dst", "gw"}');
  const dataDir = ipam.dataDir === undefined || ipam.dataDir === '' ? DEFAULT_DATA_DIR : ipam.dataDir;
  if (typeof dataDir !== 'string') throw err('ipam.dataDir must be a string');
  if (ipam.resolvConf !== undefined && typeof ipam.resolvConf !== 'string') throw err('ipam.resolvConf must be a string');
  const network = raw.name as string;
  return {
    network, dir: join(dataDir, network), rangeSets, requested,
    routes: routes.map((r: Record<string, unknown>) => ({ dst: r.dst as string, ...(typeof r.gw === 'string' ? { gw: r.gw } : {}) })),
    resolvConf: ipam.resolvConf || undefined,
  };
}

// ---------------------------------------------------------------------------
// The store: one directory, its files, its lock

/** Runs fn (synchronous) holding the flock on `<dir>/lock`, created with the directory if absent. */
async function locked<T>(dir: string, fn: () => T): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const fd = openSync(join(dir, 'lock'), fsc.O_RDONLY | fsc.O_CREAT, 0o600);
  try {
    const t0 = Date.now();
    for (let wait = 1; !native.tryLock(fd, true); wait = Math.min(wait * 2, 16)) {
      if (Date.now() - t0 > LOCK_WAIT_MS)
        throw new CniError(ErrorCode.TryAgainLater, `host-local: ${join(dir, 'lock')} stayed locked for ${LOCK_WAIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, wait));
    }
    try {
      return fn();
    } finally {
      native.tryLock(fd, false);
    }
  } finally {
    closeSync(fd);
  }
}

const owner = (containerId: string, ifname: string) => `${containerId.trim()}\r\n${ifname}`;
/** Owner lines are short; a longer file is read whole (the reference reads every file whole). */
const SHORT = 512;

/** The reservation files of the store: name (an address) and trimmed content. */
function* reservations(dir: string): Generator<{ name: string; content: string }> {
  const files = native.readSmallFiles(dir, SHORT);
  for (let i = 0; i < files.length; i += 2) {
    const name = files[i]!;
    if (name === 'lock' || name.startsWith(LAST_RESERVED)) continue;
    let content = files[i + 1];
    if (content === null) {
      try {
        content = readFileSync(join(dir, name), 'utf8');
      } catch {
        continue; // gone meanwhile
      }
    }
    yield { name, content: content.trim() };
  }
}

/** Creates `<dir>/<ip>` exclusively; false when it exists (another container has the address). */
function reserve(dir: string, ip: Uint8Array, who: string, setIndex: number): boolean {
  const file = join(dir, formatIp(ip));
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, who);
  } catch (e) {
    closeSync(fd);
    rmSync(file, { force: true });
    throw e;
  }
  closeSync(fd);
  writeFileSync(join(dir, `${LAST_RESERVED}${setIndex}`), formatIp(ip), { mode: 0o644 });
  return true;
}

function lastReserved(dir: string, setIndex: number): Uint8Array | undefined {
  try {
    return parseIp(readFileSync(join(dir, `${LAST_RESERVED}${setIndex}`), 'utf8')).bytes;
  } catch {
    return undefined;
  }
}

/**
 * The addresses of a range set in host-local's order: from the one after the
 * last reserved (or the first of the set), round the set once, the gateway
 * of each range left out.
 */
function* candidates(set: Range[], last: Uint8Array | undefined): Generator<{ ip: Uint8Array; range: Range }> {
  let index = 0;
  let cur: Uint8Array | undefined;
  const lastRange = last && set.findIndex((r) => inRange(last, r));
  if (last && lastRange !== undefined && lastRange >= 0) {
    index = lastRange;
    cur = last;
  }
  let first: Uint8Array | undefined;
  for (;;) {
    let r = set[index];
    if (!cur) cur = r.start;
    else if (same(cur, r.end)) {
      index = (index + 1) % set.length;
      r = set[index];
      cur = r.start;
    } else cur = next(cur);
    if (!first) first = cur;
    else if (same(cur, first)) return;
    if (!same(cur, r.gateway)) yield { ip: cur, range: r };
  }
}

function releaseLocked(dir: string, containerId: string, ifname: string): void {
  const remove = (match: string) => {
    let found = false;
    for (const f of reservations(dir)) {
      if (f.content !== match) continue;
      rmSync(join(dir, f.name), { force: true });
      found = true;
    }
    return found;
  };
  // Files written by old versions of the reference hold the container id alone.
  if (!remove(owner(containerId, ifname))) remove(containerId.trim());
}

// ---------------------------------------------------------------------------
// The commands

function parseResolvConf(file: string): Dns {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw err(`open ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
  const dns: Dns = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line[0] === '#' || line[0] === ';') continue;
    const [key, ...values] = line.split(/\s+/);
    if (!values.length) continue;
    if (key === 'nameserver') (dns.nameservers ??= []).push(values[0]);
    else if (key === 'domain') dns.domain = values[0];
    else if (key === 'search') (dns.search ??= []).push(...values);
    else if (key === 'options') (dns.options ??= []).push(...values);
  }
  return dns;
}

/** ADD: one address from each range set (a requested one where it falls in the set); all or none. */
export async function hostLocalAdd(conf: HostLocalConf, cniVersion: string, containerId: string, ifname: string): Promise<Result> {
  const dns = conf.resolvConf ? parseResolvConf(conf.resolvConf) : undefined;
  const who = owner(containerId, ifname);
  const ips = await locked(conf.dir, () => {
    const requested = [...conf.requested];
    const got: ResultIp[] = [];
    try {
      conf.rangeSets.forEach((set, i) => {
        const at = requested.findIndex((ip) => rangeFor(ip, set));
        const ip = at >= 0 ? requested.splice(at, 1)[0] : undefined;
        try {
          got.push(ip ? reserveRequested(conf.dir, set, i, ip, who) : reserveNext(conf.dir, set, i, who, containerId));
        } catch (e) {
          throw err(`failed to allocate for range ${i}: ${(e as Error).message}`);
        }
      });
      if (requested.length) throw err(`failed to allocate all requested IPs: ${requested.map(formatIp).join(' ')}`);
    } catch (e) {
      if (got.length) releaseLocked(conf.dir, containerId, ifname);
      throw e;
    }
    return got;
  });
  return { cniVersion, ips, ...(conf.routes.length ? { routes: conf.routes } : {}), ...(dns ? { dns } : {}) };
}

function reserveRequested(dir: string, set: Range[], i: number, ip: Uint8Array, who: string): ResultIp {
  const r = rangeFor(ip, set)!;
  if (same(ip, r.gateway)) throw err(`requested ip ${formatIp(ip)} is subnet's gateway`);
  if (!reserve(dir, ip, who, i)) throw err(`requested IP address ${formatIp(ip)} is not available in range set ${setText(set)}`);
  return { address: `${formatIp(ip)}/${r.prefixLen}`, gateway: formatIp(r.gateway) };
}

function reserveNext(dir: string, set: Range[], i: number, who: string, containerId: string): ResultIp {
  // The spec forbids a second allocation for one attachment: an address of this set already held by it is an error.
  const id = containerId.trim();
  for (const f of reservations(dir)) {
    if (f.content !== who && f.content !== id) continue;
    let ip: Uint8Array;
    try {
      ip = parseIp(f.name).bytes;
    } catch {
      continue;
    }
    if (rangeFor(ip, set)) throw err(`${f.name} has been allocated to ${id}, duplicate allocation is not allowed`);
  }
  for (const { ip, range } of candidates(set, lastReserved(dir, i)))
    if (reserve(dir, ip, who, i)) return { address: `${formatIp(ip)}/${range.prefixLen}`, gateway: formatIp(range.gateway) };
  throw err(`no IP addresses available in range set: ${setText(set)}`);
}

/** DEL: every address this container id and interface hold in the network. */
export async function hostLocalDel(conf: HostLocalConf, containerId: string, ifname: string): Promise<void> {
  await locked(conf.dir, () => releaseLocked(conf.dir, containerId, ifname));
}

/** CHECK: the attachment holds at least one address. */
export async function hostLocalCheck(conf: HostLocalConf, containerId: string, ifname: string): Promise<void> {
  const found = await locked(conf.dir, () => {
    for (const f of reservations(conf.dir)) if (f.content === owner(containerId, ifname) || f.content === containerId.trim()) return true;
    return false;
  });
  if (!found) throw err(`host-local: Failed to find address added by container ${containerId}`);
}

/** GC (CNI 1.1.0): reservations of attachments not in `cni.dev/valid-attachments` are released. */
export async function hostLocalGc(conf: HostLocalConf, valid: { containerID: string; ifname: string }[]): Promise<void> {
  const keep = new Set(valid.map((a) => owner(a.containerID, a.ifname)));
  await locked(conf.dir, () => {
    for (const f of reservations(conf.dir)) {
      // Only files that are reservations: an address as name, "id\r\nifname" as content.
      try {
        parseIp(f.name);
      } catch {
        continue;
      }
      if (f.content.includes('\r\n') && !keep.has(f.content)) rmSync(join(conf.dir, f.name), { force: true });
    }
  });
}
