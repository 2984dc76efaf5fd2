// The cgroup hierarchies dockerd and LXC need, mounted under /sys/fs/cgroup.
import { mkdirSync, readFileSync, rmdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { assertPrivateNamespaces, run } from './helpers';

interface CgroupMount { mountpoint: string; fstype: string }

const CGROUP_SUPER_MAGIC = 0x27e0eb;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * cgroup hierarchies mounted under /sys/fs/cgroup that are really visible:
 * mountinfo still lists mounts that a later mount on /sys hides, so each
 * mount point is confirmed with statfs.
 */
export function cgroupMounts(): CgroupMount[] {
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
export function removeCgroupDirs(rel: string): void {
  for (const { mountpoint } of cgroupMounts()) {
    const dir = join(mountpoint, rel);
    try { rmdirSync(dir); } catch { /* absent, or still in use by someone else */ }
  }
}
