// A DHCP client's scratch dir (one per attach, under scratchBase()) and the
// state file in it that records a client left running: what a later
// process (unplug, gc) finds it by.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
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

/** A new scratch dir `<scratchBase>/<guest>.<ifname>.XXXXXX`. */
export function scratchDir(hostname: string, ifname: string): string {
  const base = scratchBase();
  mkdirSync(base, { recursive: true, mode: 0o700 });
  return mkdtempSync(join(base, `${fileSafe(hostname)}.${fileSafe(ifname)}.`));
}

export function writeState(dir: string, state: ClientState): void {
  const tmp = join(dir, 'state.json.tmp');
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  renameSync(tmp, join(dir, 'state.json'));
}

/** The state recorded in dir; throws if there is none (ENOENT) or it cannot be read. */
export function readState(dir: string): ClientState {
  return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
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
      state = readState(dir);
    } catch {
      continue;
    }
    found.push({ record: { dir, client: state.client, pid: state.pid, helperContainer: state.helperContainer }, state });
  }
  return found;
}
