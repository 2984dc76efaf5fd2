// The processes a DHCP client leaves: found by /proc, and only ever
// signalled after checking they are the one we mean (PID, start time, name,
// netns), so a PID reused meanwhile is never hit.
import { existsSync, readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface Proc {
  pid: number;
  startTime: string;
  comm: string;
}

export function procStat(pid: number): { state: string; startTime: string; comm: string } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], startTime: rest[19], comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')) };
  } catch {
    return undefined;
  }
}

/** The live process pid, if it is named comm and (if given) in the netns with inode netnsIno. */
export function identify(pid: number, comm?: string, netnsIno?: number): Proc | undefined {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return undefined;
  if (comm !== undefined && st.comm !== comm) return undefined;
  if (netnsIno !== undefined) {
    try {
      if (statSync(`/proc/${pid}/ns/net`).ino !== netnsIno) return undefined;
    } catch {
      return undefined;
    }
  }
  return { pid, startTime: st.startTime, comm: st.comm };
}

export const alive = (p: Proc) => {
  const st = procStat(p.pid);
  return st !== undefined && st.startTime === p.startTime && st.state !== 'Z' && st.state !== 'X';
};

function signal(p: Proc, sig: NodeJS.Signals): void {
  if (!alive(p)) return;
  try {
    process.kill(p.pid, sig);
  } catch {
    // gone meanwhile
  }
}

/** TERM, up to 3 s, then KILL; resolves once it is gone. */
export async function terminate(p: Proc, graceMs = 3000): Promise<void> {
  signal(p, 'SIGTERM');
  const until = Date.now() + graceMs;
  while (alive(p) && Date.now() < until) await sleep(10);
  if (!alive(p)) return;
  signal(p, 'SIGKILL');
  const hard = Date.now() + 3000;
  while (alive(p) && Date.now() < hard) await sleep(10);
}

/** Our own child (watched by pidfd, so its PID is ours until `exited` settles): TERM, then KILL. */
export async function killTree(child: { pid: number }, gone: () => boolean, exited: Promise<void>): Promise<void> {
  if (gone()) return;
  try { process.kill(child.pid, 'SIGTERM'); } catch { /* exited meanwhile */ }
  await within(exited, 2000);
  if (gone()) return;
  try { process.kill(child.pid, 'SIGKILL'); } catch { /* exited meanwhile */ }
  await within(exited, 3000);
}

/** Waits for p, at most ms; the timer does not outlive the wait (it would hold the event loop). */
export async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => { timer = setTimeout(r, Math.max(0, ms)); })]);
  } finally {
    clearTimeout(timer);
  }
}

export function nsInode(pid: number, kind: string): number | undefined {
  try {
    return statSync(`/proc/${pid}/ns/${kind}`).ino;
  } catch {
    return undefined;
  }
}

/**
 * Live processes in the UTS namespace with inode ino. Only used for the
 * namespaces we create for a client (never the host's: checked), so all of
 * them are the client's own.
 */
export function procsInUts(ino: number): Proc[] {
  if (ino === nsInode(process.pid, 'uts')) return [];
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (nsInode(pid, 'uts') !== ino) continue;
    const p = identify(pid);
    if (p) out.push(p);
  }
  return out;
}

/** Direct children of pid (a client's running script). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function readPidfile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function firstPidfile(dir: string): string | undefined {
  try {
    const f = readdirSync(dir).filter((n) => n.endsWith('.pid')).sort()[0];
    return f && join(dir, f);
  } catch {
    return undefined;
  }
}

/** Removes a pidfile naming one of pids, or a process no longer running; never someone else's live one. */
export function removePidfile(path: string, pids: Array<number | undefined>): void {
  const pid = readPidfile(path);
  if (pid === undefined && !existsSync(path)) return;
  if (pid !== undefined && !pids.includes(pid) && procStat(pid) && procStat(pid)!.state !== 'Z') return;
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

export function describeExit(e: { code: number | null; signal: string | null }): string {
  return e.signal ? `killed by ${e.signal}` : `exit ${e.code}`;
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
