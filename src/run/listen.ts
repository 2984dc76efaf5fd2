/**
 * A server on a unix socket path, for the long-lived front ends (the daemon,
 * the Docker plugin): a stale socket left by a killed predecessor is
 * replaced; a live one, or any file that is not a socket, is left alone and
 * refused with a message naming it.
 */
import type { Server } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { PipeworkError } from '../errors';

/** Can something be reached on this unix socket? */
function answering(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Listens on path (its directory made if missing, mode 0755). With mode,
 * the socket is made with that mode from the start (umask around bind), so
 * no peer can connect in between.
 */
export async function listenUnix(server: Server, path: string, opts: { mode?: number; what?: string } = {}): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try { st = lstatSync(path); } catch { /* absent */ }
  if (st) {
    if (!st.isSocket()) throw new PipeworkError(`${path} exists and is not a socket (left as it is)`);
    if (await answering(path)) throw new PipeworkError(`something already answers on ${path} (${opts.what ?? 'another instance'}?)`);
    if (process.getuid && st.uid !== process.getuid()) throw new PipeworkError(`${path} is a stale socket of another user (uid ${st.uid}); left as it is`);
    rmSync(path, { force: true });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const umask = opts.mode === undefined ? undefined : process.umask(0o777 & ~opts.mode);
    try {
      server.listen(path, () => { server.off('error', reject); resolve(); });
    } finally {
      if (umask !== undefined) process.umask(umask);
    }
  });
  if (opts.mode !== undefined) chmodSync(path, opts.mode);
}
