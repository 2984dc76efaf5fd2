// Generic helpers of the daemon fixtures (test/support/daemons/): temp dirs,
// polling, running a command, the private-namespace guard, cleanup steps.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temp dir `/tmp/pw-<prefix>-XXXXXX` (kept short: unix socket paths live in it). */
export function tmpDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `pw-${prefix}-`));
}

/**
 * Polls `predicate` every `intervalMs` until it returns true; throws after
 * `timeoutMs`. A predicate that throws ends the wait with that error (use
 * that to stop waiting for a daemon that already died).
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what = 'condition',
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** Resolve with stdout even if the exit status is not 0. */
  allowFailure?: boolean;
}

/** Runs `cmd args` (no shell); resolves with stdout, rejects with stderr on failure. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`${cmd}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 || opts.allowFailure) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${err.trim() || out.trim()}`));
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

export const nsIno = (path: string): number | undefined => {
  try { return statSync(path).ino; } catch { return undefined; }
};

/**
 * Throws unless we are inside private net AND mount namespaces (the ones
 * scripts/in-netns.js makes): compares ours with PID 1's where readable.
 */
export function assertPrivateNamespaces(): void {
  if (process.env.PIPEWORK_IN_NETNS !== '1') {
    throw new Error('refusing to start helper daemons outside scripts/in-netns.js (PIPEWORK_IN_NETNS is not 1)');
  }
  for (const ns of ['net', 'mnt']) {
    const ours = nsIno(`/proc/self/ns/${ns}`);
    const init = nsIno(`/proc/1/ns/${ns}`);
    if (ours === undefined) throw new Error(`cannot read /proc/self/ns/${ns}`);
    if (init !== undefined && init === ours) {
      throw new Error(`refusing to start helper daemons: this process shares PID 1's ${ns} namespace`);
    }
  }
}

/** Runs every cleanup step, collecting errors instead of stopping at the first one. */
export async function cleanup(steps: Array<() => unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try { await step(); } catch (e) { errors.push(e); }
  }
  if (errors.length) throw new AggregateError(errors, `cleanup failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
}

/** Mount points (from /proc/self/mountinfo) at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => unescape(l.split(' ')[4]))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts anything still mounted inside `dir` (e.g. nsfs binds), then removes it. */
export async function removeDir(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) await run('umount', ['-l', m], { allowFailure: true });
  rmSync(dir, { recursive: true, force: true });
}

/** Milliseconds since `t0` (performance.now()), rounded. */
export const since = (t0: number) => Math.round(performance.now() - t0);
