/**
 * The order work runs in when front ends run many things at once: one key's
 * work in sequence, and the first work on a key alone. No I/O here; the
 * front ends choose the keys (a guest, a container, a host interface).
 */

/**
 * Work under one key runs after the previous work under that key has
 * settled, whatever its outcome; work under other keys runs meanwhile. (A
 * batch's lines naming one guest, a container's start and then its die.)
 */
export class Sequencer {
  /** Per key, the last work queued, settled either way; gone once it settled with nothing queued behind it. */
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(key) ?? Promise.resolve()).then(work);
    const tail: Promise<unknown> = run.catch(() => undefined).then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    this.tails.set(key, tail);
    return run;
  }

  /** Resolves once no work is queued under any key (work queued meanwhile included). */
  async idle(): Promise<void> {
    while (this.tails.size) await Promise.all([...this.tails.values()]);
  }
}

/**
 * The first work on a key runs alone: work on that key that comes later
 * waits until the first settled (failed or not), then runs as it comes.
 * (The first attach to a host interface may create the bridge; the others
 * must find it made rather than race to create it too.)
 */
export class FirstAlone {
  private readonly first = new Map<string, Promise<unknown>>();

  /** work's argument: whether it is the first on its key. */
  async run<T>(key: string, work: (first: boolean) => Promise<T>): Promise<T> {
    const pending = this.first.get(key);
    if (pending) {
      await pending.catch(() => undefined);
      return work(false);
    }
    const p = work(true);
    this.first.set(key, p);
    return p;
  }
}
