// Test fixtures that start REAL helper daemons (dnsmasq, Open vSwitch, dockerd,
// LXC) inside the test run's throwaway namespaces, and stop them again.
//
// Rules every fixture here follows:
// - It refuses to run unless the process is inside the private net+mount
//   namespaces that scripts/in-netns.js creates (so no daemon can ever touch
//   this machine's own network, /run or mounts).
// - Every process is spawned with an argv array (no shell) and remembered by
//   PID; stop() ends exactly those PIDs (TERM, then KILL after a grace period),
//   waits until they are gone, and removes the fixture's temp dir. Processes a
//   daemon starts on its own (containerd, shims, LXC's init) are found by
//   something only they can have (our unique temp dir in their command line,
//   a namespace we created), never by a process name.
// - stop() is idempotent. If a test process dies without stop() (vitest may
//   SIGKILL a worker), each daemon we spawned dies with it (parent-death
//   signal, see Daemon), and a process 'exit' hook SIGKILLs the rest. Only the
//   temp dir (/tmp/pw-*) and, for dockerd, running containers' shims survive
//   such a crash.
//
// Usage (all inside `node scripts/in-netns.js npx vitest run ...`):
//   const dns = await startDnsmasq({ iface: 'br1', range: ['10.66.0.100', '10.66.0.199'], netmask: '255.255.255.0', router: '10.66.0.1' });
//   const etc = await startPrivateEtc();   // run DHCP clients (or pipework ... dhcp) through etc.wrap(argv)
//   const ovs = await startOvs();          // then: ovs-vsctl add-br X -- set bridge X datapath_type=netdev
//   const d = await startDockerd();        // d.docker([...]); pass d.env to the code under test
//   const c = await startLxc('name');      // c.pid, c.lxcpath
//   ... finally { await x.stop(); }
//
// Concurrency: vitest runs test files in parallel worker processes, all in the
// same network and mount namespace. dnsmasq, dockerd and LXC fixtures can run
// side by side (names/paths are unique per fixture); Open vSwitch cannot: its
// socket is the fixed /run/openvswitch/db.sock so that plain `ovs-vsctl`
// works, hence only one startOvs() at a time per test run.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import {
  chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync,
  readdirSync, readlinkSync, rmSync, rmdirSync, statSync, statfsSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

// ---------------------------------------------------------------------------
// Generic helpers

/** A fresh temp dir `/tmp/pw-<prefix>-XXXXXX` (kept short: unix socket paths live in it). */
export function tmpDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `pw-${prefix}-`));
}

/**
 * Polls `predicate` every `intervalMs` until it returns true; throws after
 * `timeoutMs`. A predicate that throws ends the wait with that error (use
 * that to stop waiting for a daemon that already died).
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what = 'condition',
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** Resolve with stdout even if the exit status is not 0. */
  allowFailure?: boolean;
}

/** Runs `cmd args` (no shell); resolves with stdout, rejects with stderr on failure. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`${cmd}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 || opts.allowFailure) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${err.trim() || out.trim()}`));
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

const nsIno = (path: string): number | undefined => {
  try { return statSync(path).ino; } catch { return undefined; }
};

/**
 * Throws unless we are inside private net AND mount namespaces (the ones
 * scripts/in-netns.js makes): compares ours with PID 1's where readable.
 */
export function assertPrivateNamespaces(): void {
  if (process.env.PIPEWORK_IN_NETNS !== '1') {
    throw new Error('refusing to start helper daemons outside scripts/in-netns.js (PIPEWORK_IN_NETNS is not 1)');
  }
  for (const ns of ['net', 'mnt']) {
    const ours = nsIno(`/proc/self/ns/${ns}`);
    const init = nsIno(`/proc/1/ns/${ns}`);
    if (ours === undefined) throw new Error(`cannot read /proc/self/ns/${ns}`);
    if (init !== undefined && init === ours) {
      throw new Error(`refusing to start helper daemons: this process shares PID 1's ${ns} namespace`);
    }
  }
}

// ---------------------------------------------------------------------------
// Process bookkeeping

/** /proc/PID/stat fields we need; undefined once the PID is gone. */
function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], start: rest[19] };
  } catch {
    return undefined;
  }
}

/** A process we may signal: PID plus start time, so a reused PID is never hit. */
interface Proc { pid: number; start: string }
const procOf = (pid: number): Proc | undefined => {
  const st = procStat(pid);
  return st ? { pid, start: st.start } : undefined;
};
/** Alive = exists, same start time, not a zombie. */
const alive = (p: Proc): boolean => {
  const st = procStat(p.pid);
  return st !== undefined && st.start === p.start && st.state !== 'Z' && st.state !== 'X';
};

/** PIDs started by fixtures and not yet stopped: killed if the process exits without stop(). */
const live = new Map<number, Proc>();
process.on('exit', () => {
  for (const p of live.values()) {
    if (alive(p)) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

/** TERM (or `signal`), wait up to graceMs, then KILL and wait; works for non-children too. */
async function terminate(p: Proc, graceMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  live.delete(p.pid);
  if (!alive(p)) return;
  try { process.kill(p.pid, signal); } catch { return; }
  try {
    await waitFor(() => !alive(p), graceMs, `PID ${p.pid} to exit`);
    return;
  } catch { /* fall through to KILL */ }
  if (alive(p)) try { process.kill(p.pid, 'SIGKILL'); } catch { return; }
  await waitFor(() => !alive(p), 5000, `PID ${p.pid} to die after SIGKILL`);
}

/** Every live process but ours for which `matches(pid)` holds (a /proc read that fails: no match). */
function procsWhere(matches: (pid: number) => boolean): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      if (!matches(pid)) continue;
    } catch { continue; }
    const p = procOf(pid);
    if (p && alive(p)) out.push(p);
  }
  return out;
}

/** Every live process whose command line mentions `needle` (a unique temp dir path). */
const procsMentioning = (needle: string) => procsWhere((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle));

/** Every live process in the namespace whose nsfs inode is `ino` (kind: uts, mnt, net...). */
const procsInNamespace = (kind: string, ino: number) =>
  procsWhere((pid) => readlinkSync(`/proc/${pid}/ns/${kind}`) === `${kind}:[${ino}]`);

/** A daemon we spawned ourselves: its output goes to `log`, its exit is observed. */
class Daemon {
  readonly child: ChildProcess;
  readonly proc: Proc;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<void>;

  constructor(readonly name: string, readonly log: string, cmd: string, args: string[], opts: SpawnOptions = {}) {
    // `setpriv --pdeathsig KILL` (then exec): the daemon is killed if this
    // process dies without stop() (vitest may kill a worker; no 'exit' event
    // then). setpriv and `nsenter --net=X --` both exec, so the PID we get is
    // the daemon's. The signal survives exec, not a change of uid/gid: hence
    // dnsmasq's --user=root.
    const fd = openSync(log, 'a');
    try {
      this.child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args], { stdio: ['ignore', fd, fd], ...opts });
    } finally {
      closeSync(fd);
    }
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => { this.exit = { code, signal }; resolve(); });
      this.child.on('error', (e) => {
        this.exit = { code: -1, signal: null };
        writeFileSync(log, `spawn ${cmd}: ${e.message}\n`, { flag: 'a' });
        resolve();
      });
    });
    const pid = this.child.pid;
    this.proc = { pid: pid ?? -1, start: (pid && procStat(pid)?.start) || '' };
    if (pid) live.set(pid, this.proc);
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Throws (with the log tail) if the daemon has exited: use inside waitFor predicates. */
  check(): void {
    if (this.exit) throw new Error(`${this.name} exited early (${this.exit.signal ?? `exit ${this.exit.code}`}):\n${tail(this.log)}`);
  }

  async stop(graceMs = 5000): Promise<void> {
    live.delete(this.proc.pid);
    if (this.exit || this.proc.pid < 0) return;
    try { this.child.kill('SIGTERM'); } catch { /* gone */ }
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      try { this.child.kill('SIGKILL'); } catch { /* gone */ }
      await this.exited;
    }
  }

  wait(): Promise<void> {
    return this.exited;
  }
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Runs every cleanup step, collecting errors instead of stopping at the first one. */
async function cleanup(steps: Array<() => unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try { await step(); } catch (e) { errors.push(e); }
  }
  if (errors.length) throw new AggregateError(errors, `cleanup failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
}

/** Mount points (from /proc/self/mountinfo) at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => unescape(l.split(' ')[4]))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts anything still mounted inside `dir` (e.g. nsfs binds), then removes it. */
async function removeDir(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) await run('umount', ['-l', m], { allowFailure: true });
  rmSync(dir, { recursive: true, force: true });
}

/** Milliseconds since `t0` (performance.now()), rounded. */
const since = (t0: number) => Math.round(performance.now() - t0);

// ---------------------------------------------------------------------------
// cgroups (dockerd and LXC need the hierarchies mounted under /sys/fs/cgroup)

interface CgroupMount { mountpoint: string; fstype: string }

const CGROUP_SUPER_MAGIC = 0x27e0eb;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * cgroup hierarchies mounted under /sys/fs/cgroup that are really visible:
 * mountinfo still lists mounts that a later mount on /sys hides, so each
 * mount point is confirmed with statfs.
 */
function cgroupMounts(): CgroupMount[] {
  const seen = new Map<string, CgroupMount>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)) {
    const [pre, post] = line.split(' - ');
    const fstype = post?.split(' ')[0];
    const mountpoint = pre.split(' ')[4];
    if ((fstype !== 'cgroup' && fstype !== 'cgroup2') || !mountpoint.startsWith('/sys/fs/cgroup')) continue;
    let type: number;
    try { type = statfsSync(mountpoint).type; } catch { continue; }
    if (type === CGROUP_SUPER_MAGIC || type === CGROUP2_SUPER_MAGIC) seen.set(mountpoint, { mountpoint, fstype });
  }
  return [...seen.values()];
}

/**
 * Makes sure the cgroup hierarchies this process belongs to are mounted under
 * /sys/fs/cgroup. scripts/in-netns.js leaves the machine's /sys (and so its
 * cgroup mounts) visible, but anything that remounts /sys in the test's mount
 * namespace (a fresh sysfs shows the netns' own /sys/class/net) hides them, and
 * then dockerd/runc/LXC cannot create containers. In that case this mounts
 * them again: tmpfs on /sys/fs/cgroup, one cgroup v1 mount per line of
 * /proc/self/cgroup, cgroup2 on /sys/fs/cgroup/unified (or on /sys/fs/cgroup
 * itself on a pure v2 machine). Only ever in the private mount namespace
 * (checked), and left mounted: other test files' daemons in the same namespace
 * may be using them, and the namespace disappears with the test run.
 */
export async function ensureCgroups(): Promise<void> {
  assertPrivateNamespaces();
  if (cgroupMounts().length > 0) return;
  const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean).map((l) => {
    const [id, ctrls] = l.split(':');
    return { id, ctrls };
  });
  const v1 = lines.filter((l) => l.id !== '0' && l.ctrls);
  const mount = (args: string[]) => run('mount', args);
  if (v1.length === 0) {
    await mount(['-t', 'cgroup2', 'cgroup2', '/sys/fs/cgroup']);
    return;
  }
  await mount(['-t', 'tmpfs', '-o', 'mode=755', 'cgroup-root', '/sys/fs/cgroup']);
  for (const { ctrls } of v1) {
    const named = ctrls.startsWith('name=');
    const dir = join('/sys/fs/cgroup', named ? ctrls.slice(5) : ctrls);
    mkdirSync(dir, { recursive: true });
    await mount(['-t', 'cgroup', '-o', named ? `none,${ctrls}` : ctrls, 'cgroup', dir]);
  }
  if (lines.some((l) => l.id === '0')) {
    mkdirSync('/sys/fs/cgroup/unified', { recursive: true });
    await mount(['-t', 'cgroup2', 'cgroup2', '/sys/fs/cgroup/unified']);
  }
}

/** rmdir `<each cgroup mount>/<rel>` if it exists (only succeeds when empty). */
function removeCgroupDirs(rel: string): void {
  for (const { mountpoint } of cgroupMounts()) {
    const dir = join(mountpoint, rel);
    try { rmdirSync(dir); } catch { /* absent, or still in use by someone else */ }
  }
}

// ---------------------------------------------------------------------------
// dnsmasq

export interface DnsmasqOptions {
  /** Interface in the test's netns to serve on (e.g. a bridge with an address in the range's subnet). */
  iface: string;
  range: [string, string];
  netmask: string;
  router?: string;
  dns?: string[];
  /** Lease time (dnsmasq syntax), default 1h. */
  leaseTime?: string;
  /**
   * Run in this netns instead of the test process's (a netns file such as
   * `/run/netns/NAME` or `/proc/<pid>/fd/<fd>`); started via `nsenter --net=`,
   * which execs, so the PID is still dnsmasq's.
   */
  netns?: string;
}

export interface Lease { expiry: number; mac: string; ip: string; hostname: string; clientId: string }

export interface Dnsmasq {
  pid: number;
  leaseFile: string;
  /** Milliseconds from spawn until it listened on port 67. */
  startupMs: number;
  /** Current lease file, parsed. */
  leases(): Lease[];
  /** dnsmasq's own log (DHCP transactions), for assertions and debugging. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * dnsmasq as a DHCP server only (`--port=0`: no DNS) on `iface`, answering at
 * once (`--no-ping`: otherwise each offer waits ~3 s) and authoritatively (so
 * a client that asks for an old address gets an answer, not a timeout).
 */
export async function startDnsmasq(opts: DnsmasqOptions): Promise<Dnsmasq> {
  assertPrivateNamespaces();
  const t0 = performance.now();
  const dir = tmpDir('dnsmasq');
  const leaseFile = join(dir, 'leases');
  const logFile = join(dir, 'dnsmasq.log');
  const args = [
    '--no-daemon', '--conf-file=/dev/null', '--no-ping', '--port=0', '--dhcp-authoritative',
    '--user=root', '--group=root',
    `--interface=${opts.iface}`, '--bind-interfaces', '--except-interface=lo',
    `--dhcp-range=${opts.range[0]},${opts.range[1]},${opts.netmask},${opts.leaseTime ?? '1h'}`,
    `--dhcp-leasefile=${leaseFile}`, '--log-dhcp', '--log-facility=-',
    // With --no-daemon dnsmasq writes no pid file anyway; keep it away from /run.
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
  ];
  if (opts.router) args.push(`--dhcp-option=option:router,${opts.router}`);
  if (opts.dns?.length) args.push(`--dhcp-option=option:dns-server,${opts.dns.join(',')}`);
  const d = new Daemon('dnsmasq', logFile, ...inNetns(opts.netns, 'dnsmasq', args));
  const stop = async () => {
    await cleanup([() => d.stop(), () => removeDir(dir)]);
  };
  try {
    await waitFor(() => { d.check(); return listensOnUdp(d.pid, 67); }, 10_000, 'dnsmasq to listen on UDP 67');
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return {
    pid: d.pid,
    leaseFile,
    startupMs: since(t0),
    leases: () => parseLeases(leaseFile),
    log: () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } },
    stop,
  };
}

/** [cmd, args] that run `cmd args` in `netns` (via nsenter, which execs: same PID) or here. */
function inNetns(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=${netns}`, '--', cmd, ...args]] : [cmd, args];
}

function parseLeases(file: string): Lease[] {
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).map((l) => {
    const [expiry, mac, ip, hostname, clientId] = l.split(' ');
    return { expiry: Number(expiry), mac, ip, hostname, clientId };
  });
}

/** Does PID own a UDP socket bound to `port` (checked by socket inode, in its own netns)? */
function listensOnUdp(pid: number, port: number): boolean {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch { /* fd closed meanwhile */ }
    }
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    return readFileSync(`/proc/${pid}/net/udp`, 'utf8').split('\n').slice(1).some((line) => {
      const f = line.trim().split(/\s+/);
      return f.length > 9 && f[1].endsWith(`:${hexPort}`) && inodes.has(f[9]);
    });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Open vSwitch (userspace datapath)

export const OVS_RUNDIR = '/run/openvswitch';
export const OVS_DB_SOCK = `${OVS_RUNDIR}/db.sock`;

export interface Ovs {
  /** `ovs-vsctl --timeout=10 ARGS` against the default socket; resolves with stdout. */
  vsctl(args: string[]): Promise<string>;
  ovsdbPid: number;
  vswitchdPid: number;
  startupMs: number;
  stop(): Promise<void>;
}

/**
 * ovsdb-server + ovs-vswitchd with the socket at the default
 * /run/openvswitch/db.sock (that /run is the test run's private tmpfs), so a
 * plain `ovs-vsctl` in the code under test talks to this instance.
 *
 * This kernel has no Open vSwitch datapath module: bridges MUST use the
 * userspace datapath, so a test creates one with
 *     ovs-vsctl add-br X -- set bridge X datapath_type=netdev
 * (or `vsctl(['add-br', X, '--', 'set', 'bridge', X, 'datapath_type=netdev'])`).
 * A plain `ovs-vsctl add-br X` (what the original pipework runs) makes a
 * bridge whose datapath cannot be opened: the record exists but no port works.
 * Ports: `ovs-vsctl add-port X veth0 [tag=N]` with a veth in the test's netns.
 *
 * `opts.netns`: run ovs-vswitchd (which owns the bridge devices) in that netns.
 *
 * Only one instance per test run (the socket path is fixed); stop() removes
 * every bridge's datapath (`exit --cleanup`), so the netdev taps vanish too.
 */
export async function startOvs(opts: { netns?: string } = {}): Promise<Ovs> {
  assertPrivateNamespaces();
  const t0 = performance.now();
  if (existsSync(OVS_DB_SOCK)) {
    if (await socketAnswers(OVS_DB_SOCK)) throw new Error(`${OVS_DB_SOCK} is in use: only one startOvs() at a time per test run`);
    rmSync(OVS_DB_SOCK, { force: true });
  }
  mkdirSync(OVS_RUNDIR, { recursive: true });
  const dir = tmpDir('ovs');
  const db = join(dir, 'conf.db');
  const dbCtl = join(dir, 'ovsdb-server.ctl');
  const vsCtl = join(dir, 'ovs-vswitchd.ctl');
  let ovsdb: Daemon | undefined;
  let vswitchd: Daemon | undefined;
  const vsctl = (args: string[]) => run('ovs-vsctl', [`--db=unix:${OVS_DB_SOCK}`, '--timeout=10', ...args]);

  const stop = async () => {
    await cleanup([
      async () => {
        if (!vswitchd || vswitchd.exit) return;
        // Graceful: delete the datapaths (and their tap devices) first.
        await run('ovs-appctl', ['-t', vsCtl, 'exit', '--cleanup'], { timeoutMs: 10_000, allowFailure: true });
        await Promise.race([vswitchd.wait(), sleep(5000)]);
      },
      () => vswitchd?.stop(),
      () => ovsdb?.stop(),
      () => rmSync(OVS_DB_SOCK, { force: true }),
      () => removeDir(dir),
    ]);
  };

  try {
    await run('ovsdb-tool', ['create', db, '/usr/share/openvswitch/vswitch.ovsschema']);
    ovsdb = new Daemon('ovsdb-server', join(dir, 'ovsdb-server.log'), 'ovsdb-server', [
      db, `--remote=punix:${OVS_DB_SOCK}`, `--unixctl=${dbCtl}`, `--pidfile=${join(dir, 'ovsdb-server.pid')}`,
    ]);
    const o = ovsdb;
    await waitFor(() => { o.check(); return existsSync(OVS_DB_SOCK); }, 10_000, 'ovsdb-server socket');
    await run('ovs-vsctl', [`--db=unix:${OVS_DB_SOCK}`, '--no-wait', 'init']);
    // vswitchd creates the bridges' devices in its own netns: that is the one that matters.
    vswitchd = new Daemon('ovs-vswitchd', join(dir, 'ovs-vswitchd.log'), ...inNetns(opts.netns, 'ovs-vswitchd', [
      `unix:${OVS_DB_SOCK}`, `--unixctl=${vsCtl}`, `--pidfile=${join(dir, 'ovs-vswitchd.pid')}`,
    ]));
    const v = vswitchd;
    await waitFor(() => { v.check(); return existsSync(vsCtl); }, 10_000, 'ovs-vswitchd control socket');
    // A change to the database bumps next_cfg, and ovs-vsctl then waits until
    // ovs-vswitchd has applied it: from here on vswitchd is really serving.
    await vsctl(['set', 'Open_vSwitch', '.', 'external_ids:pipework-test=ready']);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return { vsctl, ovsdbPid: ovsdb.pid, vswitchdPid: vswitchd.pid, startupMs: since(t0), stop };
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------
// dockerd

export interface DockerdOptions {
  /** Also listen on the default /run/docker.sock (private /run), for code that ignores DOCKER_HOST. One per run. */
  defaultSocket?: boolean;
}

export interface Dockerd {
  pid: number;
  /** Path of the API socket. */
  socket: string;
  /** `unix://<socket>`, for DOCKER_HOST. */
  host: string;
  /** Environment for child processes (the code under test): process.env + DOCKER_HOST + a scratch DOCKER_CONFIG. */
  env: NodeJS.ProcessEnv;
  /** `docker ARGS` against this daemon; resolves with stdout. */
  docker(args: string[]): Promise<string>;
  /** Name of the imported image (`busybox`, tag latest): Debian's busybox-static plus a udhcpc default.script. */
  busyboxImage: string;
  startupMs: number;
  /** Milliseconds the busybox import took (part of startupMs). */
  importMs: number;
  stop(): Promise<void>;
}

/**
 * dockerd with nothing of the machine's: no iptables, no forwarding or
 * masquerading, no default bridge, vfs storage, data-root, exec-root, pidfile,
 * socket and an empty config file all in a temp dir, containers' cgroups under
 * a parent of its own (removed again by stop()).
 *
 * Containers: `docker run -d --network none --name N busybox sleep 1000`,
 * `docker inspect -f '{{.State.Pid}}' N`. The busybox image has a udhcpc
 * default.script at /etc/udhcpc/default.script (where Debian's busybox looks)
 * and /usr/share/udhcpc/default.script (upstream's default), so a sidecar
 * `docker run --network container:N --cap-add NET_ADMIN busybox udhcpc -i eth1`
 * configures the address it gets (it writes the container's resolv.conf,
 * which is a file in data-root).
 *
 * stop(): `docker rm -f` every container (a `sleep` as PID 1 ignores SIGTERM,
 * so a plain dockerd shutdown would wait 10 s per container), TERM dockerd
 * (it stops its containerd), then KILL anything left whose command line names
 * this fixture's temp dir (containerd, shims), remove the cgroup parent and the dir.
 */
export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  assertPrivateNamespaces();
  const t0 = performance.now();
  await ensureCgroups();
  const dir = tmpDir('dk');
  const socket = join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  const config = join(dir, 'daemon.json');
  writeFileSync(config, '{}\n');
  mkdirSync(join(dir, 'cli'));
  const cgroupParent = `pipework-test-${dir.slice(dir.lastIndexOf('-') + 1)}`;
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: join(dir, 'cli') };
  const docker = (args: string[]) => run('docker', args, { env });
  const args = [
    `--config-file=${config}`,
    '--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false', '--bridge=none',
    '--userland-proxy=false', '--storage-driver=vfs',
    `--data-root=${join(dir, 'data')}`, `--exec-root=${join(dir, 'exec')}`, `--pidfile=${join(dir, 'docker.pid')}`,
    `--cgroup-parent=/${cgroupParent}`, '--shutdown-timeout=2',
    '-H', host,
  ];
  if (opts.defaultSocket) args.push('-H', 'unix:///run/docker.sock');
  const daemonEnv = { ...process.env };
  delete daemonEnv.DOCKER_HOST;
  const d = new Daemon('dockerd', join(dir, 'dockerd.log'), 'dockerd', args, { env: daemonEnv });

  const stop = async () => {
    await cleanup([
      async () => {
        if (d.exit) return;
        const ids = (await docker(['ps', '-aq']).catch(() => '')).split('\n').filter(Boolean);
        if (ids.length) await docker(['rm', '-f', ...ids]).catch(() => '');
      },
      () => d.stop(20_000),
      async () => { for (const p of procsMentioning(`${dir}/`)) await terminate(p, 3000); },
      () => removeCgroupDirs(cgroupParent),
      () => { if (opts.defaultSocket) rmSync('/run/docker.sock', { force: true }); },
      () => removeDir(dir),
    ]);
  };

  let importMs = 0;
  try {
    await waitFor(async () => { d.check(); return existsSync(socket) && (await ping(socket)); }, 30_000, 'dockerd to answer /_ping');
    const ti = performance.now();
    const tar = join(dir, 'busybox.tar');
    await busyboxRootfsTar(join(dir, 'busybox-rootfs'), tar);
    await docker(['import', '--change', 'CMD ["/bin/sh"]', tar, 'busybox:latest']);
    rmSync(join(dir, 'busybox-rootfs'), { recursive: true, force: true });
    rmSync(tar, { force: true });
    importMs = since(ti);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return { pid: d.pid, socket, host, env, docker, busyboxImage: 'busybox', startupMs: since(t0), importMs, stop };
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
    req.end();
  });
}

/** Debian's udhcpc script uses only busybox applets; this is the fallback if it is not installed. */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) busybox ip link set "$interface" up; busybox ip -4 addr flush dev "$interface" ;;
  bound|renew)
    busybox ifconfig "$interface" \${mtu:+mtu $mtu} "$ip" netmask "$subnet" \${broadcast:+broadcast $broadcast}
    busybox ip -4 route flush exact 0.0.0.0/0 dev "$interface"
    [ -n "$router" ] && busybox ip -4 route add default via "\${router%% *}" dev "$interface"
    R=""; [ -n "$domain" ] && R="domain $domain"
    for i in $dns; do R="$R
nameserver $i"; done
    echo "$R" > /etc/resolv.conf ;;
esac
exit 0
`;

/**
 * A rootfs holding the installed /bin/busybox (Debian's busybox-static: a
 * static binary, so nothing else is needed), a symlink per applet, minimal
 * /etc, and a udhcpc default.script; tarred to `tarFile`.
 */
export async function busyboxRootfsTar(rootfs: string, tarFile: string, busybox = '/bin/busybox'): Promise<void> {
  const applets = (await run(busybox, ['--list-full'])).split('\n').map((s) => s.trim()).filter(Boolean);
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/udhcpc', 'usr/share/udhcpc', 'root', 'tmp', 'var/run', 'proc', 'sys', 'dev']) {
    mkdirSync(join(rootfs, d), { recursive: true });
  }
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync(busybox, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const a of applets) {
    if (a === 'bin/busybox') continue;
    const p = join(rootfs, a);
    mkdirSync(dirname(p), { recursive: true });
    if (!existsSync(p)) symlinkSync('/bin/busybox', p);
  }
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  const script = existsSync('/etc/udhcpc/default.script') ? readFileSync('/etc/udhcpc/default.script', 'utf8') : UDHCPC_SCRIPT;
  for (const p of ['etc/udhcpc/default.script', 'usr/share/udhcpc/default.script']) {
    writeFileSync(join(rootfs, p), script, { mode: 0o755 });
  }
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tarFile, '.']);
}

// ---------------------------------------------------------------------------
// LXC

export interface LxcOptions {
  /** Extra lines appended to the container config (e.g. a veth network). */
  config?: string[];
}

export interface Lxc {
  name: string;
  /** PID of the container's init (its netns is /proc/PID/ns/net). */
  pid: number;
  /** PID of `lxc-start -F` (the monitor), which we spawned. */
  monitorPid: number;
  /** The lxcpath (`-P`) the container lives in: pass it to lxc-info/lxc-attach/lxc-stop. */
  lxcpath: string;
  /** `lxc-attach -P lxcpath -n name -- ARGS`; resolves with stdout. */
  attach(args: string[]): Promise<string>;
  startupMs: number;
  stop(): Promise<void>;
}

/**
 * A busybox-template LXC container named `name`, in a temp lxcpath, running
 * in the foreground monitor (`lxc-start -F`, whose PID we keep). Its network
 * is `lxc.net.0.type = empty`: a new netns holding only lo (never `none`,
 * which shares this netns). The template's rcS runs udhcpc on eth0, which
 * fails at once as there is no eth0. LXC 5 puts the container in cgroup
 * `lxc.payload.<name>` (not `<name>`, which the original pipework looked for).
 *
 * LXC's command socket is an abstract unix socket, so per network namespace:
 * lxc-info/lxc-stop work from this test run (same netns) with `-P lxcpath`.
 */
export async function startLxc(name: string, opts: LxcOptions = {}): Promise<Lxc> {
  assertPrivateNamespaces();
  const t0 = performance.now();
  await ensureCgroups();
  const pivotExisted = new Set(cgroupMounts().filter((m) => existsSync(join(m.mountpoint, 'lxc.pivot'))).map((m) => m.mountpoint));
  const lxcpath = tmpDir('lxc');
  const conf = join(lxcpath, 'pipework-test.conf');
  writeFileSync(conf, [
    'lxc.net.0.type = empty',
    'lxc.apparmor.profile = unconfined',
    'lxc.console.path = none',
    ...(opts.config ?? []),
  ].join('\n') + '\n');
  const P = ['-P', lxcpath, '-n', name];
  let monitor: Daemon | undefined;
  let init: Proc | undefined;
  let created = false;

  const stop = async () => {
    await cleanup([
      async () => {
        if (!monitor || monitor.exit) return;
        await run('lxc-stop', [...P, '-k'], { timeoutMs: 15_000, allowFailure: true });
        await Promise.race([monitor.wait(), sleep(10_000)]);
      },
      () => (init ? terminate(init, 1000, 'SIGKILL') : undefined),
      () => monitor?.stop(),
      () => (created ? run('lxc-destroy', P, { allowFailure: true }) : undefined),
      () => {
        for (const m of cgroupMounts()) {
          if (pivotExisted.has(m.mountpoint)) continue;
          try { rmdirSync(join(m.mountpoint, 'lxc.pivot')); } catch { /* absent or in use */ }
        }
      },
      () => removeDir(lxcpath),
    ]);
  };

  try {
    await run('lxc-create', [...P, '-t', 'busybox', '-f', conf], { timeoutMs: 60_000 });
    created = true;
    monitor = new Daemon('lxc-start', join(lxcpath, 'lxc-start.out'), 'lxc-start', [
      '-F', ...P, '-o', join(lxcpath, 'lxc.log'), '-l', 'INFO',
    ]);
    const m = monitor;
    let pid = 0;
    await waitFor(async () => {
      if (m.exit) throw new Error(`lxc-start exited early (${m.exit.signal ?? `exit ${m.exit.code}`}):\n${tail(join(lxcpath, 'lxc.log'))}`);
      const out = await run('lxc-info', [...P, '-s', '-p'], { allowFailure: true });
      if (/^State:\s+(\S+)/m.exec(out)?.[1] !== 'RUNNING') return false;
      pid = Number(/^PID:\s+(\d+)/m.exec(out)?.[1] ?? 0);
      return pid > 0;
    }, 20_000, `LXC container ${name} to be RUNNING`, 50);
    init = procOf(pid);
    if (!init) throw new Error(`LXC container ${name}: init PID ${pid} vanished`);
    live.set(pid, init);
    return {
      name,
      pid,
      monitorPid: m.pid,
      lxcpath,
      attach: (args: string[]) => run('lxc-attach', [...P, '--', ...args]),
      startupMs: since(t0),
      stop,
    };
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------
// A private /etc for DHCP clients (and anything else that writes /etc)

export interface PrivateEtc {
  /** `/proc/<holder>/ns/mnt` and `/proc/<holder>/ns/uts`: the private mount and UTS namespaces. */
  mntNs: string;
  utsNs: string;
  /** PID of the process that holds the namespaces open (`unshare … sleep infinity`). */
  holderPid: number;
  /** argv prefix that runs a command inside: `['nsenter', '--mount=…', '--uts=…', '--']`. */
  prefix: string[];
  /** `[...prefix, ...argv]`: spawn this instead of argv. */
  wrap(argv: string[]): string[];
  /** Runs argv inside; resolves with stdout. */
  run(argv: string[], opts?: RunOptions): Promise<string>;
  /** What was written to /etc inside (overlay upper dir), e.g. `${etcUpper}/resolv.conf`. */
  etcUpper: string;
  /** Same for /var/lib (dhclient/dhcpcd lease files). */
  varLibUpper: string;
  /** Content of /etc/FILE as written inside, or undefined if it was not written there. */
  written(file: string): string | undefined;
  stop(): Promise<void>;
}

/**
 * Private mount + UTS namespaces, held open by a `sleep` we spawn, in which
 * /etc and /var/lib are overlays whose upper dirs are scratch dirs. DHCP
 * client scripts write /etc/resolv.conf (dhclient-script even creates
 * /etc/resolv.conf.dhclient-new.PID next to it), dhclient and dhcpcd write
 * leases under /var/lib, and they may set the hostname: run them (or the
 * pipework command that runs them) through `wrap()` and all of that lands in
 * the scratch dirs and the private UTS namespace. `ip netns exec` inside
 * keeps working (it unshares again from this mount namespace).
 *
 * (A holder process rather than `unshare --mount=FILE`: binding a mount
 * namespace file fails now and then with EINVAL on this 6.x kernel, whose
 * loop check compares namespace sequence numbers.)
 *
 * stop(): processes still in the UTS namespace (e.g. a daemonized dhclient;
 * `ip netns exec` does not change UTS) are killed by PID, then the holder,
 * then the dir is removed.
 */
export async function startPrivateEtc(): Promise<PrivateEtc> {
  assertPrivateNamespaces();
  const dir = tmpDir('etc');
  const etcUpper = join(dir, 'etc-upper');
  const varLibUpper = join(dir, 'varlib-upper');
  for (const d of [etcUpper, varLibUpper, join(dir, 'etc-work'), join(dir, 'varlib-work')]) mkdirSync(d);
  // unshare execs sleep: the PID we get is the holder inside the new namespaces.
  const holder = new Daemon('namespace holder', join(dir, 'holder.log'), 'unshare',
    ['--mount', '--uts', '--propagation', 'private', 'sleep', 'infinity']);
  const mntNs = `/proc/${holder.pid}/ns/mnt`;
  const utsNs = `/proc/${holder.pid}/ns/uts`;
  const prefix = ['nsenter', `--mount=${mntNs}`, `--uts=${utsNs}`, '--'];
  const wrap = (argv: string[]) => [...prefix, ...argv];
  const runIn = (argv: string[], opts?: RunOptions) => {
    const [cmd, ...args] = wrap(argv);
    return run(cmd, args, opts);
  };
  let utsIno: number | undefined;

  const stop = async () => {
    await cleanup([
      async () => {
        if (utsIno === undefined) return;
        for (const p of procsInNamespace('uts', utsIno)) if (p.pid !== holder.pid) await terminate(p, 2000);
      },
      () => holder.stop(),
      () => removeDir(dir),
    ]);
  };

  try {
    const ourMnt = nsIno('/proc/self/ns/mnt');
    const ourUts = nsIno('/proc/self/ns/uts');
    await waitFor(() => {
      holder.check();
      const comm = readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim();
      const m = nsIno(mntNs);
      const u = nsIno(utsNs);
      return comm === 'sleep' && m !== undefined && m !== ourMnt && u !== undefined && u !== ourUts;
    }, 10_000, 'private mount/UTS namespaces');
    utsIno = nsIno(utsNs);
    await runIn(['mount', '-t', 'overlay', 'pipework-etc', '-o',
      `lowerdir=/etc,upperdir=${etcUpper},workdir=${join(dir, 'etc-work')}`, '/etc']);
    await runIn(['mount', '-t', 'overlay', 'pipework-varlib', '-o',
      `lowerdir=/var/lib,upperdir=${varLibUpper},workdir=${join(dir, 'varlib-work')}`, '/var/lib']);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return {
    mntNs,
    utsNs,
    holderPid: holder.pid,
    prefix,
    wrap,
    run: runIn,
    etcUpper,
    varLibUpper,
    written: (file: string) => {
      try { return readFileSync(join(etcUpper, file), 'utf8'); } catch { return undefined; }
    },
    stop,
  };
}

// ---------------------------------------------------------------------------
// Leftover check

/** Live PIDs named like one of our daemons (exact comm) that share this process's netns. */
export function daemonsInThisNetns(names = ['dnsmasq', 'dockerd', 'containerd', 'ovsdb-server', 'ovs-vswitchd', 'lxc-start', 'containerd-shim']): { pid: number; comm: string }[] {
  const ours = nsIno('/proc/self/ns/net');
  const out: { pid: number; comm: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const comm = readFileSync(`/proc/${name}/comm`, 'utf8').trim();
      if (!names.includes(comm)) continue;
      if (nsIno(`/proc/${name}/ns/net`) !== ours) continue;
      const p = procOf(Number(name));
      if (p && alive(p)) out.push({ pid: p.pid, comm });
    } catch { /* gone */ }
  }
  return out;
}
