import type { Request } from '../netlink/message';
import type { NetnsPair } from './context';
import { RollbackError } from '../errors';

type UndoStep = (ns: NetnsPair) => Promise<unknown>;

/**
 * The undo log of one operation: each side effect pushes how to reverse it
 * right after the kernel confirmed it; unwind() runs them newest first.
 */
export class Undo {
  private readonly steps: UndoStep[] = [];
  constructor(private readonly ns: NetnsPair) {}

  /** Reverse with one request, sent in the host or the guest netns. */
  push(req: (ns: NetnsPair) => Request, where: 'host' | 'guest' = 'host'): void {
    this.steps.push((ns) => (where === 'host' ? ns.host : ns.guest).request(req(ns)));
  }

  pushAsync(step: UndoStep): void {
    this.steps.push(step);
  }

  /** Runs every undo step, newest first; one that fails does not stop the others. */
  async unwind(): Promise<Error[]> {
    const failures: Error[] = [];
    while (this.steps.length) {
      try {
        await this.steps.pop()!(this.ns);
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
