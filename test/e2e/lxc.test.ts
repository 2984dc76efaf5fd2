// LXC containers found by name on every cgroup layout LXC 3, 4 and 5 make,
// with a real lxc-start: cgroup v1 only (each controller a hierarchy of its
// own, no unified one) and cgroup v2 only. Each case runs in a mount
// namespace of its own (a child of the test run's private one) where
// /sys/fs/cgroup is mounted the way the case needs; LXC 5 makes the older
// versions' directory names when told to (lxc.cgroup.dir.container). The
// pipework command runs in that mount namespace and a throwaway host netns.
// Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/lxc.test.ts
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tmpDir, waitFor } from '../support/daemons/helpers';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/lxc.test.ts changes mount and network namespaces: only inside scripts/in-netns.js');
}

const BIN = resolve(__dirname, '../../bin/pipework.js');
const HOST = 'pwlxh';
const NAME = 'pwlx1';
const HAS_LXC = spawnSync('sh', ['-c', 'command -v lxc-start'], { stdio: 'ignore' }).status === 0;

/**
 * Run by `unshare --mount`: mounts /sys/fs/cgroup as $1 says (v1: a tmpfs
 * with one v1 hierarchy per controller this process has, or a named one if
 * the kernel gives them all to v2; v1-named: a named v1 hierarchy alone, no
 * `devices` one; v2: the unified hierarchy alone), starts
 * container $3 in lxcpath $2 (cgroup dir $4 if given), prints `PID <init>`;
 * a line on stdin stops the container (then `STOPPED`), the end of stdin
 * destroys it and ends the sandbox.
 */
const SCRIPT = String.raw`
set -eu
mode=$1 P=$2 N=$3 dir=$4
umount -R /sys/fs/cgroup 2>/dev/null || true
if [ "$mode" = v2 ]; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
  mount -t tmpfs -o mode=755 cgroup-root /sys/fs/cgroup
  ctrls=$(awk -F: '$1 != 0 && $2 != "" { print $2 }' /proc/self/cgroup)
  [ "$mode" = v1 ] || ctrls=name=pipework
  for c in \${ctrls:-name=pipework}; do
    d=/sys/fs/cgroup/\${c#name=}
    mkdir -p "$d"
    case $c in name=*) o=none,$c ;; *) o=$c ;; esac
    mount -t cgroup -o "$o" cgroup "$d"
  done
fi
{
  echo 'lxc.net.0.type = empty'
  echo 'lxc.apparmor.profile = unconfined'
  echo 'lxc.console.path = none'
  if [ -n "$dir" ]; then
    echo "lxc.cgroup.dir.container = $dir"
    echo "lxc.cgroup.dir.monitor = lxc.monitor/$N"
  fi
} > "$P/c.conf"
trap 'lxc-stop -P "$P" -n "$N" -k >/dev/null 2>&1 || true; lxc-destroy -P "$P" -n "$N" >/dev/null 2>&1 || true' EXIT
lxc-create -P "$P" -n "$N" -t busybox -f "$P/c.conf" >"$P/create.log" 2>&1
lxc-start -d -P "$P" -n "$N" -o "$P/lxc.log" -l INFO
for i in $(seq 200); do
  [ "$(lxc-info -P "$P" -n "$N" -s -H 2>/dev/null)" = RUNNING ] && break
  sleep 0.05
done
echo "PID $(lxc-info -P "$P" -n "$N" -p -H)"
read -r _ || true
lxc-stop -P "$P" -n "$N" -k >/dev/null 2>&1 || true
echo STOPPED
cat >/dev/null
`.replace(/\\\$/g, '$');

interface Case { sandbox: ChildProcess; pid: number; dir: string; out(): string }
const running: Case[] = [];

/** A container on cgroup layout `mode` (cgroup dir `dir` if given): its init PID, and the sandbox's mount namespace. */
async function startCase(mode: Mode, dir = ''): Promise<Case> {
  const lxcpath = tmpDir('lxc');
  const sandbox = spawn('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', SCRIPT, 'lxc-layout', mode, lxcpath, NAME, dir],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const c: Case = { sandbox, pid: 0, dir: lxcpath, out: () => out };
  running.push(c);
  let err = '';
  sandbox.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  sandbox.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  await waitFor(() => {
    if (sandbox.exitCode !== null) {
      let log = '';
      try { log = readFileSync(`${lxcpath}/lxc.log`, 'utf8'); } catch { /* none yet */ }
      throw new Error(`the LXC sandbox exited (${sandbox.exitCode}): ${err}\n${log.split('\n').slice(-15).join('\n')}`);
    }
    const m = /^PID (\d+)$/m.exec(out);
    if (m) c.pid = Number(m[1]);
    return c.pid > 0;
  }, 90_000, `LXC container ${NAME} (${mode} ${dir})`, 50);
  return c;
}

async function stopCase(c: Case): Promise<void> {
  if (c.sandbox.exitCode === null) {
    const exited = new Promise((r) => c.sandbox.once('exit', r));
    c.sandbox.stdin!.end();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (c.sandbox.exitCode === null) c.sandbox.kill('SIGKILL');
  }
  rmSync(c.dir, { recursive: true, force: true });
}

afterEach(async () => {
  for (const c of running.splice(0)) await stopCase(c);
  spawnSync('ip', ['netns', 'del', HOST], { stdio: 'ignore' });
}, 60_000);

/** `pipework ARGS` in the sandbox's mount namespace (its cgroup mounts) and the host netns. */
function cli(c: Case, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nsenter', [`--mount=/proc/${c.sandbox.pid}/ns/mnt`, `--net=/run/netns/${HOST}`, '--', process.execPath, BIN, ...args],
    { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ipj(netns: string, ...args: string[]): any[] {
  return JSON.parse(execFileSync('nsenter', [`--net=${netns}`, '--', 'ip', '-j', ...args], { encoding: 'utf8' }) || '[]');
}

/** The container's cgroup paths by hierarchy ("0" for v2, the controllers otherwise). */
function cgroupsOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter(Boolean)) {
    const [id, ctrls, path] = line.split(':');
    out[id === '0' ? '0' : ctrls] = path;
  }
  return out;
}

type Mode = 'v1' | 'v1-named' | 'v2';
const CASES: { mode: Mode; dir?: string; path: string; lxc: string }[] = [
  { mode: 'v1', path: `/lxc.payload.${NAME}`, lxc: 'LXC 4 and 5' },
  { mode: 'v1', dir: `lxc.payload/${NAME}`, path: `/lxc.payload/${NAME}`, lxc: 'LXC 3.1 and 3.2' },
  { mode: 'v1', dir: `lxc/${NAME}`, path: `/lxc/${NAME}`, lxc: 'LXC up to 3.0' },
  { mode: 'v1-named', path: `/lxc.payload.${NAME}`, lxc: 'LXC 4 and 5' },
  { mode: 'v2', path: `/lxc.payload.${NAME}`, lxc: 'LXC 4 and 5' },
  { mode: 'v2', dir: `lxc.payload/${NAME}`, path: `/lxc.payload/${NAME}`, lxc: 'LXC 3.1 and 3.2' },
  { mode: 'v2', dir: `lxc/${NAME}`, path: `/lxc/${NAME}`, lxc: 'LXC up to 3.0' },
];

describe.skipIf(!HAS_LXC)('LXC containers by name, every cgroup layout', { timeout: 120_000 }, () => {
  for (const { mode, dir, path, lxc } of CASES) {
    it(`cgroup ${mode} only, ${path.slice(1)} (${lxc}): found, plumbed, unplugged`, async () => {
      execFileSync('ip', ['netns', 'add', HOST]);
      const c = await startCase(mode, dir);
      // The layout is the one this case is about: the container's cgroups, in the kind of hierarchy asked for.
      const cg = cgroupsOf(c.pid);
      if (mode === 'v2') expect(cg['0']).toBe(path);
      else if (mode === 'v1-named') expect(cg['name=pipework']).toBe(path);
      else {
        const v1 = Object.entries(cg).filter(([k]) => k !== '0');
        expect(v1.length).toBeGreaterThan(0);
        for (const [, p] of v1) expect(p).toBe(path);
      }
      if (mode !== 'v2') {
        expect(spawnSync('nsenter', [`--mount=/proc/${c.sandbox.pid}/ns/mnt`, '--', 'grep', '-c', 'cgroup2', '/proc/self/mounts']).stdout.toString().trim()).toBe('0');
      }

      const r = cli(c, ['br0', NAME, '10.130.0.2/24']);
      expect(r, r.stderr).toMatchObject({ code: 0, stderr: '' });
      const eth1 = ipj(`/proc/${c.pid}/ns/net`, '-4', 'addr', 'show', 'dev', 'eth1')[0];
      expect(eth1.addr_info).toEqual([expect.objectContaining({ local: '10.130.0.2', prefixlen: 24 })]);
      expect(ipj(`/run/netns/${HOST}`, 'link', 'show', `veth1pl${c.pid}`)[0]).toMatchObject({ master: 'br0' });

      expect(cli(c, ['unplug', NAME])).toMatchObject({ code: 0, stderr: '' });
      expect(ipj(`/proc/${c.pid}/ns/net`, 'link', 'show').map((l) => l.ifname)).toEqual(['lo']);

      // Once the container is stopped (its cgroups gone), its name is no longer found.
      c.sandbox.stdin!.write('stop\n');
      await waitFor(() => c.out().includes('STOPPED'), 30_000, 'lxc-stop', 50);
      const gone = cli(c, ['br0', NAME, '10.130.0.2/24']);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(new RegExp(`^Container ${NAME} not found`));
    });
  }
});
