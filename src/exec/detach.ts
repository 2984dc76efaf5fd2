import { Link, deleteLink, deleteLinkGroup, getLinkByIndex, parseLink, setLink } from '../netlink/link';
import { NetlinkError } from '../netlink/error';
import { ovsRunning, runProgram } from '../run';
import { lookupLinks } from './observe';
import { MOVED_ALIAS_PREFIX, NetnsPair } from './attach';
import { vlanUsers, vlanUsersAlias } from '../plan/steps';

/** Kinds that exist only for the container: deleting the container end removes all of it. */
const VIRTUAL = new Set(['veth', 'macvlan', 'macvtap', 'ipvlan', 'vlan', 'ipoib', 'dummy']);

export interface DetachOutcome {
  /** What happened to the container interface: deleted, given back to the host, or absent already. */
  action: 'deleted' | 'returned' | 'absent';
  kind?: string;
}

/**
 * `ip -n GUEST link del CIF` for virtual links (a veth's host end goes with
 * it). A link moved in with --direct-phys (or any physical one) goes back to
 * the host, down, under the name it had there. With hostLeftovers (unplug),
 * also the OVS port of a veth and a VLAN link pipework made once its last
 * container goes. Absent already is success: detaching twice is harmless.
 */
export async function executeDetach(ns: NetnsPair, cif: string, opts: { hostLeftovers?: boolean } = {}): Promise<DetachOutcome> {
  const [link] = await lookupLinks(ns.guest, [cif]);
  if (!link) return { action: 'absent' };
  const moved = link.alias?.startsWith(MOVED_ALIAS_PREFIX);
  if (!moved && link.kind && VIRTUAL.has(link.kind)) {
    // IFLA_LINK: the veth's host end, or the macvlan's lower device, by index in the host netns.
    const peer = opts.hostLeftovers && link.parent && (link.kind === 'veth' || link.kind === 'macvlan') ? await hostPeer(ns, link.parent) : undefined;
    await ns.guest.request(deleteLink(link.index, cif));
    if (peer?.kind === 'veth') await removeOvsPort(peer);
    if (peer?.kind === 'vlan') await releaseVlan(ns, peer);
    return { action: 'deleted', kind: link.kind };
  }
  const name = moved ? link.alias!.slice(MOVED_ALIAS_PREFIX.length) : undefined;
  await ns.guest.request(setLink(link.index, { netnsFd: ns.hostFd, up: false, name, alias: moved ? '' : undefined }, cif));
  return { action: 'returned', kind: link.kind };
}

/**
 * For bulk teardown: a plain veth is not deleted now (each deletion waits for
 * an RCU grace period, ~20 ms) but its host end joins `group`, which
 * deleteGroup() then removes at once. Anything else is detached as usual.
 */
export async function detachOrGroup(ns: NetnsPair, cif: string, group: number, opts: { hostLeftovers?: boolean } = {}):
  Promise<{ outcome: DetachOutcome; grouped: boolean }> {
  const [link] = await lookupLinks(ns.guest, [cif]);
  // With OVS running the veth may be an OVS port to remove by name: no grouping then.
  if (link?.kind === 'veth' && link.parent && !link.alias?.startsWith(MOVED_ALIAS_PREFIX) && !(opts.hostLeftovers && ovsRunning())) {
    await ns.host.request(setLink(link.parent, { group }, `${cif} host end`));
    return { outcome: { action: 'deleted', kind: 'veth' }, grouped: true };
  }
  return { outcome: link ? await executeDetach(ns, cif, opts) : { action: 'absent' }, grouped: false };
}

/** Deletes every link of the group in the host netns (a veth takes its container end with it). */
export async function deleteGroup(ns: Pick<NetnsPair, 'host'>, group: number): Promise<void> {
  await ns.host.request(deleteLinkGroup(group));
}

/** One container fewer on a VLAN link pipework made: deleted with the last one. */
async function releaseVlan(ns: NetnsPair, vlan: Link): Promise<void> {
  const users = vlanUsers(vlan.alias);
  if (users === undefined) return;
  if (users <= 1) await ns.host.request(deleteLink(vlan.index, vlan.name));
  else await ns.host.request(setLink(vlan.index, { alias: vlanUsersAlias(users - 1) }, vlan.name));
}

/** The veth's host end (IFLA_LINK of the guest end is its index in the host netns). */
async function hostPeer(ns: NetnsPair, index: number): Promise<Link | undefined> {
  try {
    return parseLink((await ns.host.request(getLinkByIndex(index)))[0]);
  } catch (e) {
    if (e instanceof NetlinkError) return undefined;
    throw e;
  }
}

/** The port OVS would still list once its veth is gone (only where OVS is installed). */
async function removeOvsPort(peer: Link): Promise<void> {
  if (!ovsRunning()) return;
  await runProgram('ovs-vsctl', ['--if-exists', 'del-port', peer.name]);
}
