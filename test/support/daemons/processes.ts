// Test fixtures that start REAL helper daemons (dnsmasq, Open vSwitch, dockerd,
// LXC) inside the test run's throwaway namespaces, and stop them again: one
// module per daemon in this folder, their processes kept track of here.
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
//   const dns = await startDnsmasq({ iface: 'br1', range: ['10.66.0.100', '10.66.0.199'], netmask: '255.255.255.0', router: '10.66.0.1' });  // ./dnsmasq
//   const etc = await startPrivateEtc();   // ./private-etc: run DHCP clients (or pipework ... dhcp) through etc.wrap(argv)
//   const ovs = await startOvs();          // ./ovs: then ovs-vsctl add-br X -- set bridge X datapath_type=netdev
//   const d = await startDockerd();        // ./dockerd: d.docker([...]); pass d.env to the code under test
//   const c = await startLxc('name');      // ./lxc: c.pid, c.lxcpath
//   ... finally { await x.stop(); }
//
// Concurrency: vitest runs test files in parallel worker processes, all in the
// same network and mount namespace. dnsmasq, dockerd and LXC fixtures can run
// side by side (names/paths are unique per fixture); Open vSwitch cannot: its
// socket is the fixed /run/openvswitch/db.sock so that plain `ovs-vsctl`
// works, hence only one startOvs() at a time per test run.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { nsIno, sleep, waitFor } from './helpers';

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
export interface Proc { pid: number; start: string }
export const procOf = (pid: number): Proc | undefined => {
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

/** Keeps `p` (a process a daemon started, e.g. LXC's init) among those killed if we exit without stop(). */
export function remember(p: Proc): void {
  live.set(p.pid, p);
}

/** TERM (or `signal`), wait up to graceMs, then KILL and wait; works for non-children too. */
export async function terminate(p: Proc, graceMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
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
export const procsMentioning = (needle: string) => procsWhere((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle));

/** Every live process in the namespace whose nsfs inode is `ino` (kind: uts, mnt, net...). */
export const procsInNamespace = (kind: string, ino: number) =>
  procsWhere((pid) => readlinkSync(`/proc/${pid}/ns/${kind}`) === `${kind}:[${ino}]`);

/** A daemon we spawned ourselves: its output goes to `log`, its exit is observed. */
export class Daemon {
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

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** [cmd, args] that run `cmd args` in `netns` (via nsenter, which execs: same PID) or here. */
export function inNetns(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=${netns}`, '--', cmd, ...args]] : [cmd, args];
}

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
