// A real CNI runtime for test/e2e/cni.test.ts: Debian's containerd + runc,
// with `ctr run --cni` calling the plugins. Only inside scripts/in-netns.js.
//
// - Everything of containerd's (root, state, sockets, TMPDIR, the "opt" plugin's dir)
//   is in a temp dir; the CRI plugin (which would read the machine's CNI
//   setup) is disabled.
// - ctr, which is the process that runs CNI plugins for `ctr run --cni`,
//   reads /etc/cni/net.d and /opt/cni/bin and caches results in
//   /var/lib/cni: it runs in a private mount namespace (startPrivateEtc:
//   /etc and /var/lib are overlays whose upper dirs are scratch dirs) where
//   a temp dir is bind-mounted over /opt and /etc/cni/net.d is made in the
//   overlay. The machine's /etc, /opt and /var/lib are never written.
// - ctr runs in the netns `hostNetns` (the plugin's "host": bridges and veth
//   host ends appear there), containerd in the same private mount namespace.
// - Containers: `ctr run --rm --cni --rootfs DIR ID CMD` in the foreground
//   (so ctr runs CNI DEL when the task exits), rootfs from Debian's
//   busybox-static; cgroups under /<ctr namespace>/, removed by stop().
// - stop(): SIGKILL every task (a `sleep` as PID 1 ignores SIGTERM), wait for
//   the foreground ctr processes (they run DEL and remove their container),
//   TERM containerd, then kill by PID anything left whose command line names
//   the temp dir (shims), remove cgroups, the private mounts and the dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfsTar } from '../../support/daemons/busybox';
import { ensureCgroups } from '../../support/daemons/cgroups';
import { assertPrivateNamespaces, run, sleep, tmpDir, waitFor } from '../../support/daemons/helpers';
import { startPrivateEtc, type PrivateEtc } from '../../support/daemons/private-etc';
import { BIN, SYSTEM_CNI, nsFile } from './harness';

export interface CniLogLine {
  command: string;
  containerId: string;
  netns: string;
  ifname: string;
  code: number;
  msg?: string;
  ips?: string[];
  /** Milliseconds the command took, and since the plugin process started. */
  ms: number;
  processMs: number;
}

export interface Containerd {
  dir: string;
  /** The ctr namespace (also the prefix of CNI container ids: `<ns>-<id>`). */
  namespace: string;
  pid: number;
  /** `ctr ARGS` in the host netns and the private mount namespace; resolves with stdout. */
  ctr(args: string[], opts?: { allowFailure?: boolean; timeoutMs?: number }): Promise<string>;
  /** `ctr run --rm --cni --rootfs <fresh busybox rootfs> ID ARGV...` in the foreground, in the background. */
  runContainer(id: string, argv: string[]): { child: ChildProcess; exited: Promise<number | null>; output: () => string };
  /** The plugin's log (PIPEWORK_CNI_LOG): one line per CNI call. */
  cniLog(): CniLogLine[];
  /** host-local's data dir (the conflist points there). */
  ipamDir: string;
  startupMs: number;
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** The runtime's netns (named), where the plugin's host side goes. */
  hostNetns: string;
  /** Builds the conflist given host-local's data dir. */
  conflist: (ipamDir: string) => object;
  /** The executable installed as the `pipework` plugin (default bin/pipework-cni.js). */
  plugin?: string;
  /** More environment for ctr, which passes it on to the plugins it runs. */
  env?: Record<string, string>;
}

/** A process we may signal: PID plus start time (a reused PID is never hit). */
const startTime = (pid: number): string | undefined => {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
};

function procsMentioning(needle: string): { pid: number; start: string }[] {
  const out: { pid: number; start: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(needle)) continue;
    } catch {
      continue;
    }
    const start = startTime(Number(name));
    if (start) out.push({ pid: Number(name), start });
  }
  return out;
}

async function killAndWait(p: { pid: number; start: string }): Promise<void> {
  if (startTime(p.pid) !== p.start) return;
  try { process.kill(p.pid, 'SIGKILL'); } catch { return; }
  await waitFor(() => { const st = startTime(p.pid); return st !== p.start || /\) Z /.test(readFileSync(`/proc/${p.pid}/stat`, 'utf8')); }, 5000, `PID ${p.pid} to die`).catch(() => undefined);
}

/** Empty cgroup dirs `<mount>/<rel>` (deepest first) on every cgroup hierarchy. */
function removeCgroups(rel: string): void {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post || !/^cgroup2? /.test(post)) continue;
    const root = join(pre.split(' ')[4], rel);
    const dirs: string[] = [];
    const walk = (d: string) => {
      let st;
      try { st = statSync(d); } catch { return; }
      if (!st.isDirectory()) return;
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      dirs.push(d);
    };
    walk(root);
    for (const d of dirs) try { rmdirSync(d); } catch { /* busy or gone */ }
  }
}

export async function startContainerd(opts: ContainerdOptions): Promise<Containerd> {
  assertPrivateNamespaces();
  const t0 = performance.now();
  await ensureCgroups();
  const dir = tmpDir('ctd');
  const namespace = `pwcni${dir.slice(dir.lastIndexOf('-') + 1).toLowerCase()}`;
  const socket = join(dir, 'containerd.sock');
  const ipamDir = join(dir, 'ipam');
  const cniLogFile = join(dir, 'cni.log');
  const optDir = join(dir, 'opt');
  const cniBin = join(optDir, 'cni', 'bin');
  mkdirSync(cniBin, { recursive: true });
  mkdirSync(ipamDir);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp);
  // The plugin under its CNI type name, and the two Debian plugins ctr needs (loopback: ctr's lo network).
  symlinkSync(opts.plugin ?? BIN, join(cniBin, 'pipework'));
  for (const p of ['host-local', 'loopback']) symlinkSync(join(SYSTEM_CNI, p), join(cniBin, p));
  const conflist = join(dir, '10-pipework.conflist');
  writeFileSync(conflist, JSON.stringify(opts.conflist(ipamDir), null, 2));
  const config = join(dir, 'config.toml');
  writeFileSync(config, [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${socket}.ttrpc"`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${join(dir, 'containerd-opt')}"`,
    '',
  ].join('\n'));

  let etc: PrivateEtc | undefined;
  let daemon: ChildProcess | undefined;
  let daemonExit: Promise<void> | undefined;
  const foreground = new Map<string, { child: ChildProcess; exited: Promise<number | null> }>();
  const env = { ...process.env, PIPEWORK_CNI_LOG: cniLogFile, ...opts.env };
  const prefix = () => ['nsenter', `--net=${nsFile(opts.hostNetns)}`, `--mount=${etc!.mntNs}`, `--uts=${etc!.utsNs}`, '--'];
  const ctr = (args: string[], o: { allowFailure?: boolean; timeoutMs?: number } = {}) => {
    const [cmd, ...rest] = [...prefix(), 'ctr', '-a', socket, '-n', namespace, ...args];
    return run(cmd, rest, { env, allowFailure: o.allowFailure, timeoutMs: o.timeoutMs ?? 60_000 });
  };

  const stop = async () => {
    const errors: unknown[] = [];
    const step = async (f: () => unknown) => { try { await f(); } catch (e) { errors.push(e); } };
    if (etc && daemon && daemon.exitCode === null) {
      for (const id of foreground.keys()) await step(() => ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFailure: true }));
      for (const [, f] of foreground) {
        await step(async () => {
          if (!(await Promise.race([f.exited.then(() => true), sleep(20_000).then(() => false)]))) f.child.kill('SIGKILL');
        });
      }
      await step(async () => {
        for (const id of (await ctr(['tasks', 'ls', '-q'], { allowFailure: true })).split('\n').filter(Boolean))
          await ctr(['task', 'delete', '-f', id], { allowFailure: true });
        for (const id of (await ctr(['containers', 'ls', '-q'], { allowFailure: true })).split('\n').filter(Boolean))
          await ctr(['containers', 'rm', id], { allowFailure: true });
      });
    }
    for (const [, f] of foreground) if (f.child.exitCode === null && f.child.signalCode === null) f.child.kill('SIGKILL');
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      await step(async () => {
        daemon!.kill('SIGTERM');
        if (!(await Promise.race([daemonExit!.then(() => true), sleep(10_000).then(() => false)]))) {
          daemon!.kill('SIGKILL');
          await daemonExit;
        }
      });
    }
    await step(async () => { for (const p of procsMentioning(`${dir}/`)) await killAndWait(p); });
    await step(() => removeCgroups(namespace));
    if (etc) await step(() => etc!.stop());
    await step(() => rmSync(dir, { recursive: true, force: true }));
    if (errors.length) throw new AggregateError(errors, `containerd fixture cleanup: ${errors.map((e) => (e as Error).message).join('; ')}`);
  };

  try {
    etc = await startPrivateEtc();
    await etc.run(['mount', '--bind', optDir, '/opt']);
    await etc.run(['mkdir', '-p', '/etc/cni/net.d']);
    await etc.run(['cp', conflist, '/etc/cni/net.d/10-pipework.conflist']);
    const rootfs = join(dir, 'rootfs');
    await busyboxRootfsTar(rootfs, join(dir, 'rootfs.tar'));
    rmSync(join(dir, 'rootfs.tar'));

    const fd = openSync(join(dir, 'containerd.log'), 'a');
    try {
      // TMPDIR in our dir: containerd writes its goroutine dumps, containerd.<pid>.stacks.log, there.
      daemon = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'nsenter', `--mount=${etc.mntNs}`, `--uts=${etc.utsNs}`, '--', 'containerd', '--config', config],
        { stdio: ['ignore', fd, fd], env: { ...process.env, TMPDIR: tmp } });
    } finally {
      closeSync(fd);
    }
    daemonExit = new Promise((r) => daemon!.once('exit', () => r()));
    await waitFor(async () => {
      if (daemon!.exitCode !== null || daemon!.signalCode !== null)
        throw new Error(`containerd exited early:\n${readFileSync(join(dir, 'containerd.log'), 'utf8').split('\n').slice(-20).join('\n')}`);
      return (await ctr(['version'], { allowFailure: true, timeoutMs: 5000 })).includes('Server:');
    }, 30_000, 'containerd to answer', 100);

    let n = 0;
    const runContainer = (id: string, argv: string[]) => {
      const root = join(dir, `rootfs-${id}-${n++}`);
      cpSync(rootfs, root, { recursive: true, verbatimSymlinks: true });
      const [cmd, ...rest] = [...prefix(), 'ctr', '-a', socket, '-n', namespace, 'run', '--rm', '--cni', '--rootfs', root, id, ...argv];
      const child = spawn(cmd, rest, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => { output += d; });
      child.stderr.setEncoding('utf8').on('data', (d: string) => { output += d; });
      const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
      foreground.set(id, { child, exited });
      return { child, exited, output: () => output };
    };
    const cniLog = (): CniLogLine[] => {
      try {
        return readFileSync(cniLogFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as CniLogLine);
      } catch {
        return [];
      }
    };
    return { dir, namespace, pid: daemon.pid!, ctr, runContainer, cniLog, ipamDir, startupMs: Math.round(performance.now() - t0), stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

/** Two pings from inside the running task `from` (busybox by path: an image-less rootfs has no PATH); busybox's output. */
export function pingFrom(c: Containerd, from: string, to: string): Promise<string> {
  return c.ctr(['task', 'exec', '--exec-id', `ping-${from}`, from, '/bin/busybox', 'ping', '-c', '2', '-W', '2', to]);
}
