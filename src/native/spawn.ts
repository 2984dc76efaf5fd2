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
  /** [source, target]: source is bind-mounted over target in the child's private mount namespace. Requires privateMounts. */
  bindMounts?: Array<[source: string, target: string]>;
  /** Where the child's stdout goes (e.g. from fs.openSync); default /dev/null. stdin is always /dev/null. */
  stdoutFd?: number;
  /** Where the child's stderr goes; default /dev/null. */
  stderrFd?: number;
  /** The child's whole environment; default: inherit this process's. */
  env?: Record<string, string>;
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
  spawnIsolated(opts: {
    file: string;
    args: string[];
    netnsFd?: number;
    privateMounts?: boolean;
    bindMounts?: Array<[string, string]>;
    stdoutFd?: number;
    stderrFd?: number;
    env?: string[];
  }): IsolatedChild;
}

const addon = native as unknown as SpawnNative;

/**
 * Starts a program inside a network namespace and/or a private mount
 * namespace (native/spawn.cc). Throws a SyscallError synchronously if any
 * step in the child fails before the program runs: `syscall` is 'setns',
 * 'unshare', 'mount', 'dup2' or 'execvp' (e.g. code ENOENT: no such program).
 */
export function spawnIsolated(opts: SpawnIsolatedOptions): IsolatedChild {
  if (opts.bindMounts?.length && !opts.privateMounts) {
    // Bind mounts outside a private mount namespace would land on the host.
    throw new TypeError('bindMounts requires privateMounts: true');
  }
  return addon.spawnIsolated({
    file: opts.file,
    args: opts.args,
    netnsFd: opts.netnsFd,
    privateMounts: opts.privateMounts,
    bindMounts: opts.bindMounts,
    stdoutFd: opts.stdoutFd,
    stderrFd: opts.stderrFd,
    env: opts.env && Object.entries(opts.env).map(([k, v]) => `${k}=${v}`),
  });
}
