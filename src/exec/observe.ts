import { inPrefix } from '../addressing';
import { AF_INET, AF_INET6, AF_UNSPEC } from '../netlink/constants';
import { NetlinkError } from '../netlink/error';
import { type Link, dumpLinks, getLinkByName, linkOf, parseLink } from '../netlink/link';
import { getRoute } from '../netlink/route';
import type { RtnlSocket } from '../netlink/socket';
import { type CheckedRequest, type Existing, type Observed, hostKind } from '../plan/attach';
import { readAddresses } from '../netlink/address';
import { readRoutes } from '../netlink/route';
import { getNsid, parseNsid } from '../netlink/netns';
import { findDhcpClients } from './dhcp-records';
import { ovsPortOf } from './detach';
import { linksOnLowers } from './gc';
import { vlanUsers } from '../plan/steps';
import type { NetnsPair } from './context';
import { vethHostName } from '../plan/names';
import type { Guest } from '../guest';
import { PipeworkError } from '../errors';
import { ovsRunning, runProgram } from '../run';

/** The links named, looked up in one sendmsg; undefined where none exists. */
export async function lookupLinks(sock: RtnlSocket, names: string[]): Promise<(Link | undefined)[]> {
  return (await sock.send(names.map(getLinkByName))).map(linkOf);
}

/** `mac:<addr>`: the host link with that MAC (the kernel cannot filter by MAC, so this one path dumps). */
export async function linkByMac(sock: RtnlSocket, mac: string): Promise<Link> {
  const want = mac.toLowerCase();
  const match = (await sock.request(dumpLinks())).map(parseLink).find((l) => l.mac === want);
  if (!match) throw new PipeworkError(`Mac address ${mac} specified for interface but no host interface matched.`);
  return match;
}

/** True if name is an Open vSwitch bridge: asked of ovsdb only when OVS runs and the link could be one. */
export async function isOvsBridge(name: string, link?: Link): Promise<boolean> {
  if (link && (link.kind === 'bridge' || !['openvswitch', 'tun'].includes(link.kind ?? ''))) return false;
  if (!ovsRunning()) return false;
  try {
    await runProgram('ovs-vsctl', ['br-exists', name]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads what planAttach needs to know, in as few round trips as possible.
 * `bridge`: the host interface, a Linux bridge, as a bulk run looked it up
 * once; the veth host-end name is then assumed free (a taken one makes the
 * kernel refuse the veth with EEXIST, and the caller plans again from a full look).
 */
export async function observe(ns: NetnsPair, guest: Guest, r: CheckedRequest, bridge?: Link): Promise<Observed> {
  const { host, guest: guestSock } = ns;
  let o: Observed;
  if (bridge) {
    o = { host: bridge, hostIsOvs: false, guestTag: guest.tag, guestPath: guest.path };
  } else {
    const localName = r.hostName ?? vethHostName(r.containerInterface ?? 'eth1', guest.tag);
    const vlanName = r.vlan !== undefined ? `${r.hostInterface}.${r.vlan}` : undefined;
    const [hostLink, localLink, vlanLink] = await lookupLinks(host, [r.hostInterface, localName, ...(vlanName ? [vlanName] : [])]);
    o = {
      host: hostLink,
      hostIsOvs: hostLink ? await isOvsBridge(r.hostInterface, hostLink) : false,
      guestTag: guest.tag,
      guestPath: guest.path,
    };
    // A link moved in with --direct-phys is gone from the host: converge looks for it in the guest.
    const kind = r.converge && r.directPhys && !hostLink ? 'phys' : hostKind(r.hostInterface, o);
    if (kind === 'new-ovs') o.ovsAvailable = ovsRunning();
    if (['bridge', 'new-bridge', 'ovs', 'new-ovs'].includes(kind)) o.localLink = localLink;
    if (kind === 'phys') o.vlanLink = vlanLink;
    // Converge onto a VLAN link pipework counts users of: how many are there, in every netns (see planAttach).
    if (r.converge && vlanLink && vlanUsers(vlanLink.alias) !== undefined) {
      o.vlanUsersFound = (await linksOnLowers(ns, [], new Set([vlanLink.index]))).get(vlanLink.index) ?? 0;
    }
    if (r.converge) {
      const guestCif = r.containerInterface ?? (kind === 'ipoib' ? 'ib0' : 'eth1');
      o.existing = await observeExisting(ns, r, guestCif, kind === 'ovs' ? localName : undefined);
    }
  }
  const gw = r.gateway;
  if (gw && !r.addresses.some((a) => inPrefix(gw.bytes, a))) {
    try {
      // The default route we are about to replace does not count: the original deletes it before asking.
      const [route] = await guestSock.request(getRoute(gw.family === 4 ? AF_INET : AF_INET6, gw.bytes));
      o.gatewayRoutable = route !== undefined && route.payload[1] > 0;
    } catch (e) {
      if (!(e instanceof NetlinkError)) throw e;
      o.gatewayRoutable = false;
    }
  }
  return o;
}


/**
 * Converge: the container interface if it exists, with its addresses, its
 * routes, where its IFLA_LINK points in the host, and (OVS) the port named
 * like the veth host end; undefined if there is no such interface.
 */
async function observeExisting(ns: NetnsPair, r: CheckedRequest, cif: string, ovsPortName?: string): Promise<Existing | undefined> {
  const [linkOut, nsidOut] = await ns.guest.send([getLinkByName(cif), getNsid(ns.hostFd)]);
  const link = linkOf(linkOut);
  if (!link) return undefined;
  const hostNsid = nsidOut.error ? undefined : parseNsid(nsidOut.replies[0]);
  // One dump at a time per socket (the kernel answers a second one EBUSY while the first goes on); AF_UNSPEC: every family.
  const addresses = await readAddresses(ns.guest);
  const routes = await readRoutes(ns.guest, AF_UNSPEC);
  const ex: Existing = {
    link,
    hostParent: link.parent && hostNsid !== undefined && link.linkNetnsid === hostNsid ? link.parent : undefined,
    addresses: addresses.filter((a) => a.index === link.index),
    routes: routes.filter((e) => e.oif === link.index),
  };
  if (ovsPortName) ex.ovsPort = await ovsPortOf(ovsPortName);
  if (r.dhcp) {
    const { dhcpClientStays }: typeof import('./dhcp-client') = require('./dhcp-client');
    const { dhcpClientRunning }: typeof import('./dhcp-stop') = require('./dhcp-stop');
    ex.dhcpDone = findDhcpClients(r.dhcp.hostname, cif).some(dhcpClientRunning) ||
      (!dhcpClientStays(r.dhcp) && ex.addresses.some((a) => a.family === AF_INET));
  }
  return ex;
}
