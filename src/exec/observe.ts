import { inPrefix } from '../addressing';
import { AF_INET, AF_INET6 } from '../netlink/constants';
import { NetlinkError } from '../netlink/error';
import { type Link, dumpLinks, getLinkByName, parseLink } from '../netlink/link';
import { getRoute } from '../netlink/route';
import type { RtnlSocket } from '../netlink/socket';
import { type CheckedRequest, type Observed, hostKind } from '../plan/attach';
import { vethHostName } from '../plan/names';
import type { Guest } from '../guest';
import { PipeworkError } from '../errors';
import { ovsRunning, runProgram } from '../run';

const ENODEV = 19;

/** The links named, looked up in one sendmsg; undefined where none exists. */
export async function lookupLinks(sock: RtnlSocket, names: string[]): Promise<(Link | undefined)[]> {
  const outcomes = await sock.send(names.map(getLinkByName));
  return outcomes.map((o) => {
    if (o.error) {
      if (o.error.errno === ENODEV) return undefined;
      throw o.error;
    }
    return parseLink(o.replies[0]);
  });
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
export async function observe(host: RtnlSocket, guestSock: RtnlSocket, guest: Guest, r: CheckedRequest, bridge?: Link): Promise<Observed> {
  let o: Observed;
  if (bridge) {
    o = { host: bridge, hostIsOvs: false, guestTag: guest.tag, guestPath: guest.path };
  } else {
    const cif = r.containerInterface ?? 'eth1';
    const localName = r.hostName ?? vethHostName(cif, guest.tag);
    const vlanName = r.vlan !== undefined ? `${r.hostInterface}.${r.vlan}` : undefined;
    const [hostLink, localLink, vlanLink] = await lookupLinks(host, [r.hostInterface, localName, ...(vlanName ? [vlanName] : [])]);
    o = {
      host: hostLink,
      hostIsOvs: hostLink ? await isOvsBridge(r.hostInterface, hostLink) : false,
      guestTag: guest.tag,
      guestPath: guest.path,
    };
    const kind = hostKind(r.hostInterface, o);
    if (kind === 'new-ovs') o.ovsAvailable = ovsRunning();
    if (['bridge', 'new-bridge', 'ovs', 'new-ovs'].includes(kind)) o.localLink = localLink;
    if (kind === 'phys') o.vlanLink = vlanLink;
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

