import { type IsolatedChild, type SpawnIsolatedOptions, native } from './index';

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
  return native.spawnIsolated({ ...opts, env: opts.env && Object.entries(opts.env).map(([k, v]) => `${k}=${v}`) });
}
