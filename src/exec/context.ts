import { PipeworkError } from '../errors';
import type { RtnlSocket } from '../netlink/socket';

/** The sockets and fds an operation works with: the host's netns and the guest's. */
export interface NetnsPair {
  host: RtnlSocket;
  hostFd: number;
  guest: RtnlSocket;
  guestFd: number;
}

export interface ExecOptions {
  /**
   * Tests: fail as if step k (0-based) were refused, after the k steps before it took effect.
   * @internal
   */
  failAtStep?: number;
  /**
   * Tests: the process dies (SIGKILL) right after step k (0-based) took effect, as a crash would leave it.
   * @internal
   */
  killAfterStep?: number;
  /**
   * Once aborted, the attach starts no further step: what it did is undone
   * (an undo is never cut short) and it fails with AttachAborted.
   */
  abort?: AbortSignal;
}

/** An attach stopped by its abort signal (ExecOptions.abort), and rolled back. */
export class AttachAborted extends PipeworkError {
  constructor() {
    super('stopped before it was complete, and rolled back');
    this.name = 'AttachAborted';
  }
}

/** The failure ExecOptions.failAtStep stands in for. */
export class InjectedFault extends Error {
  constructor(step: number) {
    super(`injected fault at step ${step}`);
  }
}
