import path from 'node:path';
import nodeGypBuild from 'node-gyp-build';

/**
 * The native addon (native/*.cc), declared once: every function it exports,
 * as it takes and returns them. Only what Node itself cannot do.
 */
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
   * alone: on a thread of its own instead, holding up no other transaction
   * while the kernel keeps it waiting (a link deletion's RCU barrier).
   */
  netlinkTransact(fd: number, bytes: Uint8Array, alone?: boolean): Promise<Uint8Array>;
  /**
   * ETHTOOL_GLINK on link ifname of the netns of socket fd, on the netlink
   * thread after the transactions asked before it: whether it has carrier.
   * The kernel applies the link's pending carrier change (linkwatch) first.
   */
  linkCarrier(fd: number, ifname: string): Promise<boolean>;
  /** Who is at the other end of connected unix socket fd (SO_PEERCRED, as of its connect). */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /** Starts a program in private namespaces (native/spawn.cc); spawnIsolated() in ./spawn checks the options first. */
  spawnIsolated(opts: Omit<SpawnIsolatedOptions, 'env'> & { env?: string[] }): IsolatedChild;
  /**
   * Opens `path` as if `root` were "/" (openat2 with RESOLVE_IN_ROOT and no
   * magic links): absolute symlinks and ".." inside a container's tree
   * (`/proc/<pid>/root`) stay inside it and can never reach the host's files.
   * `flags` are fs.constants O_* flags, `mode` (default 0o644) applies when
   * one creates the file; returns an fd the caller closes.
   */
  openInRoot(root: string, path: string, flags: number, mode?: number): number;
}

/** What spawnIsolated starts, and where. */
export interface SpawnIsolatedOptions {
  /** Absolute path, or a name looked up on PATH (env.PATH if env is given, as child_process does). */
  file: string;
  /** argv[1..]; argv[0] is file. */
  args: string[];
  /** The child enters this network namespace (setns) before exec; the caller's namespace is untouched. */
  netnsFd?: number;
  /** The child gets a new mount namespace with all propagation made private, so its mounts stay its own. */
  privateMounts?: boolean;
  /**
   * Overlays mounted over `target` in the child's private mount namespace
   * (before bindMounts): reads see `lower` (default: target itself), every
   * write, rename or delete lands in `upper` (`work`: an empty dir on the same
   * filesystem as upper). Unlike a file bind mount, renames onto files inside
   * work. Requires privateMounts. Paths must be absolute, without ',' ':' '\\'.
   */
  overlays?: OverlayMount[];
  /** [source, target]: source is bind-mounted over target in the child's private mount namespace. Requires privateMounts. */
  bindMounts?: Array<[source: string, target: string]>;
  /** The child gets a new UTS namespace: a `hostname` it sets is its own. */
  privateUts?: boolean;
  /** The hostname inside the private UTS namespace (1-64 bytes). Requires privateUts. */
  hostname?: string;
  /** setsid() in the child: no controlling terminal, out of our process group. */
  newSession?: boolean;
  /** Do not keep the event loop alive while the child runs (for a child meant to outlive us). */
  unref?: boolean;
  /** Where the child's stdout goes (e.g. from fs.openSync); default /dev/null. stdin is always /dev/null. */
  stdoutFd?: number;
  /** Where the child's stderr goes; default /dev/null. */
  stderrFd?: number;
  /** The child's whole environment; default: inherit this process's. */
  env?: Record<string, string>;
}

export interface OverlayMount {
  target: string;
  upper: string;
  work: string;
  lower?: string;
}

/** How the child ended: exactly one of code and signal is non-null. */
export interface SpawnIsolatedExit {
  code: number | null;
  signal: string | null;
}

/** A started child. Kill it with process.kill(pid) until `exited` settles; it is always reaped. */
export interface IsolatedChild {
  pid: number;
  exited: Promise<SpawnIsolatedExit>;
}

/** Thrown by the addon: a failed system call. */
export interface SyscallError extends Error {
  errno: number;
  code: string;
  syscall: string;
}

export const native: PipeworkNative = nodeGypBuild(path.join(__dirname, '..', '..'));
