import type { DhcpClientRecord } from './detach';
import { CREATED_BRIDGE_ALIAS, type HostLink, vlanUsers } from './steps';

/**
 * `pipework gc`: what containers that died without `unplug` (and attaches
 * killed half-way) leave behind, as plain data. Only what pipework marks as
 * its own is ever a candidate: OVS ports with pipework external-ids, links
 * whose alias pipework set, DHCP clients with our state file.
 */
export type GcStep =
  /** An OVS port pipework added whose interface is gone. */
  | { op: 'ovs-del-port'; bridge: string; port: string }
  /** A VLAN link pipework made with no macvlan left on it in any netns. */
  | { op: 'delete-vlan'; link: HostLink }
  /** A bridge pipework made (with --bridges) with no port left. */
  | { op: 'delete-bridge'; link: HostLink }
  /** A down link an attach moved aside (its name freed) and was killed before deleting it. */
  | { op: 'delete-aside'; link: HostLink }
  /** A DHCP client record whose container is gone: the client (if it still runs, alone in that netns), its pidfile and scratch dir. */
  | { op: 'stop-dhcp'; record: DhcpClientRecord; guest: string; ifname: string };

/** The candidates as observed (exec/gc.ts reads them). */
export interface GcObserved {
  /** OVS ports with pipework external-ids, and whether a link of that name exists in the host. */
  ovsPorts: { bridge: string; port: string; linkExists: boolean }[];
  /** Host links pipework marked (alias) or named as its own, with what decides whether they are left over. */
  links: { link: HostLink; alias?: string; kind?: string; up: boolean; ports: number; macvlansOnIt: number }[];
  dhcpClients: { record: DhcpClientRecord; guest: string; ifname: string; running: boolean; netnsInUse: boolean }[];
}


/** Name of a link an attach moved out of the veth host end's way (plan/steps asideName). */
const ASIDE = /^pwold(\d+)$/;

export function planGc(o: GcObserved, opts: { bridges?: boolean } = {}): GcStep[] {
  const steps: GcStep[] = [];
  for (const p of o.ovsPorts) if (!p.linkExists) steps.push({ op: 'ovs-del-port', bridge: p.bridge, port: p.port });
  for (const l of o.links) {
    const aside = ASIDE.exec(l.link.name);
    if (l.kind === 'vlan' && vlanUsers(l.alias) !== undefined && l.macvlansOnIt === 0) steps.push({ op: 'delete-vlan', link: l.link });
    else if (opts.bridges && l.kind === 'bridge' && l.alias === CREATED_BRIDGE_ALIAS && l.ports === 0) steps.push({ op: 'delete-bridge', link: l.link });
    else if (aside && Number(aside[1]) === l.link.index && !l.up) steps.push({ op: 'delete-aside', link: l.link });
  }
  for (const c of o.dhcpClients) {
    if (!c.running || !c.netnsInUse) steps.push({ op: 'stop-dhcp', record: c.record, guest: c.guest, ifname: c.ifname });
  }
  return steps;
}

/** The step as the command that does the same thing. */
export function renderGcStep(step: GcStep): string {
  switch (step.op) {
    case 'ovs-del-port':
      return `ovs-vsctl --if-exists del-port ${step.bridge} ${step.port}`;
    case 'delete-vlan':
    case 'delete-bridge':
    case 'delete-aside':
      return `ip link del dev ${step.link.name}`;
    case 'stop-dhcp':
      return `${step.record.pid ? `kill ${step.record.pid}; ` : ''}rm -rf ${step.record.dir}  # ${step.record.client} for ${step.ifname} of ${step.guest}`;
  }
}
