import { native } from './index';

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

interface SpawnNative {
  /** The same options, env as `NAME=value` strings. */
  spawnIsolated(opts: Omit<SpawnIsolatedOptions, 'env'> & { env?: string[] }): IsolatedChild;
  openInRoot(root: string, path: string, flags: number, mode?: number): number;
}

const addon = native as unknown as SpawnNative;

/**
 * Starts a program inside a network namespace and/or a private mount
 * namespace (native/spawn.cc). Throws a SyscallError synchronously if any
 * step in the child fails before the program runs: `syscall` is 'setsid',
 * 'setns', 'unshare', 'sethostname', 'mount', 'dup2' or 'execvp' (e.g. code
 * ENOENT: no such program).
 */
export function spawnIsolated(opts: SpawnIsolatedOptions): IsolatedChild {
  if (opts.bindMounts?.length && !opts.privateMounts) {
    // Bind mounts outside a private mount namespace would land on the host.
    throw new TypeError('bindMounts requires privateMounts: true');
  }
  if (opts.overlays?.length && !opts.privateMounts) throw new TypeError('overlays requires privateMounts: true');
  // Outside a private UTS namespace this would rename the host.
  if (opts.hostname !== undefined && !opts.privateUts) throw new TypeError('hostname requires privateUts: true');
  return addon.spawnIsolated({ ...opts, env: opts.env && Object.entries(opts.env).map(([k, v]) => `${k}=${v}`) });
}

/**
 * Opens `path` as if `root` were "/" (openat2 with RESOLVE_IN_ROOT and no
 * magic links): absolute symlinks and ".." inside a container's tree
 * (`/proc/<pid>/root`) stay inside it and can never reach the host's files.
 * `flags` are fs.constants O_* flags; returns an fd the caller closes.
 */
export function openInRoot(root: string, path: string, flags: number, mode = 0o644): number {
  return addon.openInRoot(root, path, flags, mode);
}
