import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { PipeworkError } from '../errors';

/** Mount points of every cgroup hierarchy: each v1 one (a controller, or named) and the v2 one. */
function cgroupRoots(): string[] {
  const roots: string[] = [];
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, mnt, type] = line.split(' ');
    if ((type === 'cgroup' || type === 'cgroup2') && !roots.includes(mnt)) roots.push(mnt);
  }
  return roots;
}

/**
 * The cgroup of container `name` as each LXC version names it, relative to
 * the cgroup LXC was started in: `lxc.payload.<name>` (LXC 4, 5),
 * `lxc.payload/<name>` (LXC 3.1, 3.2), `lxc/<name>` (up to LXC 3.0). The
 * monitor's twins (`lxc.monitor.<name>`, `lxc.monitor/<name>`) never match.
 */
const layouts = (name: string) => [`lxc.payload.${name}`, `lxc.payload/${name}`, `lxc/${name}`];

/** Directories below root (root included) where one of the layouts is, searched depth-limited: cgroup trees can be large. */
function findLayouts(root: string, name: string, depth = 3): string[] {
  const found = layouts(name).map((l) => path.join(root, l)).filter(isCgroup);
  if (found.length || depth === 0) return found;
  for (const sub of subdirs(root)) if (!path.basename(sub).startsWith('lxc.monitor')) found.push(...findLayouts(sub, name, depth - 1));
  return found;
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
  } catch {
    return [];
  }
}

/** A cgroup directory (one that lists its processes). */
function isCgroup(p: string): boolean {
  try {
    return readdirSync(p).includes('cgroup.procs');
  } catch {
    return false;
  }
}

function pidsOf(dir: string): number[] {
  try {
    return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Alive (not a zombie) and, from its NSpid line, whether it is PID 1 of a PID namespace of its own. */
function processState(pid: number): { alive: boolean; init: boolean } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const state = /^State:\s+(\S)/m.exec(status)?.[1];
    const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/) ?? [];
    return { alive: state !== 'Z' && state !== 'X', init: nspid.length > 1 && nspid[nspid.length - 1] === '1' };
  } catch {
    return { alive: false, init: false };
  }
}

/**
 * The container's init in its cgroup dir or the ones below it (a systemd
 * container moves init to `init.scope`): the live process that is PID 1 of
 * its own PID namespace, else (a container sharing our PID namespace) the
 * first live process listed.
 */
function initOf(dir: string, depth = 2): number | undefined {
  const live = pidsOf(dir).filter((pid) => processState(pid).alive);
  const init = live.find((pid) => processState(pid).init);
  if (init) return init;
  if (depth > 0) {
    for (const sub of subdirs(dir)) {
      const below = initOf(sub, depth - 1);
      if (below) return below;
    }
  }
  return live[0];
}

/**
 * The PID of a running LXC container by name, found in every cgroup
 * hierarchy mounted (v1: each controller's; v2: the unified one) under the
 * names LXC 3, 4 and 5 give it, and checked to be alive. The first hierarchy
 * that holds it answers (a container shows in each); two live inits there are
 * two containers of that name (several lxcpaths): refused as ambiguous.
 */
export function lxcPid(name: string): number | undefined {
  if (!name || name.includes('/') || name === '.' || name === '..') return undefined;
  for (const root of cgroupRoots()) {
    const pids = new Set<number>();
    for (const dir of findLayouts(root, name)) {
      const pid = initOf(dir);
      if (pid) pids.add(pid);
    }
    if (pids.size > 1) throw new PipeworkError(`Found more than one container matching ${name}.`);
    if (pids.size === 1) return pids.values().next().value;
  }
  return undefined;
}
