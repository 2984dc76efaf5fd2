// Helpers for test/e2e/cni.test.ts: running bin/pipework-cni.js as a CNI
// runtime would (an executable with CNI_* variables and a config on stdin),
// reading kernel state back with iproute2, and a fake IPAM plugin that
// records what it was given. Only inside scripts/in-netns.js.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { LinkJson } from '../../helpers/kernel';

export const BIN = resolve(__dirname, '../../../bin/pipework-cni.js');
/** The native shim (native/cni-shim.c), built by npm install. */
export const SHIM = resolve(__dirname, '../../../build/Release/pipework-cni-shim');
/** Debian's containernetworking-plugins. */
export const SYSTEM_CNI = '/usr/lib/cni';

export const nsFile = (ns: string) => (ns.startsWith('/') ? ns : `/run/netns/${ns}`);

/** A command for test setup: throws with its stderr on failure. */
export function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
export const inNs = (ns: string, cmd: string, ...args: string[]) => sh('nsenter', `--net=${nsFile(ns)}`, '--', cmd, ...args);
export const ip = (ns: string, ...args: string[]) => inNs(ns, 'ip', ...args);

/** `ip -j ARGS` in a netns, parsed (empty objects iproute2 leaves in lists dropped). */
export function ipj<T = any>(ns: string, ...args: string[]): T {
  const out = inNs(ns, 'ip', '-j', ...args).trim();
  const isEmpty = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
  return (out ? JSON.parse(out, (_k, v) => (Array.isArray(v) ? v.filter((x) => !isEmpty(x)) : v)) : []) as T;
}

export const links = (ns: string): LinkJson[] => ipj(ns, '-d', 'link', 'show');
export const link = (ns: string, name: string) => links(ns).find((l) => l.ifname === name);
/** Names of the ports of a bridge. */
export const ports = (ns: string, bridge: string) => ipj<LinkJson[]>(ns, 'link', 'show', 'master', bridge).map((l) => l.ifname).sort();
export const addrs = (ns: string, dev: string, fam = '-4'): string[] =>
  (ipj<any[]>(ns, fam, 'addr', 'show', 'dev', dev)[0]?.addr_info ?? []).filter((a: any) => a.scope !== 'link').map((a: any) => `${a.local}/${a.prefixlen}`);
export const routes = (ns: string, fam = '-4'): any[] => ipj(ns, fam, 'route', 'show');

export function ping(ns: string, addr: string, waitS = 2): boolean {
  return spawnSync('nsenter', [`--net=${nsFile(ns)}`, 'ping', addr.includes(':') ? '-6' : '-4', '-c', '1', '-W', String(waitS), addr], { stdio: 'ignore' }).status === 0;
}

/** True if the kernel can make links of this kind (tried in a scratch netns). */
export function kernelHas(kind: string, ...extra: string[]): boolean {
  return spawnSync('unshare', ['--net', 'sh', '-c', `ip link add probe0 type veth peer name probe1 && ip link add ${kind === 'vlan' ? 'link probe0 ' : ''}name probe2 type ${kind} ${extra.join(' ')}`],
    { stdio: 'ignore' }).status === 0;
}

export interface CniRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout as JSON (a result, a version answer or an error result), or undefined if it is empty. */
  json: any;
  ms: number;
}

export interface CniEnv {
  CNI_COMMAND?: string;
  CNI_CONTAINERID?: string;
  CNI_NETNS?: string;
  CNI_IFNAME?: string;
  CNI_ARGS?: string;
  CNI_PATH?: string;
  [k: string]: string | undefined;
}

/**
 * Runs the plugin executable in the netns `host` (the runtime's netns: ours
 * plays the host), with exactly the CNI variables given (none inherited) and
 * `input` on stdin (an object is sent as JSON).
 */
export function cni(host: string, env: CniEnv, input: unknown, opts: { argv0?: string[] } = {}): Promise<CniRun> {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CNI_')) base[k] = v;
  for (const [k, v] of Object.entries(env)) if (v !== undefined) base[k] = v;
  const t0 = performance.now();
  return new Promise((done, fail) => {
    const argv = opts.argv0 ?? [BIN];
    const child = spawn('nsenter', [`--net=${nsFile(host)}`, '--', ...argv], { env: base, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', fail);
    child.on('close', (code) => {
      let json: any;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      done({ code, stdout, stderr, json, ms: performance.now() - t0 });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(typeof input === 'string' || Buffer.isBuffer(input) ? input : input === undefined ? '' : JSON.stringify(input));
  });
}

/** The IP reservations host-local holds in dataDir for a network: address -> container id. */
export function reservations(dataDir: string, network: string): Record<string, string> {
  const out: Record<string, string> = {};
  let files: string[];
  try {
    files = readdirSync(join(dataDir, network));
  } catch {
    return out;
  }
  for (const f of files) {
    if (f === 'lock' || f.startsWith('last_reserved_ip')) continue;
    out[f] = readFileSync(join(dataDir, network, f), 'utf8').split(/\r?\n/)[0].trim();
  }
  return out;
}

/**
 * A fake IPAM plugin (a shell script) in `dir`, named `name`: it saves its
 * stdin and environment per command (`<dir>/<name>.<CMD>.in`, `.env`),
 * answers VERSION with 1.0.0 and 1.1.0, ADD with `result`, and fails with
 * `fail` (a CNI error result) for the commands listed there.
 */
export function fakeIpam(dir: string, name: string, result: unknown, fail: { commands: string[]; error?: unknown } = { commands: [] }): string {
  const file = join(dir, name);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  writeFileSync(file, `#!/bin/sh
cat > ${q(join(dir, name))}."$CNI_COMMAND".in
env > ${q(join(dir, name))}."$CNI_COMMAND".env
echo "$CNI_COMMAND" >> ${q(join(dir, `${name}.calls`))}
case " ${fail.commands.join(' ')} " in *" $CNI_COMMAND "*)
  echo ${q(JSON.stringify(fail.error ?? { cniVersion: '1.1.0', code: 11, msg: 'fake failure', details: 'asked to fail' }))}; exit 1;;
esac
case "$CNI_COMMAND" in
  VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}';;
  ADD) echo ${q(JSON.stringify(result))};;
esac
exit 0
`);
  chmodSync(file, 0o755);
  return file;
}

/** Commands the fake IPAM plugin received, in order. */
export function fakeCalls(dir: string, name: string): string[] {
  try {
    return readFileSync(join(dir, `${name}.calls`), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Named netns (`ip netns add`) and temp dirs a test file makes, all removed by cleanup() (from afterEach). */
export function scratch(prefix: string) {
  const namespaces: string[] = [];
  const dirs: string[] = [];
  return {
    addNs(name: string): string {
      spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
      namespaces.push(name);
      return name;
    },
    dir(): string {
      const d = mkdtempSync(join(tmpdir(), `pw-${prefix}-`));
      dirs.push(d);
      return d;
    },
    cleanup(): void {
      for (const ns of namespaces.splice(0)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** `pipework daemon --socket SOCKET` in the netns `host`; resolves once the socket accepts connections. */
export async function startPipeworkDaemon(host: string, socket: string): Promise<ChildProcess> {
  const d = spawn('nsenter', [`--net=${nsFile(host)}`, '--', process.execPath, resolve(__dirname, '../../../bin/pipework.js'), 'daemon', '--socket', socket, '-q'],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (d.exitCode !== null) throw new Error(`pipework daemon exited ${d.exitCode}`);
    const up = await new Promise<boolean>((ok) => {
      const s = connect(socket).once('connect', () => { s.destroy(); ok(true); }).once('error', () => ok(false));
    });
    if (up) return d;
    if (Date.now() > deadline) throw new Error('pipework daemon did not listen within 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Ends a child with SIGTERM (it finishes what is in flight) and waits for it. */
export async function stopChild(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await gone;
}
