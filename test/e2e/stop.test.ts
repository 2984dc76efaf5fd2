// Graceful stop of `pipework --batch` and `pipework unplug --batch`: a signal
// while 1000 named netns are being plumbed (veth on a bridge, address,
// gateway) leaves every guest either untouched or complete, read back with
// `ip -j` in each guest; the summary names the lines done, failed, rolled
// back and not started; the exit status is 128 + the signal's number.
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/stop.test.ts
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

if (process.env.PIPEWORK_IN_NETNS !== '1') throw new Error('test/e2e/stop.test.ts makes named netns: only inside scripts/in-netns.js');

const BIN = resolve(__dirname, '../../bin/pipework.js');
const N = 1000;
// Unique per run (other test files share this /run/netns), and short: veth1pl<name> then fits in 15 characters as it is.
const tag = (process.pid % 0xff).toString(16).padStart(2, '0');
const HOST = `s${tag}h`;
const guest = (i: number) => `s${tag}g${i}`;
/** Line i (1-based) plumbs guest i: 10.80.x.y/16 via 10.80.0.1. */
const address = (i: number) => `10.80.${1 + (i >> 8)}.${i & 255}`;
const batchLine = (i: number) => `br0 ${guest(i)} ${address(i)}/16@10.80.0.1`;

let dir: string;

function ipBatch(lines: string[], ...opts: string[]): string {
  return execFileSync('ip', [...opts, '-batch', '-'], { input: lines.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 28 });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pw-stop-'));
  ipBatch([`netns add ${HOST}`, ...Array.from({ length: N }, (_, i) => `netns add ${guest(i + 1)}`)]);
  ipBatch(['link set lo up', 'link add br0 type bridge', 'link set br0 up'], '-n', HOST);
}, 120_000);
afterAll(() => {
  ipBatch([`netns del ${HOST}`, ...Array.from({ length: N }, (_, i) => `netns del ${guest(i + 1)}`)], '-force');
  rmSync(dir, { recursive: true, force: true });
});

interface Run { code: number | null; stdout: string; stderr: string }

/**
 * `pipework ARGS` in the host netns; `when(stdout, stderr)` is asked as
 * output comes and returns the signals to send by then (each sent once).
 */
function cli(args: string[], when: (stdout: string, stderr: string) => NodeJS.Signals[]): Promise<Run> {
  return new Promise((done, fail) => {
    // nsenter execs node in place: the child's PID is pipework's.
    const child: ChildProcess = spawn('nsenter', [`--net=/run/netns/${HOST}`, '--', process.execPath, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const sent = new Set<string>();
    const check = () => {
      for (const sig of when(stdout, stderr)) {
        if (sent.has(sig) || child.exitCode !== null) continue;
        sent.add(sig);
        child.kill(sig);
      }
    };
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; check(); });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; check(); });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Per guest: 'untouched' (only lo), 'complete' (eth1 up with its address and default route), or what is half-made. */
function guestStates(): string[] {
  const cmds = join(dir, 'show');
  writeFileSync(cmds, 'link show\naddr show\nroute show\n');
  // One ip per guest, all started by one ip: each prints "netns: NAME" then three JSON lines.
  const out = execFileSync('ip', ['-all', 'netns', 'exec', 'ip', '-j', '-batch', cmds], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const states = new Array<string>(N + 1).fill('unread');
  for (const block of out.split(/^netns: /m).slice(1)) {
    const [name, linksJ, addrsJ, routesJ] = block.trim().split('\n');
    const m = new RegExp(`^s${tag}g(\\d+)$`).exec(name);
    if (!m) continue;
    const i = Number(m[1]);
    const links = JSON.parse(linksJ).map((l: any) => l.ifname).sort();
    const addrs = JSON.parse(addrsJ).flatMap((a: any) => (a.addr_info ?? []).filter((x: any) => x.family === 'inet').map((x: any) => `${a.ifname} ${x.local}/${x.prefixlen}`));
    const routes = JSON.parse(routesJ).map((r: any) => `${r.dst} ${r.gateway ?? ''} ${r.dev}`.trim());
    const eth1 = JSON.parse(linksJ).find((l: any) => l.ifname === 'eth1');
    if (links.join() === 'lo' && addrs.length === 0 && routes.length === 0) states[i] = 'untouched';
    else if (links.join() === 'eth1,lo' && eth1.flags.includes('UP') && addrs.join() === `eth1 ${address(i)}/16` &&
      routes.includes('default 10.80.0.1 eth1')) states[i] = 'complete';
    else states[i] = `half-made: ${JSON.stringify({ links, addrs, routes })}`;
  }
  return states;
}

/** The host ends on br0: one per complete guest, all up. */
function hostPorts(): number {
  const ports = JSON.parse(execFileSync('ip', ['-n', HOST, '-j', 'link', 'show', 'master', 'br0'], { encoding: 'utf8', maxBuffer: 1 << 26 }));
  expect(ports.filter((p: any) => !p.flags.includes('UP'))).toEqual([]);
  return ports.length;
}

/** [[first, last], ...] as the line numbers they hold. */
const expand = (ranges: [number, number][]) => ranges.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, k) => a + k));

/** Every guest untouched or complete, as the summary says; returns the summary. */
function checkStopped(r: Run, signal: NodeJS.Signals, status: number) {
  expect(r.code, r.stderr).toBe(status);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  expect(summary.stopped).toBe(signal);
  expect(r.stderr).toMatch(new RegExp(`^stopped by ${signal}: \\d+ done.*, \\d+ not started \\(lines [\\d, -]+\\), in [\\d.]+ s$`, 'm'));
  const done = expand(summary.done);
  const notStarted = expand(summary.notStarted);
  const rolledBack = expand(summary.rolledBack);
  expect(expand(summary.failed)).toEqual([]);
  expect(notStarted.length).toBeGreaterThan(0);
  expect(done.length).toBeGreaterThan(0);
  // Each line in exactly one list.
  expect([...done, ...notStarted, ...rolledBack].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, k) => k + 1));
  const states = guestStates();
  expect(states.map((s, i) => [i, s]).filter(([, s]) => typeof s === 'string' && s.startsWith('half-made'))).toEqual([]);
  expect(done.filter((i) => states[i] !== 'complete')).toEqual([]);
  expect([...notStarted, ...rolledBack].filter((i) => states[i] !== 'untouched')).toEqual([]);
  expect(hostPorts()).toBe(done.length);
  return { done, notStarted, rolledBack };
}

/** Unplugs every guest (a full unplug --batch, itself checked), so the next test starts from untouched guests. */
async function unplugAll() {
  const file = join(dir, 'unplug.txt');
  writeFileSync(file, Array.from({ length: N }, (_, i) => guest(i + 1)).join('\n') + '\n');
  const r = await cli(['unplug', '--batch', file], () => []);
  expect(r.code, r.stderr).toBe(0);
  expect(guestStates().slice(1).filter((s) => s !== 'untouched')).toEqual([]);
}

const attachFile = () => {
  const file = join(dir, 'attach.txt');
  writeFileSync(file, Array.from({ length: N }, (_, i) => batchLine(i + 1)).join('\n') + '\n');
  return file;
};
/** Once a fifth of the lines have printed their result. */
const aFifthDone = (stdout: string) => stdout.split('\n').length > N / 5;

// 32 lines in flight (--concurrency): with the default (1024) all 1000 lines would have started before any signal.
describe('a signal during a 1000-line --batch', () => {
  for (const [signal, status] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    it(`${signal}: the lines in flight finish, no more start; exit ${status}`, async () => {
      const r = await cli(['--concurrency', '32', '--json', '--batch', attachFile()], (out) => (aFifthDone(out) ? [signal] : []));
      const { rolledBack } = checkStopped(r, signal, status);
      expect(r.stderr).toContain(`pipework: ${signal}: starting no more lines`);
      expect(rolledBack).toEqual([]);
      await unplugAll();
    }, 300_000);
  }

  it('a second signal while stopping: the attaches in flight roll back instead; still nothing half-made', async () => {
    const r = await cli(['--concurrency', '32', '--json', '--batch', attachFile()], (out, err) => [
      ...(aFifthDone(out) ? ['SIGTERM' as const] : []),
      ...(err.includes('starting no more lines') ? ['SIGHUP' as const] : []),
    ]);
    checkStopped(r, 'SIGTERM', 143);
    expect(r.stderr).toContain('pipework: SIGHUP: rolling back the attaches in flight');
    for (const l of r.stderr.split('\n').filter((s) => s.startsWith('line '))) expect(l).toMatch(/^line \d+: stopped before it was complete, and rolled back$/);
    await unplugAll();
  }, 300_000);

  it('unplug --batch, SIGHUP: the guests unplugged or still complete; exit 129', async () => {
    const a = await cli(['--batch', attachFile()], () => []);
    expect(a.code, a.stderr).toBe(0);
    const file = join(dir, 'unplug.txt');
    writeFileSync(file, Array.from({ length: N }, (_, i) => guest(i + 1)).join('\n') + '\n');
    const r = await cli(['--concurrency', '32', '--json', 'unplug', '--batch', file], (out) => (aFifthDone(out) ? ['SIGHUP'] : []));
    expect(r.code, r.stderr).toBe(129);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(summary.stopped).toBe('SIGHUP');
    const done = expand(summary.done);
    const notStarted = expand(summary.notStarted);
    expect(notStarted.length).toBeGreaterThan(0);
    expect([...done, ...notStarted].sort((x, y) => x - y)).toEqual(Array.from({ length: N }, (_, k) => k + 1));
    const states = guestStates();
    expect(done.filter((i) => states[i] !== 'untouched')).toEqual([]);
    expect(notStarted.filter((i) => states[i] !== 'complete')).toEqual([]);
    expect(hostPorts()).toBe(notStarted.length);
    await unplugAll();
  }, 300_000);
});
