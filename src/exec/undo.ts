import type { Request } from '../netlink/message';
import type { NetnsPair } from './context';
import { RollbackError } from '../errors';

/**
 * The undo log of one operation: each side effect adds how to reverse it
 * right after it took effect; unwind() runs them newest first. An attach
 * or detach uses it through Undo; the Docker driver directly.
 */
export class UndoLog {
  private readonly steps: (() => Promise<unknown>)[] = [];

  add(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  /** Runs every undo step, newest first; one that fails does not stop the others. */
  async unwind(): Promise<Error[]> {
    const failures: Error[] = [];
    while (this.steps.length) {
      try {
        await this.steps.pop()!();
      } catch (e) {
        failures.push(e as Error);
      }
    }
    return failures;
  }

  /** After a failure: everything undone, newest first; returns what to throw, the failure itself or, if undo steps failed too, a RollbackError. */
  async rollBack(failure: unknown): Promise<unknown> {
    const failures = await this.unwind();
    return failures.length ? new RollbackError(failure, failures) : failure;
  }
}

/** The undo log of an operation on a host netns and a guest netns: a step is often one request in either. */
export class Undo extends UndoLog {
  constructor(private readonly ns: NetnsPair) {
    super();
  }

  /** Reverse with one request, sent in the host or the guest netns. */
  push(req: (ns: NetnsPair) => Request, where: 'host' | 'guest' = 'host'): void {
    this.add(() => (where === 'host' ? this.ns.host : this.ns.guest).request(req(this.ns)));
  }

  pushAsync(step: (ns: NetnsPair) => Promise<unknown>): void {
    this.add(() => step(this.ns));
  }
}
