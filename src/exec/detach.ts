import { Link, deleteLink, getLinkByIndex, parseLink, setLink } from '../netlink/link';
import { NetlinkError } from '../netlink/error';
import { ovsRunning, runProgram } from '../run';
import { lookupLinks } from './observe';
import { MOVED_ALIAS_PREFIX, NetnsPair } from './attach';

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
 * the host, down, under the name it had there. Absent already is success:
 * detaching twice is harmless.
 */
export async function executeDetach(ns: NetnsPair, cif: string, opts: { ovs?: boolean } = {}): Promise<DetachOutcome> {
  const [link] = await lookupLinks(ns.guest, [cif]);
  if (!link) return { action: 'absent' };
  const moved = link.alias?.startsWith(MOVED_ALIAS_PREFIX);
  if (!moved && link.kind && VIRTUAL.has(link.kind)) {
    const peer = opts.ovs && link.kind === 'veth' && link.parent ? await hostPeer(ns, link.parent) : undefined;
    await ns.guest.request(deleteLink(link.index, cif));
    if (peer) await removeOvsPort(peer);
    return { action: 'deleted', kind: link.kind };
  }
  const name = moved ? link.alias!.slice(MOVED_ALIAS_PREFIX.length) : undefined;
  await ns.guest.request(setLink(link.index, { netnsFd: ns.hostFd, up: false, name, alias: moved ? '' : undefined }, cif));
  return { action: 'returned', kind: link.kind };
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
