import type { RtnlSocket } from '../netlink/socket';

/** The sockets and fds an operation works with: the host's netns and the guest's. */
export interface NetnsPair {
  host: RtnlSocket;
  hostFd: number;
  guest: RtnlSocket;
  guestFd: number;
}

export interface ExecOptions {
  /** Tests: fail as if step k (0-based) were refused, after the k steps before it took effect. */
  failAtStep?: number;
  /** Tests: the process dies (SIGKILL) right after step k (0-based) took effect, as a crash would leave it. */
  killAfterStep?: number;
}

/** The failure ExecOptions.failAtStep stands in for. */
export class InjectedFault extends Error {
  constructor(step: number) {
    super(`injected fault at step ${step}`);
  }
}
