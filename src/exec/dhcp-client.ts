// What every way of running a DHCP client shares: its outcome, its timeout,
// and the checks a request passes before anything changes (the planner's
// and the session's, ahead of the attach).
import { accessSync, constants, statSync } from 'node:fs';
import { PipeworkError } from '../errors';
import type { DhcpRequest } from '../plan/dhcp';

/** What the client got. stop() ends a client left running and removes its pidfile (undo). */
export interface DhcpOutcome {
  addresses: string[];
  dns: string[];
  /** The guest's resolv.conf we wrote the lease's DNS servers to, if any. */
  resolvConf?: string;
  /** PID of a client left running (-f variants, dhcpcd; for `dhcp`, the helper container's udhcpc). */
  pid?: number;
  /** Its pidfile, if it has one. */
  pidfile?: string;
  /** `dhcp` method: the busybox helper container left running. */
  helperContainer?: string;
  /** The client's stdout and stderr while it is left running (removed by stop()). */
  log?: string;
  stop(): Promise<void>;
}

/** How long to wait for a lease: PIPEWORK_DHCP_TIMEOUT seconds, default 30. */
export function dhcpTimeoutMs(): number {
  const text = process.env.PIPEWORK_DHCP_TIMEOUT;
  if (text === undefined || text === '') return 30_000;
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) {
    throw new PipeworkError(`Invalid PIPEWORK_DHCP_TIMEOUT: ${text} (seconds, more than 0)`);
  }
  return Math.round(Number(text) * 1000);
}

/**
 * The client's executable, looked up on PATH as the original's `which` did
 * (so PATH decides, e.g. for a client installed elsewhere), or the
 * original's message.
 */
export function findDhcpClient(request: Pick<DhcpRequest, 'client'>): string {
  if (request.client === 'dhcp') throw new Error('the dhcp method runs udhcpc in a Docker helper container, not here');
  const name = request.client;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir.startsWith('/')) continue; // relative PATH entries: not for a program run as root
    const path = `${dir}/${name}`;
    try {
      if (statSync(path).isFile()) {
        accessSync(path, constants.X_OK); // as exec would: throws if not executable
        return path;
      }
    } catch {
      // not here
    }
  }
  throw new PipeworkError(`You asked for DHCP client ${name}, but I can't find it.`);
}

/**
 * Checks what can be checked before anything changes: the client exists
 * (the original's message), or for `dhcp`, that the guest is a Docker
 * container. The planner may call it up front; runDhcpClient calls it too.
 */
export function checkDhcpRequest(request: DhcpRequest): void {
  if (request.client === 'dhcp') {
    if (!request.docker) {
      throw new PipeworkError([
        'You asked for a Docker-specific DHCP method.',
        `However, ${request.hostname} doesn't seem to be a Docker container.`,
        "Try to replace 'dhcp' with another option?",
        'Aborting.',
      ].join('\n'));
    }
    return;
  }
  findDhcpClient(request);
  dhcpTimeoutMs();
}

/** Whether the client stays running after the lease (the -f variants, dhcpcd, Docker's helper). */
export const dhcpClientStays = (r: Pick<DhcpRequest, 'client' | 'foreground'>) => r.foreground || r.client === 'dhcpcd' || r.client === 'dhcp';
