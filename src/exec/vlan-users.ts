/**
 * The users of a VLAN link pipework made are counted in its alias
 * (`pipework:vlan-users=N`). The count changes only by reading what the link
 * says now and writing it plus or minus one, holding a lock on the link, so
 * that attaches and detaches running at once (a batch, several processes)
 * add up exactly. The lock: in this process a queue per link, between
 * processes a flock on a file per link under /run/pipework/vlan-users/.
 *
 * An attach holds it from counting itself until its macvlan exists (or it
 * is rolled back). Whoever compares the count with the macvlans found on the
 * link (converge, gc) holds it too, so the count never includes an attach
 * in flight, which would look like one killed after counting itself.
 */
import { closeSync, constants as fsc, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { PipeworkError } from '../errors';
import { native } from '../native';
import { getLinkByIndex, parseLink, setLink } from '../netlink/link';
import type { RtnlSocket } from '../netlink/socket';
import { vlanUsers, vlanUsersAlias } from '../plan/steps';

const LOCK_DIR = '/run/pipework/vlan-users';
const LOCK_WAIT_MS = 60_000;

/** In this process: per link, the promise the next taker waits for. */
const queues = new Map<string, Promise<void>>();

export class VlanUsersLock {
  private released = false;

  private constructor(private readonly fd: number, private readonly done: () => void) {}

  /** Waits for the lock on the link of index in the netns of hostFd. */
  static async take(hostFd: number, index: number): Promise<VlanUsersLock> {
    const key = `${native.netnsInode(hostFd)}-${index}`;
    const before = queues.get(key) ?? Promise.resolve();
    let letNextIn!: () => void;
    const mine = new Promise<void>((resolve) => { letNextIn = resolve; });
    const tail = before.then(() => mine);
    queues.set(key, tail);
    const done = () => {
      letNextIn();
      if (queues.get(key) === tail) queues.delete(key);
    };
    await before;
    let fd: number;
    try {
      mkdirSync(LOCK_DIR, { recursive: true, mode: 0o755 });
      fd = openSync(join(LOCK_DIR, key), fsc.O_RDONLY | fsc.O_CREAT, 0o600);
    } catch (e) {
      done();
      throw new PipeworkError(`cannot lock the VLAN user count of link ${index}: ${(e as Error).message}`);
    }
    const t0 = Date.now();
    for (let wait = 1; !native.tryLock(fd, true); wait = Math.min(wait * 2, 16)) {
      if (Date.now() - t0 > LOCK_WAIT_MS) {
        closeSync(fd);
        done();
        throw new PipeworkError(`the VLAN user count of link ${index} stayed locked for ${LOCK_WAIT_MS / 1000} s (${join(LOCK_DIR, key)})`);
      }
      await new Promise((r) => setTimeout(r, wait));
    }
    return new VlanUsersLock(fd, done);
  }

  get held(): boolean {
    return !this.released;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    closeSync(this.fd); // drops the flock
    this.done();
  }
}

/** The count the link has now (undefined: not a link whose users pipework counts). */
export async function readVlanUsers(host: RtnlSocket, index: number): Promise<number | undefined> {
  return vlanUsers(parseLink((await host.request(getLinkByIndex(index)))[0]).alias);
}

/** Adds delta to the link's count as it is now (hold the lock); returns the new count. */
export async function changeVlanUsers(host: RtnlSocket, index: number, name: string, delta: number): Promise<number> {
  const users = Math.max(0, ((await readVlanUsers(host, index)) ?? 0) + delta);
  await host.request(setLink(index, { alias: vlanUsersAlias(users) }, name));
  return users;
}

/** Runs fn holding the link's lock: `held` if it is still held (by the caller), else a lock of its own for the while. */
export async function withVlanUsersLock<T>(hostFd: number, index: number, held: VlanUsersLock | undefined, fn: () => Promise<T>): Promise<T> {
  if (held?.held) return fn();
  const lock = await VlanUsersLock.take(hostFd, index);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
