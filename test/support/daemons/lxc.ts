// An LXC container (busybox template) with a netns of its own.
import { existsSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupMounts, ensureCgroups } from './cgroups';
import { assertPrivateNamespaces, cleanup, removeDir, run, since, sleep, tmpDir, waitFor } from './helpers';
import { Daemon, type Proc, procOf, remember, tail, terminate } from './processes';

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
    remember(init);
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
