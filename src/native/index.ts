import path from 'node:path';
import nodeGypBuild from 'node-gyp-build';

/** The native addon (native/pipework.cc): only what Node itself cannot do. */
export interface PipeworkNative {
  /** Runs fn with the calling thread inside netns fd; always returns home, even if fn throws. */
  withNetns<T>(netnsFd: number, fn: () => T): T;
  /** The inode naming netns fd; throws unless fd is an open network namespace (EBADF; EINVAL or ENOTTY for another kind of file). */
  netnsInode(fd: number): number;
  /** A new anonymous network namespace, held only by the returned fd. */
  newNetns(): number;
  /** Opens a netns file (/run/netns/NAME, /proc/PID/ns/net); rejects files that are not a netns. */
  openNetnsPath(path: string): number;
  /** Opens a process's netns through a pidfd, so an exiting or reused PID cannot redirect it. */
  openNetnsPid(pid: number): number;
  /** The C library's text for an errno ("File exists"). */
  strerror(errno: number): string;
  /** flock(fd, LOCK_EX | LOCK_NB) when lock (false: another holder has it), flock(fd, LOCK_UN) otherwise. */
  tryLock(fd: number, lock: boolean): boolean;
  /** The regular files of dir with their first maxBytes bytes as text: [name, text, ...], text null for a longer file. */
  readSmallFiles(dir: string, maxBytes: number): (string | null)[];
  /** An rtnetlink socket made in netns netnsFd (in ours without it), with extended/capped ACKs and strict checks. */
  openNetlinkSocket(netnsFd?: number): number;
  /**
   * On the addon's netlink thread, in the order asked: sends bytes (netlink
   * messages) to the kernel in one sendmsg on netlink socket fd and reads
   * every datagram it queued in answer (32 KiB at most each): they come back
   * end to end, each padded to 4 bytes. bytes is copied before this returns.
   */
  netlinkTransact(fd: number, bytes: Uint8Array): Promise<Uint8Array>;
  /**
   * ETHTOOL_GLINK on link ifname of the netns of socket fd, on the netlink
   * thread after the transactions asked before it: whether it has carrier.
   * The kernel applies the link's pending carrier change (linkwatch) first.
   */
  linkCarrier(fd: number, ifname: string): Promise<boolean>;
  /** Who is at the other end of connected unix socket fd (SO_PEERCRED, as of its connect). */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
}

/** Thrown by the addon: a failed system call. */
export interface SyscallError extends Error {
  errno: number;
  code: string;
  syscall: string;
}

export const native: PipeworkNative = nodeGypBuild(path.join(__dirname, '..', '..'));
