// DHCP end to end, with the real clients (udhcpc, dhclient, dhcpcd) against a
// real dnsmasq, through the pipework command. Everything happens inside the
// throwaway namespaces of scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/dhcp.test.ts
// The clients' scripts would rewrite /etc/resolv.conf (and more) wherever
// they run: each test proves this machine's /etc, /var/lib/dhcp* and
// hostname are left exactly as they were.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, readlinkSync,
  rmSync, statSync, symlinkSync, writeFileSync, constants,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDnsmasq, type Dnsmasq } from '../support/daemons/dnsmasq';
import { startDockerd, type Dockerd } from '../support/daemons/dockerd';
import { native } from '../../src/native';
import { spawnIsolated } from '../../src/native/spawn';
// The library as built (`npx tsc -p .` first): src/exec/attach.ts loads the
// DHCP module lazily with require(), which only resolves in dist.
const { scratchBase }: typeof import('../../src/plan/dhcp') = require('../../dist/plan/dhcp');
const { findDhcpClients }: typeof import('../../src/exec/dhcp-records') = require('../../dist/exec/dhcp-records');
const { Session }: typeof import('../../src/index') = require('../../dist/index');

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/dhcp.test.ts runs DHCP clients: only inside scripts/in-netns.js');
}

const BIN = resolve(__dirname, '../../bin/pipework.js');
// Unique per run: other test files share this netns and /run.
const tag = (process.pid % 0xffff).toString(16).padStart(4, '0');
const octet = 100 + (process.pid % 100);
const net = (host: number) => `10.66.${octet}.${host}`;
const BR = `brdh${tag}`; // br*: a Linux bridge to pipework
const DEAD_BR = `brdx${tag}`; // a bridge no DHCP server answers on
const CLIENTS = ['dnsmasq', 'udhcpc', 'dhclient', 'dhcpcd'];

let dnsmasq: Dnsmasq | undefined;
let leaseDir: string;
let scratch: string;
const timings: Record<string, number> = {};

/** What the machine's own files and names look like; compared after every test. */
interface HostState {
  resolvConf: Buffer;
  resolvStat: { ino: number; mtimeMs: number; mode: number };
  etc: string[];
  varLib: Record<string, string[]>;
  hostname: string;
}
let before: HostState;

function hostState(): HostState {
  const st = lstatSync('/etc/resolv.conf');
  const list = (d: string) => (existsSync(d) ? readdirSync(d).sort() : []);
  return {
    resolvConf: readFileSync('/etc/resolv.conf'),
    resolvStat: { ino: st.ino, mtimeMs: st.mtimeMs, mode: st.mode },
    // Only what DHCP clients' scripts write: other people may install
    // packages (and so add to /etc) while this runs.
    etc: list('/etc').filter((n) => /^(resolv\.conf|hostname|hosts|dhcp|dhcpcd|udhcpc|pw-probe)/.test(n)),
    varLib: { '/var/lib/dhcp': list('/var/lib/dhcp'), '/var/lib/dhcpcd': list('/var/lib/dhcpcd') },
    hostname: hostname(),
  };
}

function expectHostUntouched(): void {
  const now = hostState();
  // byte for byte, same file (not replaced), not touched
  expect(now.resolvConf.equals(before.resolvConf)).toBe(true);
  expect(now.resolvStat).toEqual(before.resolvStat);
  expect(now.etc).toEqual(before.etc); // e.g. no resolv.conf.dhclient-new.PID left behind
  expect(now.varLib).toEqual(before.varLib);
  expect(now.hostname).toBe(before.hostname);
  if (existsSync('/tmp/resolv.conf.orig')) expect(now.resolvConf.equals(readFileSync('/tmp/resolv.conf.orig'))).toBe(true);
}

interface CliResult { code: number | null; stdout: string; stderr: string; ms: number }

/** `pipework ARGS`; started: given the running process (to signal it). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}, started?: (child: ChildProcess) => void): Promise<CliResult> {
  const t0 = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, PIPEWORK_LEASE_DIR: leaseDir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', fail);
    // 'close': the pipes closed too. A client left running must not hold them
    // (it gets its own log file), or this would never fire.
    child.on('close', (code) => done({ code, stdout, stderr, ms: Math.round(performance.now() - t0) }));
  });
}

/** Runs a setup command (iproute2) and throws with its stderr if it fails. */
function sh(cmd: string, args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done(out) : fail(new Error(`${cmd} ${args.join(' ')}: ${err.trim()}`))));
  });
}
const ipj = async <T = any>(...args: string[]): Promise<T> => {
  const out = (await sh('ip', ['-j', ...args])).trim();
  return (out ? JSON.parse(out) : []) as T;
};

// ---------------------------------------------------------------------------
// Guests: named netns made per test, and everything in them killed afterwards

const guests: string[] = [];
let guestCount = 0;

async function newGuest(): Promise<string> {
  // Not all hex digits: dhcpcd reads `-h d03ba5` as hex bytes and sends no hostname.
  const name = `p${tag}${++guestCount}`;
  await sh('ip', ['netns', 'add', name]);
  guests.push(name);
  return name;
}

const nsIno = (name: string) => statSync(`/run/netns/${name}`).ino;

interface ProcInfo { pid: number; comm: string }

/** Live processes (not zombies) in the netns `ino`: only clients we started can be there. */
function procsInNetns(ino: number): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (statSync(`/proc/${e}/ns/net`).ino !== ino) continue;
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (/\) [ZX] /.test(stat)) continue;
      out.push({ pid: Number(e), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {
      // gone
    }
  }
  return out;
}

const alive = (pid: number) => {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const commOf = (pid: number) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pids: number[], ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (pids.some(alive) && Date.now() < until) await sleep(20);
}

/** The scratch dirs the library keeps for a guest's clients. */
const scratchDirs = (guest: string) => (existsSync(scratchBase()) ? readdirSync(scratchBase()).filter((n) => n.startsWith(`${guest}.`)) : []);

afterEach(async () => {
  // Safety net: whatever a failed test left running in its own guests.
  for (const g of guests.splice(0)) {
    let ino: number | undefined;
    try { ino = nsIno(g); } catch { /* already gone */ }
    if (ino !== undefined) {
      const procs = procsInNetns(ino).filter((p) => p.pid !== process.pid);
      for (const p of procs) {
        try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await waitGone(procs.map((p) => p.pid));
    }
    await sh('ip', ['netns', 'del', g]).catch(() => {});
    for (const d of scratchDirs(g)) rmSync(join(scratchBase(), d), { recursive: true, force: true });
    for (const f of [`/var/run/udhcpc.${g}.pid`, `/var/run/dhclient.${g}.pid`]) rmSync(f, { force: true });
  }
  expectHostUntouched();
});

beforeAll(async () => {
  before = hostState();
  leaseDir = mkdtempSync(join(tmpdir(), 'pw-dhcp-leases-'));
  scratch = mkdtempSync(join(tmpdir(), 'pw-dhcp-test-'));
  for (const [br, addr] of [[BR, net(1)], [DEAD_BR, `10.67.${octet}.1`]]) {
    await sh('ip', ['link', 'add', br, 'type', 'bridge']);
    await sh('ip', ['addr', 'add', `${addr}/24`, 'dev', br]);
    await sh('ip', ['link', 'set', br, 'up']);
  }
  dnsmasq = await startDnsmasq({
    iface: BR, range: [net(100), net(200)], netmask: '255.255.255.0', router: net(1), dns: [net(53), net(54)],
  });
  timings.dnsmasqStartup = dnsmasq.startupMs;
});

afterAll(async () => {
  await dnsmasq?.stop();
  for (const br of [BR, DEAD_BR]) await sh('ip', ['link', 'del', br]).catch(() => {});
  rmSync(leaseDir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
  console.log(`pipework DHCP attach wall times, ms (one node process each): ${JSON.stringify(timings)}`);
  // None of our clients or our dnsmasq is left anywhere in this run's namespaces.
  expectHostUntouched();
});

// ---------------------------------------------------------------------------

interface Case {
  arg: string;
  comm: string;
  /** Left running after pipework returns. */
  stays: boolean;
  /** Its pidfile while it runs (the original's place; dhcpcd: its own, per attach). */
  pidfile: (guest: string) => string | undefined;
}

/** dhcpcd's pidfile: in its private /run/dhcpcd, recorded in the attach's state file. */
const recordedPidfile = (guest: string) => {
  const [dir] = scratchDirs(guest);
  return dir ? JSON.parse(readFileSync(join(scratchBase(), dir, 'state.json'), 'utf8')).pidfile : undefined;
};

const CASES: Case[] = [
  { arg: 'udhcpc', comm: 'udhcpc', stays: false, pidfile: (g) => `/var/run/udhcpc.${g}.pid` },
  { arg: 'udhcpc-f', comm: 'udhcpc', stays: true, pidfile: (g) => `/var/run/udhcpc.${g}.pid` },
  { arg: 'dhclient', comm: 'dhclient', stays: false, pidfile: (g) => `/var/run/dhclient.${g}.pid` },
  { arg: 'dhclient-f', comm: 'dhclient', stays: true, pidfile: (g) => `/var/run/dhclient.${g}.pid` },
  { arg: 'dhcpcd', comm: 'dhcpcd', stays: true, pidfile: recordedPidfile },
];

const inRange = (a: string) => {
  const m = /^10\.66\.(\d+)\.(\d+)$/.exec(a);
  return !!m && Number(m[1]) === octet && Number(m[2]) >= 100 && Number(m[2]) <= 200;
};

describe('pipework <bridge> <netns> <dhcp client>', () => {
  for (const c of CASES) {
    it(`${c.arg}: leases an address and the default route, leaves the host's /etc alone${c.stays ? ', keeps running until stopped' : ''}`, async () => {
      const guest = await newGuest();
      const ino = nsIno(guest);
      const r = await cli(['--json', BR, guest, c.arg]);
      timings[c.arg] = r.ms;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      const result = JSON.parse(r.stdout);

      // The address, read back with iproute2 (not our own decoder).
      const [eth1] = await ipj<any[]>('-n', guest, '-4', 'addr', 'show', 'dev', 'eth1');
      const v4 = eth1.addr_info.filter((a: any) => a.family === 'inet');
      expect(v4).toHaveLength(1);
      expect(inRange(v4[0].local)).toBe(true);
      expect(v4[0].prefixlen).toBe(24);
      expect(result.addresses).toContain(`${v4[0].local}/24`);
      // The lease's router became the default route (every client's script sets it).
      const routes = await ipj<any[]>('-n', guest, '-4', 'route', 'show', 'default');
      expect(routes).toEqual([expect.objectContaining({ dst: 'default', gateway: net(1), dev: 'eth1' })]);
      // The lease's DNS servers are reported (a named netns has no resolv.conf of its own to write).
      expect(result.dns).toEqual([net(53), net(54)]);
      expect(result.resolvConf).toBeUndefined();
      // dnsmasq saw the guest's name as the client's hostname.
      expect(dnsmasq!.leases().find((l) => l.ip === v4[0].local)?.hostname, dnsmasq!.log()).toBe(guest);

      expectHostUntouched();

      const pidfile = c.pidfile(guest);
      if (!c.stays) {
        expect(procsInNetns(ino).filter((p) => CLIENTS.includes(p.comm))).toEqual([]);
        if (pidfile) expect(existsSync(pidfile)).toBe(false);
        expect(scratchDirs(guest)).toEqual([]);
        return;
      }

      // Left running: its pidfile names a live client in the guest's netns.
      expect(pidfile).toBeDefined();
      if (c.arg !== 'dhcpcd') expect(pidfile!.startsWith('/var/run/')).toBe(true);
      const pid = Number(readFileSync(pidfile!, 'utf8').trim());
      expect(alive(pid)).toBe(true);
      expect(commOf(pid)).toBe(c.comm);
      expect(statSync(`/proc/${pid}/ns/net`).ino).toBe(ino);
      // Out of our session (Ctrl-C on the terminal that ran pipework does not end it).
      const sid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[3]);
      expect(sid).not.toBe(Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[3]));
      // In its own mount and UTS namespaces.
      expect(readlinkSync(`/proc/${pid}/ns/mnt`)).not.toBe(readlinkSync('/proc/self/ns/mnt'));
      expect(readlinkSync(`/proc/${pid}/ns/uts`)).not.toBe(readlinkSync('/proc/self/ns/uts'));

      // unplug takes the link away and stops the client: nothing left behind.
      const u = await cli(['unplug', guest]);
      expect(u.code, u.stderr).toBe(0);
      expect(await ipj('-n', guest, 'link', 'show', 'dev', 'eth1').catch(() => 'gone')).toBe('gone');
      await waitGone([pid]);
      expect(alive(pid)).toBe(false);
      expect(procsInNetns(ino).filter((p) => CLIENTS.includes(p.comm))).toEqual([]);
      expect(existsSync(pidfile!)).toBe(false);
      expect(scratchDirs(guest)).toEqual([]);
      expect(findDhcpClients(guest, 'eth1')).toEqual([]); // a second unplug has nothing to stop
    });
  }
});

describe('unplug with a fault at each step', () => {
  it('udhcpc-f: before the link goes, nothing changes; after it, the next unplug stops the client', async () => {
    const guest = await newGuest();
    const ino = nsIno(guest);
    const r = await cli([BR, guest, 'udhcpc-f']);
    expect(r.code, r.stderr).toBe(0);
    const pidfile = `/var/run/udhcpc.${guest}.pid`;
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    const session = new Session();
    try {
      const plan = await session.planUnplug({ netns: guest });
      expect(plan.steps.map((s) => s.op)).toEqual(['delete-link', 'stop-dhcp']);
      expect(plan.steps[1]).toMatchObject({ record: { client: 'udhcpc', pid } });
      const eth1 = await ipj('-n', guest, 'addr', 'show', 'dev', 'eth1');

      await expect(session.unplug({ netns: guest }, 'eth1', { failAtStep: 0 })).rejects.toThrow('injected fault at step 0');
      expect(await ipj('-n', guest, 'addr', 'show', 'dev', 'eth1')).toEqual(eth1);
      expect(alive(pid)).toBe(true);
      expect(existsSync(pidfile)).toBe(true);

      // The link is gone; the client, found by its record and not by the link, is still there...
      await expect(session.unplug({ netns: guest }, 'eth1', { failAtStep: 1 })).rejects.toThrow('injected fault at step 1');
      expect(await ipj('-n', guest, 'link', 'show', 'dev', 'eth1').catch(() => 'gone')).toBe('gone');
      expect(alive(pid)).toBe(true);
      expect(findDhcpClients(guest, 'eth1')).toHaveLength(1);

      // ...for the next unplug to stop.
      expect(await session.unplug({ netns: guest })).toEqual({ action: 'absent', kind: undefined });
      await waitGone([pid]);
      expect(alive(pid)).toBe(false);
      expect(procsInNetns(ino).filter((p) => CLIENTS.includes(p.comm))).toEqual([]);
      expect(existsSync(pidfile)).toBe(false);
      expect(scratchDirs(guest)).toEqual([]);
    } finally {
      session.close();
    }
  });
});

describe('failures roll back completely', () => {
  /** What a failed attach must not leave: link, host end, clients, pidfiles, scratch dirs. */
  async function expectNothingLeft(guest: string, ino: number) {
    expect((await ipj<any[]>('-n', guest, 'link', 'show')).map((l) => l.ifname)).toEqual(['lo']);
    expect((await ipj<any[]>('link', 'show')).map((l) => l.ifname)).not.toContain(`veth1pl${guest}`);
    expect(procsInNetns(ino)).toEqual([]);
    for (const f of [`/var/run/udhcpc.${guest}.pid`, `/var/run/dhclient.${guest}.pid`]) expect(existsSync(f)).toBe(false);
    expect(scratchDirs(guest)).toEqual([]);
    expectHostUntouched();
  }

  it('a fault at every step of a udhcpc attach that replaces a down link (so a step follows dhcp): all undone, the client stopped', async () => {
    const guest = await newGuest();
    const ino = nsIno(guest);
    const old = `veth1pl${guest}`;
    await sh('ip', ['link', 'add', old, 'type', 'veth', 'peer', 'name', `${old}p`]);
    // Other test files work in this netns too: only what this attach could touch.
    const hostLinks = async () => (await ipj<any[]>('link', 'show'))
      .filter((l) => l.ifname === BR || l.master === BR || l.ifname.startsWith(old) || l.ifname.startsWith('pwold'))
      // Carrier is the kernel's to say (a bridge has it while a port has), and it says so a moment later.
      .map((l) => ({ ...l, operstate: undefined, flags: l.flags.filter((f: string) => f !== 'NO-CARRIER' && f !== 'LOWER_UP') }));
    const state = async () => ({
      host: await hostLinks(),
      guest: [await ipj('-n', guest, 'link', 'show'), await ipj('-n', guest, 'addr', 'show'), await ipj('-n', guest, 'route', 'show', 'table', 'all')],
    });
    const before = await state();
    const request = { hostInterface: BR, dhcp: { client: 'udhcpc' as const, foreground: false, options: [], hostname: guest } };
    const session = new Session();
    try {
      const ops = (await session.plan({ netns: guest }, request)).steps.map((st) => st.op);
      expect(ops).toEqual(['move-aside-host-link', 'create-veth', 'guest-link-up', 'dhcp', 'delete-host-link']);
      for (let k = 0; k < ops.length; k++) {
        await expect(session.attach({ netns: guest }, request, { failAtStep: k })).rejects.toThrow(`injected fault at step ${k}`);
        expect(await state(), `after a fault at step ${k} (${ops[k]})`).toEqual(before);
        expect(procsInNetns(ino).filter((p) => CLIENTS.includes(p.comm)), `clients after a fault at step ${k}`).toEqual([]);
        expect(existsSync(`/var/run/udhcpc.${guest}.pid`)).toBe(false);
        expect(scratchDirs(guest)).toEqual([]);
      }
      const r = await session.attach({ netns: guest }, request);
      expect(r.addresses).toEqual([expect.stringMatching(/^10\.66\.\d+\.\d+\/24$/)]);
      expect((await hostLinks()).map((l) => l.ifname)).not.toContain(`${old}p`); // the old veth went, once all was done
      await session.unplug({ netns: guest });
    } finally {
      session.close();
    }
  });

  it('a missing client: the original message, exit 1, and no link left behind', async () => {
    // Without the sbin dirs on PATH none of the clients is found (as with the original's `which`).
    const path = '/usr/local/bin:/usr/bin:/bin';
    const found = path.split(':').some((d) => existsSync(`${d}/udhcpc`));
    expect(found).toBe(false);
    const guest = await newGuest();
    const r = await cli([BR, guest, 'udhcpc'], { PATH: path });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("You asked for DHCP client udhcpc, but I can't find it.\n");
    expect((await ipj<any[]>('link', 'show', 'master', BR)).map((l) => l.ifname)).not.toContain(`veth1pl${guest}`);
    await expectNothingLeft(guest, nsIno(guest));
  });

  it('SIGTERM while the client waits for a lease: the attach rolled back (client stopped), exit 143, nothing left', async () => {
    const guest = await newGuest();
    const ino = nsIno(guest);
    const r = await cli([DEAD_BR, guest, 'udhcpc'], { PIPEWORK_DHCP_TIMEOUT: '3' }, (child) => {
      // Once the client runs in the guest: the veth and link-up are done, the lease is awaited.
      const poll = setInterval(() => {
        if (procsInNetns(ino).some((p) => p.comm === 'udhcpc')) {
          clearInterval(poll);
          child.kill('SIGTERM');
        }
      }, 20);
      child.once('exit', () => clearInterval(poll));
    });
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toMatch(/^pipework: SIGTERM: rolling back the attach\n/);
    await expectNothingLeft(guest, ino);
  });

  for (const arg of ['udhcpc', 'udhcpc-f', 'dhclient-f']) {
    it(`${arg} with no DHCP server: times out (PIPEWORK_DHCP_TIMEOUT), kills the client, exit 1, nothing left`, async () => {
      const guest = await newGuest();
      const t0 = performance.now();
      const r = await cli([DEAD_BR, guest, arg], { PIPEWORK_DHCP_TIMEOUT: '1.5' });
      const ms = performance.now() - t0;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^DHCP client ${arg.replace('-f', '')} on eth1 got no lease within 1.5 s`));
      expect(ms).toBeLessThan(8000);
      await expectNothingLeft(guest, nsIno(guest));
    });
  }

  it('an invalid PIPEWORK_DHCP_TIMEOUT is refused before anything runs', async () => {
    const guest = await newGuest();
    const r = await cli([BR, guest, 'udhcpc'], { PIPEWORK_DHCP_TIMEOUT: 'soon' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Invalid PIPEWORK_DHCP_TIMEOUT: soon/);
    await expectNothingLeft(guest, nsIno(guest));
  });
});

const haveDockerd = spawnSync('sh', ['-c', 'command -v dockerd && command -v docker'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!haveDockerd)('Docker containers (a real dockerd in this run\'s namespaces)', () => {
  let d: Dockerd | undefined;
  const name = `pwc${tag}`;
  let pid = 0;
  const inContainer = async <T = any>(...args: string[]): Promise<T> => {
    const out = (await sh('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-j', ...args])).trim();
    return (out ? JSON.parse(out) : []) as T;
  };
  const helpers = async (all = false) => (await d!.docker(['ps', ...(all ? ['-a'] : []), '-q', '--no-trunc', '--filter', 'label=pipework.dhcp-helper'])).split('\n').filter(Boolean);

  beforeAll(async () => {
    d = await startDockerd();
    timings.dockerdStartup = d.startupMs;
    await d.docker(['run', '-d', '--network', 'none', '--name', name, d.busyboxImage, 'sleep', '100000']);
    pid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', name])).trim());
  }, 180_000);
  afterAll(async () => {
    await d?.stop();
  }, 120_000);

  it('dhcp: busybox udhcpc in a helper container sharing the netns (AutoRemove), configures the address and the container\'s DNS', async () => {
    const id = (await d!.docker(['inspect', '-f', '{{.Id}}', name])).trim();
    await d!.docker(['exec', name, 'sh', '-c', 'echo nameserver 192.0.2.53 > /etc/resolv.conf']);
    const r = await cli(['--json', BR, name, 'dhcp'], d!.env);
    timings.dhcp = r.ms;
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    const [eth1] = await inContainer<any[]>('-4', 'addr', 'show', 'dev', 'eth1');
    expect(eth1.addr_info).toHaveLength(1);
    expect(inRange(eth1.addr_info[0].local)).toBe(true);
    expect(result.addresses).toEqual([`${eth1.addr_info[0].local}/24`]);
    expect(await inContainer('-4', 'route', 'show', 'default')).toEqual([expect.objectContaining({ gateway: net(1), dev: 'eth1' })]);
    expect(await d!.docker(['exec', name, 'cat', '/etc/resolv.conf'])).toBe(`nameserver ${net(53)}\nnameserver ${net(54)}\n`);
    expect(result.dns).toEqual([net(53), net(54)]);
    expect(result.resolvConf).toBe(`/proc/${pid}/root/etc/resolv.conf`);
    expect(dnsmasq!.leases().find((l) => l.ip === eth1.addr_info[0].local)?.hostname).toBe(name);

    // One helper, still running (it renews the lease), removed on exit by Docker itself.
    const [helper] = await helpers();
    expect(await helpers()).toHaveLength(1);
    const info = JSON.parse(await d!.docker(['inspect', helper]))[0];
    expect(info.HostConfig).toMatchObject({ NetworkMode: `container:${id}`, CapAdd: ['NET_ADMIN'], AutoRemove: true });
    expect(info.Config.Cmd).toEqual(['udhcpc', '-f', '-i', 'eth1', '-x', `hostname:${name}`]);
    expect(info.State.Running).toBe(true);
    expectHostUntouched();

    const u = await cli(['unplug', name], d!.env);
    expect(u.code, u.stderr).toBe(0);
    // unplug removed the helper container and its record.
    expect(findDhcpClients(name, 'eth1')).toEqual([]);
    expect(await helpers(true)).toEqual([]);
    expect(scratchDirs(name)).toEqual([]);
  });

  it('udhcpc for a Docker container: the lease\'s DNS servers are written to the container\'s own resolv.conf', async () => {
    await d!.docker(['exec', name, 'sh', '-c', 'echo nameserver 192.0.2.53 > /etc/resolv.conf']);
    const r = await cli(['--json', BR, '-i', 'eth2', name, 'udhcpc'], d!.env);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.resolvConf).toBe(`/proc/${pid}/root/etc/resolv.conf`);
    expect(await d!.docker(['exec', name, 'cat', '/etc/resolv.conf'])).toBe(`nameserver ${net(53)}\nnameserver ${net(54)}\n`);
    const [eth2] = await inContainer<any[]>('-4', 'addr', 'show', 'dev', 'eth2');
    expect(inRange(eth2.addr_info[0].local)).toBe(true);
    expectHostUntouched();
    const u = await cli(['unplug', name, '-i', 'eth2'], d!.env);
    expect(u.code, u.stderr).toBe(0);
  });
});

describe("the lease's DNS servers go to the guest's own resolv.conf", () => {
  it('written into the rootfs (through a symlink that stays inside it), never the host', async () => {
    const guest = await newGuest();
    const rootfs = mkdtempSync(join(scratch, 'rootfs-'));
    mkdirSync(join(rootfs, 'etc'));
    mkdirSync(join(rootfs, 'run'));
    // Like systemd-resolved's layout: an absolute symlink. Followed from the
    // host it would name the host's /run/... file; inside the rootfs it must not.
    const outside = join(scratch, 'outside-resolv.conf');
    writeFileSync(outside, 'nameserver 192.0.2.1\n');
    symlinkSync(`/..${outside}`, join(rootfs, 'etc', 'resolv.conf'));
    mkdirSync(join(rootfs, scratch), { recursive: true });
    const session = new Session();
    try {
      const r = await session.attach({ netns: guest }, {
        hostInterface: BR,
        dhcp: { client: 'udhcpc', foreground: false, options: [], hostname: guest, rootfs },
      });
      expect(r.dns).toEqual([net(53), net(54)]);
      expect(r.resolvConf).toBe(join(rootfs, 'etc/resolv.conf'));
    } finally {
      session.close();
    }
    expect(readFileSync(outside, 'utf8')).toBe('nameserver 192.0.2.1\n');
    expect(readFileSync(join(rootfs, scratch, 'outside-resolv.conf'), 'utf8')).toBe(`nameserver ${net(53)}\nnameserver ${net(54)}\n`);
    expectHostUntouched();
  });
});

describe('spawnIsolated: the isolation the DHCP clients run in', () => {
  async function runIsolated(opts: Parameters<typeof spawnIsolated>[0]) {
    const out = join(scratch, `out-${Math.random().toString(36).slice(2)}`);
    const fd = openSync(out, 'w');
    try {
      const child = spawnIsolated({ ...opts, stdoutFd: fd, stderrFd: fd });
      const exit = await child.exited;
      return { pid: child.pid, exit, output: readFileSync(out, 'utf8') };
    } finally {
      closeSync(fd);
    }
  }

  it('an overlay on /etc takes writes, renames onto files (dhclient-script) and deletes; the real /etc sees none', async () => {
    const dir = mkdtempSync(join(scratch, 'ov-'));
    mkdirSync(join(dir, 'upper'));
    mkdirSync(join(dir, 'work'));
    const r = await runIsolated({
      file: '/bin/sh',
      args: ['-c', 'echo nameserver 192.0.2.9 > /etc/resolv.conf.new.$$ && mv /etc/resolv.conf.new.$$ /etc/resolv.conf && cat /etc/resolv.conf && touch /etc/pw-probe && rm /etc/hostname 2>/dev/null; echo ok'],
      privateMounts: true,
      overlays: [{ target: '/etc', upper: join(dir, 'upper'), work: join(dir, 'work') }],
    });
    expect(r.exit).toEqual({ code: 0, signal: null });
    expect(r.output).toBe('nameserver 192.0.2.9\nok\n');
    expect(readFileSync(join(dir, 'upper', 'resolv.conf'), 'utf8')).toBe('nameserver 192.0.2.9\n');
    expect(existsSync(join(dir, 'upper', 'pw-probe'))).toBe(true);
    expect(existsSync('/etc/pw-probe')).toBe(false);
    expectHostUntouched();
  });

  it('a private UTS namespace with its own hostname; ours is unchanged', async () => {
    const r = await runIsolated({ file: '/bin/sh', args: ['-c', 'hostname; hostname renamed-by-script; hostname'], privateUts: true, hostname: 'guest-a' });
    expect(r.exit.code).toBe(0);
    expect(r.output).toBe('guest-a\nrenamed-by-script\n');
    expect(hostname()).toBe(before.hostname);
  });

  it('newSession: the child leads a session of its own', async () => {
    const r = await runIsolated({ file: '/bin/sh', args: ['-c', 'cut -d" " -f6 /proc/self/stat; echo $$'], newSession: true });
    // cut is a child of the shell: its session id is the shell's pid
    const [sid, shPid] = r.output.trim().split('\n').map(Number);
    expect(sid).toBe(shPid);
    expect(sid).toBe(r.pid);
  });

  it('refuses overlays without privateMounts and a hostname without privateUts, before anything runs', () => {
    expect(() => spawnIsolated({ file: 'true', args: [], overlays: [{ target: '/etc', upper: '/tmp/u', work: '/tmp/w' }] })).toThrow(/privateMounts/);
    expect(() => spawnIsolated({ file: 'true', args: [], hostname: 'x' })).toThrow(/privateUts/);
    expect(() => spawnIsolated({ file: 'true', args: [], privateMounts: true, overlays: [{ target: '/etc', upper: '/tmp/a,b', work: '/tmp/w' }] })).toThrow(/must not contain/);
  });

  it('a failed overlay mount is a synchronous mount error, and the child is reaped', () => {
    let err: any;
    try {
      spawnIsolated({ file: 'true', args: [], privateMounts: true, overlays: [{ target: '/etc', upper: '/nonexistent-pw/u', work: '/nonexistent-pw/w' }] });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ syscall: 'mount', code: 'ENOENT' });
    expect(err.message).toMatch(/overlay/);
  });

  it('openInRoot keeps "..", absolute symlinks and symlinked dirs inside the root', () => {
    const root = mkdtempSync(join(scratch, 'root-'));
    const victim = join(scratch, 'victim');
    writeFileSync(victim, 'host file\n');
    mkdirSync(join(root, 'etc'));
    symlinkSync('/', join(root, 'up'));
    symlinkSync(victim, join(root, 'etc', 'abs'));
    for (const p of ['../../../../..' + victim, 'up/..' + victim, 'etc/abs']) {
      let fd: number | undefined;
      try {
        fd = native.openInRoot(root, p, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC);
        expect(fstatSync(fd).ino).not.toBe(statSync(victim).ino);
      } catch (e: any) {
        expect(e.code).toBe('ENOENT'); // the same path inside the root has no such dir
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
    expect(readFileSync(victim, 'utf8')).toBe('host file\n');
  });
});
