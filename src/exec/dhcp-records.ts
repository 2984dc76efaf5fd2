import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DhcpClientRecord } from '../plan/detach';
import { type DhcpRequest, fileSafe, scratchBase } from '../plan/dhcp';

/** What an attach records of the DHCP client it left running (state.json in its scratch dir). */
export interface ClientState {
  client: DhcpRequest['client'];
  hostname: string;
  ifname: string;
  pid?: number;
  /** /proc/<pid>/stat field 22 when we found it: a reused PID never matches. */
  startTime?: string;
  comm?: string;
  netnsIno?: number;
  /** The client's private UTS namespace: every process it forked (daemons, privsep helpers, scripts) is in it. */
  utsIno?: number;
  pidfile?: string;
  helperContainer?: string;
}

/**
 * `pipework unplug` for DHCP: every client an earlier attach left running for
 * this guest and interface, found by the state files under scratchBase().
 * A scratch dir without one is an attach still in progress (or one that
 * failed half-way): not ours to judge.
 */
export function findDhcpClients(hostname: string, ifname: string): DhcpClientRecord[] {
  return allDhcpClients(`${fileSafe(hostname)}.${fileSafe(ifname)}.`)
    .filter(({ state }) => state.hostname === hostname && state.ifname === ifname).map(({ record }) => record);
}

/** Every client recorded under scratchBase() (whose dir name starts with prefix), with its state. */
export function allDhcpClients(prefix = ''): { record: DhcpClientRecord; state: ClientState }[] {
  let entries: string[];
  try {
    entries = readdirSync(scratchBase());
  } catch {
    return [];
  }
  const found: { record: DhcpClientRecord; state: ClientState }[] = [];
  for (const name of entries) {
    if (!name.startsWith(prefix) || (prefix && name.length !== prefix.length + 6)) continue;
    const dir = join(scratchBase(), name);
    let state: ClientState;
    try {
      state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    } catch {
      continue;
    }
    found.push({ record: { dir, client: state.client, pid: state.pid, helperContainer: state.helperContainer }, state });
  }
  return found;
}
