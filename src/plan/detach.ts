import type { Link } from '../netlink/link';
import { linkKind } from '../netlink/kinds';
import { type HostLink, vlanUsers, vlanUsersAlias } from './steps';

/** IFLA_IFALIAS of a link moved in with --direct-phys: its name on the host. */
export const MOVED_ALIAS_PREFIX = 'pipework:moved-from:';

/** An Open vSwitch port as ovsdb holds it: what it takes to put it back. */
export interface OvsPort {
  bridge: string;
  port: string;
  tag?: number;
  externalIds: Record<string, string>;
}

/** A DHCP client an attach left running for this interface (found by its state file). */
export interface DhcpClientRecord {
  dir: string;
  client: string;
  pid?: number;
  helperContainer?: string;
}

/**
 * One side effect of a detach, as plain data. The steps before the container
 * interface goes are undone if a later one fails; the ones after it find
 * their target without it, so running unplug again completes them.
 */
export type DetachStep =
  /** One container fewer on a VLAN link pipework made (others remain). */
  | { op: 'vlan-release'; link: HostLink; users: number }
  | { op: 'ovs-del-port'; port: OvsPort }
  /** hostEnd: a veth's host end (its ifindex in the host netns), where bulk teardown can group it. */
  | { op: 'delete-link'; ifname: string; index: number; hostEnd?: number }
  /** The last container on a VLAN link pipework made: the kernel deletes the macvlans on it with it. */
  | { op: 'delete-vlan'; link: HostLink; ifname: string }
  /** A physical link goes back to the host, down, under its host name. */
  | { op: 'return-link'; ifname: string; index: number; hostName?: string }
  | { op: 'stop-dhcp'; ifname: string; record: DhcpClientRecord };

export interface DetachPlan {
  guestPath: string;
  containerInterface: string;
  /** What happens to the container interface; 'absent' if it is gone already. */
  action: 'deleted' | 'returned' | 'absent';
  kind?: string;
  steps: DetachStep[];
}

/** What planDetach needs to know, read by exec/observe's observeDetach. */
export interface DetachObserved {
  guestPath: string;
  link?: Link;
  /** The link's IFLA_LINK when it is an index in the host netns: a veth's host end, a macvlan's lower device. */
  hostParent?: number;
  /** unplug: that host link (a macvlan's lower device; a veth's host end where OVS runs). */
  peer?: Link;
  /** unplug: the OVS port the veth's host end is. */
  ovsPort?: OvsPort;
  dhcpClients: DhcpClientRecord[];
}

/** Whether the step removes or gives back the container interface: the point after which nothing is undone. */
export const removesContainerInterface = (step: DetachStep) => ['delete-link', 'delete-vlan', 'return-link'].includes(step.op);

/**
 * Decides a detach: `ip -n GUEST link del CIF` for virtual links (a veth's
 * host end goes with it); a link moved in with --direct-phys (or any physical
 * one) goes back to the host. Unplug (observed with peer, ovsPort and DHCP
 * clients) also removes the OVS port first, counts the container off a VLAN
 * link pipework made (deleting it with the last one), and stops the DHCP
 * clients last.
 */
export function planDetach(cif: string, o: DetachObserved): DetachPlan {
  const steps: DetachStep[] = [];
  const { link } = o;
  let action: DetachPlan['action'] = 'absent';
  if (link) {
    const moved = link.alias?.startsWith(MOVED_ALIAS_PREFIX);
    if (!moved && linkKind(link.kind)?.deletedOnDetach) {
      action = 'deleted';
      if (o.ovsPort) steps.push({ op: 'ovs-del-port', port: o.ovsPort });
      const users = o.peer?.kind === 'vlan' && link.kind === 'macvlan' ? vlanUsers(o.peer.alias) : undefined;
      const vlan = o.peer && { name: o.peer.name, index: o.peer.index };
      if (vlan && users !== undefined && users <= 1) {
        steps.push({ op: 'delete-vlan', link: vlan, ifname: cif });
      } else {
        if (vlan && users !== undefined) steps.push({ op: 'vlan-release', link: vlan, users });
        steps.push({ op: 'delete-link', ifname: cif, index: link.index, hostEnd: link.kind === 'veth' ? o.hostParent : undefined });
      }
    } else {
      action = 'returned';
      steps.push({ op: 'return-link', ifname: cif, index: link.index, hostName: moved ? link.alias!.slice(MOVED_ALIAS_PREFIX.length) : undefined });
    }
  }
  for (const record of o.dhcpClients) steps.push({ op: 'stop-dhcp', ifname: cif, record });
  return { guestPath: o.guestPath, containerInterface: cif, action, kind: link?.kind, steps };
}

/** The step as the `ip`/`ovs-vsctl`/`kill` command that does the same thing. */
export function renderDetachStep(step: DetachStep, guestPath: string): string {
  const inNs = (cmd: string) => `nsenter --net=${guestPath} ${cmd}`;
  switch (step.op) {
    case 'vlan-release':
      return `ip link set dev ${step.link.name} alias ${vlanUsersAlias(step.users - 1)}`;
    case 'ovs-del-port':
      return `ovs-vsctl del-port ${step.port.bridge} ${step.port.port}`;
    case 'delete-link':
      return inNs(`ip link del dev ${step.ifname}`);
    case 'delete-vlan':
      return `ip link del dev ${step.link.name}`;
    case 'return-link':
      return inNs(`ip link set dev ${step.ifname} down netns 1${step.hostName ? ` name ${step.hostName} alias ''` : ''}`);
    case 'stop-dhcp':
      return step.record.helperContainer
        ? `docker rm -f ${step.record.helperContainer.slice(0, 12)}`
        : `kill ${step.record.pid ?? '<pid>'}  # ${step.record.client} for ${step.ifname}`;
  }
}
