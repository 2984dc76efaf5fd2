// The guest's resolv.conf: the lease's nameservers, written into (or read
// from) a container's own root without following its symlinks out of it.
import { closeSync, constants, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PipeworkError } from '../errors';
import { native } from '../native';

/** The nameservers a resolv.conf text names, in its order. */
export function nameservers(resolvConf: string): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]);
  }
  return out;
}

/**
 * Writes a file inside a container's root without following its symlinks out
 * of it. Docker bind-mounts its resolv.conf there: O_TRUNC writes through to
 * that file, as wanted (a rename would fail on the mount point).
 */
export function writeInRoot(rootfs: string, path: string, content: string): void {
  let fd: number;
  try {
    // A symlink is followed, but only inside rootfs (RESOLVE_IN_ROOT).
    fd = native.openInRoot(rootfs, path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
  } catch (e) {
    throw new PipeworkError(`Cannot write the lease's DNS servers to ${join(rootfs, path)}: ${(e as Error).message}`);
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

export function readInRoot(rootfs: string, path: string): string | undefined {
  try {
    const fd = native.openInRoot(rootfs, path, constants.O_RDONLY);
    try {
      return readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}
