import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { PipeworkError } from '../errors';

/** Where cgroup hierarchies are mounted: the v1 `devices` one and the v2 one. */
function cgroupMounts(): { v1Devices?: string; v2?: string } {
  const out: { v1Devices?: string; v2?: string } = {};
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, mnt, type, options] = line.split(' ');
    if (type === 'cgroup' && options?.split(',').includes('devices')) out.v1Devices = mnt;
    if (type === 'cgroup2') out.v2 ??= mnt;
  }
  return out;
}

/** Directories named `name` below root (depth-limited: cgroup trees can be large). */
function findDirs(root: string, name: string, depth = 4): string[] {
  const found: string[] = [];
  let entries;
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const p = path.join(root, e.name);
    if (e.name === name) found.push(p);
    if (depth > 0) found.push(...findDirs(p, name, depth - 1));
  }
  return found;
}

function firstPid(dir: string, file: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dir, file), 'utf8').split('\n')[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The PID of an LXC container by name: cgroup v1 (`devices` hierarchy, the
 * original's way; LXC >= 3.1 adds a `lxc.monitor` twin) or cgroup v2
 * (`lxc.payload.<name>`, or `lxc.payload/<name>` on older LXC).
 */
export function lxcPid(name: string): number | undefined {
  if (!name || name.includes('/') || name === '.' || name === '..') return undefined;
  const { v1Devices, v2 } = cgroupMounts();
  if (v2) {
    for (const dir of [`lxc.payload.${name}`, `lxc.payload/${name}`]) {
      const pid = firstPid(path.join(v2, dir), 'cgroup.procs');
      if (pid) return pid;
    }
  }
  if (v1Devices) {
    const matches = findDirs(v1Devices, name);
    const payload = matches.filter((m) => !m.includes('lxc.monitor'));
    if (payload.length > 1) throw new PipeworkError(`Found more than one container matching ${name}.`);
    if (payload.length === 1) return firstPid(payload[0], 'tasks');
  }
  return undefined;
}
