import type { AttachRequest } from './plan/attach';
import type { AttachOptions, AttachResult, Session } from './index';
import type { Guest, GuestSpec } from './guest';
import type { DetachOutcome } from './exec/detach';
import { PipeworkError } from './errors';

export interface BulkAttachItem {
  guest: GuestSpec | Guest;
  request: AttachRequest;
}

export interface BulkDetachItem {
  guest: GuestSpec | Guest;
  containerInterface?: string;
}

export interface BulkOptions {
  /** Items in flight at once (default 32): round trips overlap, the kernel's lock still orders the work. */
  concurrency?: number;
  /** Stop starting new items after the first failure (those in flight finish). */
  stopOnError?: boolean;
  /** Called after each item with the running counts. */
  onProgress?: (done: number, failed: number) => void;
}

/** One item's outcome, in completion order; index is its position in the input. */
export type BulkResult<T> = { index: number; ok: true; result: T } | { index: number; ok: false; error: Error };

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
  const limit = Math.max(1, opts.concurrency ?? 32);
  const it = (Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : (items as Iterable<I>)[Symbol.iterator]()) as
    AsyncIterator<I> | Iterator<I>;
  const running = new Map<number, Promise<BulkResult<T>>>();
  let next = 0;
  let exhausted = false;
  let stop = false;
  let done = 0;
  let failed = 0;
  while (true) {
    while (!exhausted && !stop && running.size < limit) {
      const r = await it.next();
      if (r.done) {
        exhausted = true;
        break;
      }
      const index = next++;
      running.set(index, work(r.value).then(
        (result): BulkResult<T> => ({ index, ok: true, result }),
        (error: Error): BulkResult<T> => ({ index, ok: false, error }),
      ));
    }
    if (running.size === 0) return;
    const settled = await Promise.race(running.values());
    running.delete(settled.index);
    if (settled.ok) done++;
    else {
      failed++;
      if (opts.stopOnError) stop = true;
    }
    opts.onProgress?.(done, failed);
    yield settled;
  }
}

/**
 * Serializes the first attach to each host interface: it may create the
 * bridge, and others must see it exist rather than race to create it too.
 */
export function hostInterfaceGate(): <T>(hostInterface: string, work: () => Promise<T>) => Promise<T> {
  const first = new Map<string, Promise<unknown>>();
  return async (hostInterface, work) => {
    const pending = first.get(hostInterface);
    if (pending) {
      await pending.catch(() => undefined);
      return work();
    }
    const p = work();
    first.set(hostInterface, p);
    return p;
  };
}

/** A Linux bridge holds at most this many ports (port number 0 is reserved); the next enslave fails with EXFULL. */
export const BRIDGE_MAX_PORTS = 1023;

/**
 * Session.attachMany: every item attached, or rolled back alone. Ports are
 * counted per bridge, so an item that would pass the 1023-port limit is
 * refused up front, with a message saying so, instead of failing in the kernel.
 */
export function attachMany(session: Session, items: Iterable<BulkAttachItem> | AsyncIterable<BulkAttachItem>,
  opts: BulkOptions & AttachOptions = {}): AsyncGenerator<BulkResult<AttachResult>> {
  const gate = hostInterfaceGate();
  const ports = new Map<string, number>();
  const attachCounted = async (item: BulkAttachItem) => {
    const bridge = item.request.hostInterface;
    const count = ports.get(bridge);
    if (count === undefined) {
      // First item for this host interface (alone, thanks to the gate): count what is there afterwards.
      const result = await session.attach(item.guest, item.request, opts);
      ports.set(bridge, await session.bridgePortCount(bridge));
      return result;
    }
    if (count >= BRIDGE_MAX_PORTS)
      throw new PipeworkError(`Bridge ${bridge} is full: Linux bridges hold at most ${BRIDGE_MAX_PORTS} ports; spread the containers over several bridges.`);
    ports.set(bridge, count + 1);
    try {
      return await session.attach(item.guest, item.request, opts);
    } catch (e) {
      ports.set(bridge, ports.get(bridge)! - 1);
      throw e;
    }
  };
  return runBounded(items, (item) => gate(item.request.hostInterface, () => attachCounted(item)), opts);
}

/** A device group number no one else uses: a high range plus randomness (not a secret). */
export const deviceGroup = () => (0x70000000 | Math.floor(Math.random() * 0x1000000)) >>> 0;

/** Veths marked before their group is deleted at once: bounds what a failure could leave marked. */
const GROUP_FLUSH = 512;

/**
 * Session.detachMany: every item detached; absent already counts as done.
 * Plain veths are deleted by device group, hundreds per kernel call, instead
 * of one RCU grace period each; their results come when their group goes.
 */
export async function* detachMany(session: Session, items: Iterable<BulkDetachItem> | AsyncIterable<BulkDetachItem>,
  opts: BulkOptions = {}): AsyncGenerator<BulkResult<DetachOutcome>> {
  const group = deviceGroup();
  let marked: BulkResult<DetachOutcome>[] = [];
  const flush = async () => {
    const batch = marked;
    marked = [];
    try {
      await session.deleteLinkGroup(group);
      return batch;
    } catch (e) {
      return batch.map((r): BulkResult<DetachOutcome> => ({ index: r.index, ok: false, error: e as Error }));
    }
  };
  for await (const r of runBounded(items, (item) => session.detachOrGroup(item.guest, item.containerInterface, group), opts)) {
    if (!r.ok) yield r;
    else if (!r.result.grouped) yield { index: r.index, ok: true, result: r.result.outcome };
    else {
      marked.push({ index: r.index, ok: true, result: r.result.outcome });
      if (marked.length >= GROUP_FLUSH) yield* await flush();
    }
  }
  if (marked.length) yield* await flush();
}
