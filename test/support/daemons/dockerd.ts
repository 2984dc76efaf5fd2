// dockerd with a busybox image, nothing of the machine's.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { busyboxRootfsTar } from './busybox';
import { ensureCgroups, removeCgroupDirs } from './cgroups';
import { assertPrivateNamespaces, cleanup, removeDir, run, since, tmpDir, waitFor } from './helpers';
import { Daemon, procsMentioning, terminate } from './processes';

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
 * socket, TMPDIR and an empty config file all in a temp dir, containers' cgroups under
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
  // TMPDIR in our dir: containerd (which dockerd starts with its own
  // environment) writes its goroutine dumps, containerd.<pid>.stacks.log, there.
  mkdirSync(join(dir, 'tmp'));
  const daemonEnv: NodeJS.ProcessEnv = { ...process.env, TMPDIR: join(dir, 'tmp') };
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
