import type { AttachRequest } from '../plan/attach';
import type { AttachOptions, AttachResult } from '../exec/attach';
import type { Guest, GuestSpec } from '../guest';
import type { DetachOutcome } from '../exec/detach';
import { readFileSync } from 'node:fs';
import { PipeworkError } from '../errors';
import type { Link } from '../netlink/link';
import { BRIDGE_MAX_PORTS } from '../netlink/kinds/bridge';
import { FirstAlone } from './order';

export { FirstAlone, Sequencer } from './order';

/**
 * What bulk work needs of a Session (src/session): bulk sits below it, so
 * that Session.attachMany and detachMany can be made of what is here.
 */
export interface BulkSession {
  attach(guest: GuestSpec | Guest, request: AttachRequest, opts?: AttachOptions): Promise<AttachResult>;
  /** attach, onto a Linux bridge looked up once for the batch (see bulkAttacher). */
  attachOnto(bridge: Link | undefined, guest: GuestSpec | Guest, request: AttachRequest, opts?: AttachOptions): Promise<AttachResult>;
  /** A Linux bridge and its port count; undefined for anything else. */
  bridge(name: string): Promise<{ link: Link; ports: number } | undefined>;
  detachOrGroup(guest: GuestSpec | Guest, containerInterface: string | undefined, group: number, opts?: { unplug?: boolean }):
    Promise<{ outcome: DetachOutcome; grouped: boolean }>;
  deleteLinkGroup(group: number): Promise<void>;
}

export interface BulkAttachItem {
  guest: GuestSpec | Guest;
  request: AttachRequest;
  /** This item's own attach options, over the run's (e.g. a fault injected into one item, in tests). */
  options?: AttachOptions;
}

export interface BulkDetachItem {
  guest: GuestSpec | Guest;
  containerInterface?: string;
}

export interface BulkOptions {
  /** Items in flight at once (default: defaultConcurrency()). */
  concurrency?: number;
  /** Stop starting new items after the first failure (those in flight finish). */
  stopOnError?: boolean;
  /** Called after each item with the running counts. */
  onProgress?: (done: number, failed: number) => void;
  /**
   * Graceful stop: once aborted, no new item starts; those in flight finish
   * (or, failing, roll back) and the run ends. Items are started in input
   * order, so those not started are the ones from index (number of results)
   * on; an item the input was still producing when the signal came is not
   * started either. To roll back the items in flight instead, abort the
   * attach option `abort` too.
   */
  signal?: AbortSignal;
}

/** Most items in flight by default; each holds a socket in its guest's netns (and a netns fd, for a named guest). */
const MAX_IN_FLIGHT = 1024;

/** The soft limit on open files of this process (Node raises it to the hard limit at start). */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

/**
 * Items in flight by default: up to 1024. The kernel then takes the
 * host-side creations of many containers one after another, ahead of the
 * container sides that bring the links up; measured against 32 at N = 1000:
 * about a third of the time per container (bench/README.md). Fewer where
 * the open-file limit would not hold 3 descriptors per item and 64 to spare.
 */
export const defaultConcurrency = (): number => Math.max(1, Math.min(MAX_IN_FLIGHT, Math.floor((openFileLimit() - 64) / 3)));

/** One item's outcome, in completion order; index is its position in the input. */
export type BulkResult<T> = { index: number; ok: true; result: T } | { index: number; ok: false; error: Error };

/**
 * The promise's value, or undefined once the signal is aborted, whichever
 * comes first. Its listener goes when the promise settles: a long run adds
 * none per item (a Promise.race on one lasting promise would).
 */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return resolve(undefined);
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Runs work for every item with bounded concurrency, streaming: input is
 * pulled only as slots free up and results are yielded as they complete, so
 * memory stays flat whatever the number of items. A failed item is reported
 * (its own undo already ran) and the others go on.
 */
export async function* runBounded<I, T>(
  items: Iterable<I> | AsyncIterable<I>,
  work: (item: I) => Promise<T>,
  opts: BulkOptions = {},
): AsyncGenerator<BulkResult<T>> {
  const limit = Math.max(1, opts.concurrency ?? defaultConcurrency());
  const it = (Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : (items)[Symbol.iterator]());
  // An item holds its slot until its result is taken: memory stays bounded however slowly results are consumed.
  const finished: BulkResult<T>[] = [];
  let wake: (() => void) | undefined;
  let inFlight = 0;
  let next = 0;
  let exhausted = false;
  let stop = false;
  let done = 0;
  let failed = 0;
  const settle = (r: BulkResult<T>) => {
    finished.push(r);
    wake?.();
  };
  const { signal } = opts;
  while (true) {
    while (!exhausted && !stop && !signal?.aborted && inFlight < limit) {
      const pulled = it.next();
      // An input that waits (a queue, a pipe) must not hold up a stop.
      const r = signal && pulled instanceof Promise ? await unlessAborted(pulled, signal) : await pulled;
      if (!r || signal?.aborted) break;
      if (r.done) {
        exhausted = true;
        break;
      }
      const index = next++;
      inFlight++;
      work(r.value).then((result) => settle({ index, ok: true, result }), (error: Error) => settle({ index, ok: false, error }));
    }
    if (!finished.length) {
      if (inFlight === 0) return;
      await new Promise<void>((resume) => (wake = resume));
      wake = undefined;
    }
    const settled = finished.shift()!;
    inFlight--;
    if (settled.ok) done++;
    else {
      failed++;
      if (opts.stopOnError) stop = true;
    }
    opts.onProgress?.(done, failed);
    yield settled;
  }
}

/** One attach of a bulk run; options over the run's. */
export type Attacher = (guest: GuestSpec | Guest, request: AttachRequest, opts?: AttachOptions) => Promise<AttachResult>;

/**
 * Attaches for a bulk run. The first attach to each host interface runs
 * alone (it may create the bridge; others must see it exist rather than race
 * to create it too). After it, a Linux bridge is looked up once: the others
 * skip that lookup (Session.attachOnto), and one that would pass the
 * 1023-port limit is refused up front, with a message saying so, instead of
 * failing in the kernel.
 */
export function bulkAttacher(session: BulkSession, bulkOpts: AttachOptions = {}): Attacher {
  const gate = new FirstAlone();
  // Per host interface, once its first attach succeeded: a Linux bridge and its port count.
  const bridges = new Map<string, { link: Link; ports: number } | undefined>();
  return (guest, request, itemOpts) => gate.run(request.hostInterface, async (first) => {
    const opts = { ...bulkOpts, ...itemOpts };
    const name = request.hostInterface;
    if (first) {
      const result = await session.attach(guest, request, opts);
      // A failed look only costs the shortcut.
      bridges.set(name, await session.bridge(name).catch(() => undefined));
      return result;
    }
    const bridge = bridges.get(name); // none if the first one failed, or it is no Linux bridge
    // Converge: an attachment found in place takes no new port, so the count would not hold; the kernel still says when the bridge is full.
    if (!bridge || opts.converge) return session.attach(guest, request, opts);
    if (bridge.ports >= BRIDGE_MAX_PORTS)
      throw new PipeworkError(`Bridge ${name} is full: Linux bridges hold at most ${BRIDGE_MAX_PORTS} ports; spread the containers over several bridges.`);
    bridge.ports++;
    try {
      return await session.attachOnto(bridge.link, guest, request, opts);
    } catch (e) {
      bridge.ports--;
      throw e;
    }
  });
}

/** Session.attachMany: every item attached, or rolled back alone (see bulkAttacher). */
export function attachMany(session: BulkSession, items: Iterable<BulkAttachItem> | AsyncIterable<BulkAttachItem>,
  opts: BulkOptions & AttachOptions = {}): AsyncGenerator<BulkResult<AttachResult>> {
  const attach = bulkAttacher(session, opts);
  return runBounded(items, (item) => attach(item.guest, item.request, item.options), opts);
}

/** A device group number no one else uses: a high range plus randomness (not a secret). */
const deviceGroup = () => (0x70000000 | Math.floor(Math.random() * 0x1000000)) >>> 0;

/**
 * Veths marked before their group is deleted at once: bounds what a failure
 * could leave marked. Each deletion has a cost of its own (the kernel's RCU
 * barriers, its wait for the last references): at N = 3000, one deletion
 * took the teardown from 3.5 to 2.3 ms per container against six of 512.
 */
const GROUP_FLUSH = 4096;

/**
 * Veths deleted by device group, hundreds per kernel call, instead of one
 * RCU grace period each: the detaches put their veth in `group`
 * (BulkSession.detachOrGroup) and mark what they stand for (an item, a
 * line); flush() deletes the group once `full` (at GROUP_FLUSH marks) and
 * at the end. What was marked is done only when its group is gone.
 */
export class GroupDeleter<T> {
  /** The device group the detaches put their veths in. */
  readonly group = deviceGroup();
  private marked: T[] = [];

  constructor(private readonly session: Pick<BulkSession, 'deleteLinkGroup'>) {}

  mark(what: T): void {
    this.marked.push(what);
  }

  get full(): boolean {
    return this.marked.length >= GROUP_FLUSH;
  }

  /** Deletes the group: what was marked since the last flush, with the error if the deletion failed (nothing marked: no kernel call). */
  async flush(): Promise<{ marked: T[]; error?: Error }> {
    const marked = this.marked;
    this.marked = [];
    if (!marked.length) return { marked };
    try {
      await this.session.deleteLinkGroup(this.group);
      return { marked };
    } catch (e) {
      return { marked, error: e as Error };
    }
  }
}

/**
 * Session.detachMany: every item detached; absent already counts as done.
 * Plain veths go by device group (GroupDeleter); their results come when
 * their group goes.
 */
export async function* detachMany(session: BulkSession, items: Iterable<BulkDetachItem> | AsyncIterable<BulkDetachItem>,
  opts: BulkOptions = {}): AsyncGenerator<BulkResult<DetachOutcome>> {
  const deleter = new GroupDeleter<{ index: number; outcome: DetachOutcome }>(session);
  const flushed = async (): Promise<BulkResult<DetachOutcome>[]> => {
    const { marked, error } = await deleter.flush();
    return marked.map(({ index, outcome }) => (error ? { index, ok: false, error } : { index, ok: true, result: outcome }));
  };
  for await (const r of runBounded(items, (item) => session.detachOrGroup(item.guest, item.containerInterface, deleter.group), opts)) {
    if (!r.ok) yield r;
    else if (!r.result.grouped) yield { index: r.index, ok: true, result: r.result.outcome };
    else {
      deleter.mark({ index: r.index, outcome: r.result.outcome });
      if (deleter.full) yield* await flushed();
    }
  }
  yield* await flushed();
}
