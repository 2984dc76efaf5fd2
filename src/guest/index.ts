import { closeSync } from 'node:fs';
import { PipeworkError } from '../errors';
import { native, type SyscallError } from '../native';

/** Where to plumb: a process, a named netns, a netns file, or an fd already held. */
export type GuestSpec = number | { pid: number } | { netns: string } | { path: string } | { fd: number };

/** A guest's network namespace, held open by fd for as long as we work on it. */
export interface Guest {
  fd: number;
  /** Used in generated names (`veth1pl<tag>`): the PID, else the netns name or inode. */
  tag: string;
  /** A path naming the same netns in printed commands. */
  path: string;
  /** What the user called it, for messages. */
  label: string;
  pid?: number;
  /** Closes the fd if we opened it (not when the caller handed it to us). */
  close(): void;
}

export const NETNS_DIR = '/run/netns';

/** A netns name as `ip netns` accepts it: one path component, nothing that escapes /run/netns. */
export function checkNetnsName(name: string): string {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw new PipeworkError(`Invalid network namespace name: '${name}'`);
  return name;
}

/**
 * A short, stable tag for a netns known only by its inode: namespace inodes
 * are numbered from 0xF0000000, so the offset keeps names short (n337).
 */
function inodeTag(ino: number): string {
  return ino >= 0xf0000000 ? `n${ino - 0xf0000000}` : String(ino);
}

function opened(fd: number, tag: string, path: string, label: string, pid?: number): Guest {
  let open = true;
  return {
    fd, tag, path, label, pid,
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

function explain(e: unknown, label: string): never {
  const err = e as SyscallError;
  if (err.code === 'ESRCH' || err.code === 'ENOENT') throw new PipeworkError(`Container ${label} not found.`);
  if (err.code === 'EACCES' || err.code === 'EPERM')
    throw new PipeworkError(`Not allowed to open the network namespace of ${label} (${err.code}): run as root.`);
  if (err.code === 'EINVAL' || err.code === 'ENOTTY') throw new PipeworkError(`${label} is not a network namespace.`);
  throw e;
}

/** Opens the guest's netns once; from here on it is reached only through the fd. */
export function openGuest(spec: GuestSpec): Guest {
  if (typeof spec === 'number') spec = { pid: spec };
  if ('pid' in spec) {
    const { pid } = spec;
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new PipeworkError(`Invalid PID: ${pid}`);
    try {
      return opened(native.openNetnsPid(pid), String(pid), `/proc/${pid}/ns/net`, String(pid), pid);
    } catch (e) {
      return explain(e, String(pid));
    }
  }
  if ('netns' in spec) {
    const path = `${NETNS_DIR}/${checkNetnsName(spec.netns)}`;
    try {
      return opened(native.openNetnsPath(path), spec.netns, path, spec.netns);
    } catch (e) {
      return explain(e, spec.netns);
    }
  }
  if ('path' in spec) {
    if (!spec.path.startsWith('/')) throw new PipeworkError(`A network namespace path must be absolute: ${spec.path}`);
    try {
      const fd = native.openNetnsPath(spec.path);
      return opened(fd, inodeTag(native.netnsInode(fd)), spec.path, spec.path);
    } catch (e) {
      return explain(e, spec.path);
    }
  }
  const { fd } = spec;
  let ino: number;
  try {
    ino = native.netnsInode(fd);
  } catch (e) {
    if ((e as SyscallError).code === 'EBADF') throw new PipeworkError(`netns fd ${fd} is not open.`);
    if (e instanceof TypeError) throw new PipeworkError(`Invalid netns fd: ${fd}`);
    return explain(e, `fd ${fd}`);
  }
  return { fd, tag: inodeTag(ino), path: `/proc/${process.pid}/fd/${fd}`, label: `netns fd ${fd}`, close() {} };
}
