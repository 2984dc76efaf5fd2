// Stopping a DHCP client an attach left running, from that attach's undo or
// from a later process (unplug, gc), by what its state file recorded.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { PipeworkError } from '../errors';
import type { DhcpClientRecord } from '../plan/detach';
import { identify, nsInode, procsInUts, removePidfile, terminate } from './dhcp-procs';
import { type ClientState, readState } from './dhcp-records';

/** Ends the recorded client (only if it is still that very process), its pidfile and its scratch dir. */
export async function stopRecorded(dir: string, state: ClientState): Promise<void> {
  if (state.helperContainer) {
    const { dockerApi }: typeof import('../guest/docker') = require('../guest/docker');
    const r = await dockerApi('DELETE', `/containers/${state.helperContainer}?force=true`);
    if (r.status !== 204 && r.status !== 404 && r.status !== 409) {
      throw new PipeworkError(`Cannot remove the DHCP helper container ${state.helperContainer.slice(0, 12)}: ${r.status}`);
    }
  } else if (state.pid && state.startTime) {
    // The client itself first (TERM: it may tidy up, dhcpcd ends its helpers),
    // then whatever else it left in its UTS namespace.
    const p = identify(state.pid, state.comm, state.netnsIno);
    if (p && p.startTime === state.startTime) await terminate(p);
    if (state.utsIno !== undefined) await Promise.all(procsInUts(state.utsIno).map((q) => terminate(q, 1000)));
  }
  if (state.pidfile) removePidfile(state.pidfile, [state.pid]);
  rmSync(dir, { recursive: true, force: true });
}

/** Whether a client findDhcpClients found still runs (the very process recorded). */
export function dhcpClientRunning(record: DhcpClientRecord): boolean {
  let state: ClientState;
  try {
    state = readState(record.dir);
  } catch {
    return false;
  }
  if (state.helperContainer) return true; // its container's fate is Docker's to tell; unplug removes it
  const p = state.pid && state.startTime ? identify(state.pid, state.comm, state.netnsIno) : undefined;
  return !!p && p.startTime === state.startTime;
}

/**
 * gc: whether anything but the recorded client still uses its netns (a
 * process outside the client's own UTS namespace, or a name in /run/netns):
 * a client alone in it keeps alive the netns of a container that is gone.
 */
export function dhcpNetnsInUse(record: DhcpClientRecord): boolean {
  let state: ClientState;
  try {
    state = readState(record.dir);
  } catch {
    return true; // nothing to judge by: not ours to stop
  }
  if (state.netnsIno === undefined || state.utsIno === undefined || state.helperContainer) return true;
  try {
    for (const name of readdirSync('/run/netns')) {
      try { if (statSync(`/run/netns/${name}`).ino === state.netnsIno) return true; } catch { /* gone meanwhile */ }
    }
  } catch { /* no /run/netns */ }
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (nsInode(pid, 'net') === state.netnsIno && nsInode(pid, 'uts') !== state.utsIno && identify(pid)) return true;
  }
  return false;
}

/**
 * Stops a client findDhcpClients found (only if its PID still is that
 * process) and removes its pidfile and scratch dir; gone already is success.
 */
export async function stopDhcpClient(record: DhcpClientRecord): Promise<void> {
  let state: ClientState;
  try {
    state = readState(record.dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  await stopRecorded(record.dir, state);
}
