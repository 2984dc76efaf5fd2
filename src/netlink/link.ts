import { type Attr, attrsLength, bytes, cstring, encodeText, get16, get32, getS32, nest, parseAttrs, s32, str, u32, u8, writeAttrs } from './attributes';
import {
  AF_INET, AF_INET6, AF_UNSPEC, IFF_LOWER_UP, IFLA_AF_SPEC, IFLA_INET_CONF, IFLA_INET6_ADDR_GEN_MODE, IPV4_DEVCONF_ARP_NOTIFY, IFF_UP, IFLA_ADDRESS, IFLA_CARRIER, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND,
  IFLA_EXT_MASK, IFLA_GROUP, IFLA_IFALIAS, IFLA_LINK, IFLA_NUM_RX_QUEUES, IFLA_NUM_TX_QUEUES, IFLA_LINK_NETNSID, IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU, IFLA_NET_NS_FD, IFLA_OPERSTATE, NLM_F_CREATE, NLM_F_DUMP,
  NLM_F_EXCL, NLM_F_REQUEST, RTEXT_FILTER_SKIP_STATS, RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK,
} from './constants';
import { ENODEV } from './errno';
import { type Reply, type Request, ifinfomsg, request } from './message';
import type { Outcome, RtnlSocket } from './socket';

/** The generic attributes of a link being created or changed. */
export interface LinkAttrs {
  name?: string;
  mtu?: number;
  /** ifindex of the bridge to enslave to. */
  master?: number;
  /** ifindex of the lower device (IFLA_LINK), for macvlan, vlan, ipoib. */
  parent?: number;
  address?: Uint8Array;
  /** Create or move the link into the netns held by this fd. */
  netnsFd?: number;
  up?: boolean;
  /** IFLA_IFALIAS; an empty string clears it. */
  alias?: string;
  /** IFLA_GROUP: the device group (0 is the default group). */
  group?: number;
  /**
   * IFLA_NUM_TX_QUEUES and IFLA_NUM_RX_QUEUES of a new link (`numtxqueues N
   * numrxqueues N`). A veth made without them gets one queue per possible CPU
   * and is then cut down to one in use, which waits for an expedited RCU grace
   * period under the rtnl lock (~1-2 ms here, each creation of every process).
   */
  queues?: number;
  /** IPv4 per-device settings (IPV4_DEVCONF_* id -> value), as sysctl net.ipv4.conf.<if>.* */
  inetConf?: Record<number, number>;
  /** IN6_ADDR_GEN_MODE_*: `ip link set ... addrgenmode`. Not in a creating message: the link has no IPv6 state yet (EAFNOSUPPORT). */
  addrGenMode?: number;
}

/** A link kind: its IFLA_INFO_KIND and the IFLA_INFO_DATA it owns. */
export interface LinkKind {
  kind: string;
  data?: Attr[];
  /** iproute2 flags the IFLA_INFO_DATA nest as NLA_F_NESTED for some kinds. */
  dataFlagNested?: boolean;
}

export function linkAttrs(a: LinkAttrs): Attr[] {
  const attrs: Attr[] = [];
  if (a.name !== undefined) attrs.push(str(IFLA_IFNAME, a.name));
  if (a.mtu !== undefined) attrs.push(u32(IFLA_MTU, a.mtu));
  if (a.master !== undefined) attrs.push(u32(IFLA_MASTER, a.master));
  if (a.parent !== undefined) attrs.push(u32(IFLA_LINK, a.parent));
  if (a.address !== undefined) attrs.push(bytes(IFLA_ADDRESS, a.address));
  if (a.netnsFd !== undefined) attrs.push(u32(IFLA_NET_NS_FD, a.netnsFd));
  if (a.alias !== undefined) attrs.push(bytes(IFLA_IFALIAS, encodeText(a.alias, false)));
  if (a.group !== undefined) attrs.push(u32(IFLA_GROUP, a.group));
  if (a.queues !== undefined) attrs.push(u32(IFLA_NUM_TX_QUEUES, a.queues), u32(IFLA_NUM_RX_QUEUES, a.queues));
  const perFamily: Attr[] = [];
  if (a.inetConf !== undefined) {
    const conf = Object.entries(a.inetConf).map(([id, v]) => u32(Number(id), v));
    perFamily.push(nest(AF_INET, [nest(IFLA_INET_CONF, conf)]));
  }
  if (a.addrGenMode !== undefined) perFamily.push(nest(AF_INET6, [u8(IFLA_INET6_ADDR_GEN_MODE, a.addrGenMode)]));
  if (perFamily.length) attrs.push(nest(IFLA_AF_SPEC, perFamily));
  return attrs;
}

/** ifinfomsg for a link: IFF_UP set and marked changed only when asked. */
export function linkHeader(a: LinkAttrs, index = 0): Uint8Array {
  return ifinfomsg({ family: AF_UNSPEC, index, flags: a.up ? IFF_UP : 0, change: a.up === undefined ? 0 : IFF_UP });
}

/** An ifinfomsg followed by attributes, as one buffer (e.g. VETH_INFO_PEER). */
export function headerWithAttrs(header: Uint8Array, attrs: Attr[]): Uint8Array {
  const buf = new Uint8Array(header.length + attrsLength(attrs));
  buf.set(header);
  writeAttrs(buf, header.length, attrs);
  return buf;
}

/** `ip link add [link PARENT] name NAME [mtu M] [master B] [address MAC] [netns NS] [up] type KIND ...` */
export function createLink(a: LinkAttrs, kind: LinkKind): Request {
  const info: Attr[] = [bytes(IFLA_INFO_KIND, encodeText(kind.kind, false))]; // no NUL, as iproute2 sends it
  if (kind.data) info.push(nest(IFLA_INFO_DATA, kind.data, kind.dataFlagNested));
  return request(
    RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, linkHeader(a),
    [...linkAttrs(a), nest(IFLA_LINKINFO, info)], `RTM_NEWLINK ${a.name ?? kind.kind}`,
  );
}

/** `ip link set dev <index> [name N] [mtu M] [address MAC] [master B] [netns NS] [up|down]` */
export function setLink(index: number, a: LinkAttrs, label = `${index}`): Request {
  return request(RTM_NEWLINK, 0, linkHeader(a, index), linkAttrs(a), `RTM_NEWLINK ${label}`);
}

/** `ip link del dev <index>` */
export function deleteLink(index: number, label = `${index}`): Request {
  return request(RTM_DELLINK, 0, ifinfomsg({ index }), [], `RTM_DELLINK ${label}`);
}

/**
 * The ifindex a link notification announces deleted: an RTM_DELLINK of the
 * device itself (family AF_UNSPEC; a bridge port's removal is announced
 * with AF_BRIDGE first); undefined for any other message.
 */
export function deletedLinkIndex(reply: Reply): number | undefined {
  return reply.type === RTM_DELLINK && reply.payload.length >= 16 && reply.payload[0] === AF_UNSPEC ? getS32(reply.payload, 4) : undefined;
}

/** `ip link del group N`: every link of the group in one go (one RCU wait for all). */
export function deleteLinkGroup(group: number): Request {
  return request(RTM_DELLINK, 0, ifinfomsg(), [u32(IFLA_GROUP, group)], `RTM_DELLINK group ${group}`);
}

/** `ip link del dev NAME` */
export function deleteLinkByName(name: string): Request {
  return request(RTM_DELLINK, 0, ifinfomsg(), [str(IFLA_IFNAME, name)], `RTM_DELLINK ${name}`);
}

/** Every RTM_GETLINK of ours asks for the link without its IPv6 counters (read-only, so one for all). */
const SKIP_STATS = u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);

/** `ip link show dev NAME`: one link by name, no dump. */
export function getLinkByName(name: string): Request {
  return request(RTM_GETLINK, 0, ifinfomsg(), [str(IFLA_IFNAME, name), SKIP_STATS], `RTM_GETLINK ${name}`);
}

/** `ip link show` of one ifindex, no dump. */
export function getLinkByIndex(index: number): Request {
  return request(RTM_GETLINK, 0, ifinfomsg({ index }), [SKIP_STATS], `RTM_GETLINK ${index}`);
}

/** `ip link show dev NAME` or the link of an ifindex: one link, no dump. */
export function getLink(which: string | number): Request {
  return typeof which === 'number' ? getLinkByIndex(which) : getLinkByName(which);
}

/** `ip link show [master B]`: a dump, filtered by the kernel when master is given. */
export function dumpLinks(master?: number): Request {
  const attrs = master === undefined ? [SKIP_STATS] : [s32(IFLA_MASTER, master), SKIP_STATS];
  return { type: RTM_GETLINK, flags: NLM_F_REQUEST | NLM_F_DUMP, header: ifinfomsg(), attrs, op: 'RTM_GETLINK dump' };
}

/** What we read back about a link. */
export interface Link {
  index: number;
  name: string;
  /** ARPHRD_* (1 Ethernet, 32 InfiniBand). */
  hwType: number;
  flags: number;
  up: boolean;
  lowerUp: boolean;
  mtu: number;
  master?: number;
  parent?: number;
  /** Where IFLA_LINK (parent) is an index: another netns, by its id here; undefined for this one. */
  linkNetnsid?: number;
  mac?: string;
  kind?: string;
  /**
   * IFLA_INFO_DATA, undecoded: `kindData(link, kind)` (./kinds) reads it.
   * @internal
   */
  infoData?: Uint8Array;
  operstate?: number;
  carrier?: boolean;
  alias?: string;
  /** net.ipv4.conf.<if>.arp_notify, when the link has IPv4 settings. */
  arpNotify?: number;
  /** IN6_ADDR_GEN_MODE_*, when the link has IPv6 settings. */
  addrGenMode?: number;
}

const LINK_ATTRS: ReadonlySet<number> = new Set([
  IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINK, IFLA_LINK_NETNSID, IFLA_ADDRESS, IFLA_LINKINFO, IFLA_OPERSTATE, IFLA_CARRIER, IFLA_IFALIAS, IFLA_AF_SPEC,
]);

const LINKINFO_ATTRS: ReadonlySet<number> = new Set([IFLA_INFO_KIND, IFLA_INFO_DATA]);

export function parseLink(reply: Reply): Link {
  const p = reply.payload;
  const attrs = parseAttrs(p, 16, p.length, LINK_ATTRS);
  const flags = get32(p, 8);
  const linkinfo = attrs.get(IFLA_LINKINFO);
  const info = linkinfo && parseAttrs(linkinfo, 0, linkinfo.length, LINKINFO_ATTRS);
  const address = attrs.get(IFLA_ADDRESS);
  const u32Of = (type: number) => {
    const v = attrs.get(type);
    return v && v.length >= 4 ? get32(v, 0) : undefined;
  };
  const linkNetnsid = attrs.get(IFLA_LINK_NETNSID);
  return {
    index: getS32(p, 4),
    name: cstring(attrs.get(IFLA_IFNAME)) ?? '',
    hwType: get16(p, 2),
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
    mtu: u32Of(IFLA_MTU) ?? 0,
    master: u32Of(IFLA_MASTER),
    parent: u32Of(IFLA_LINK),
    linkNetnsid: linkNetnsid && linkNetnsid.length >= 4 ? getS32(linkNetnsid, 0) : undefined,
    mac: address && formatMac(address),
    kind: info ? cstring(info.get(IFLA_INFO_KIND)) : undefined,
    // A copy: a view would keep the whole answer (a dump of every link) alive as long as the link.
    infoData: info?.get(IFLA_INFO_DATA)?.slice(),
    operstate: attrs.get(IFLA_OPERSTATE)?.[0],
    carrier: attrs.has(IFLA_CARRIER) ? attrs.get(IFLA_CARRIER)![0] === 1 : undefined,
    alias: cstring(attrs.get(IFLA_IFALIAS)) || undefined,
    ...familySettings(attrs.get(IFLA_AF_SPEC)),
  };
}

const ONLY_IFLA_LINK: ReadonlySet<number> = new Set([IFLA_LINK]);

/** IFLA_LINK of a link message (a veth's peer, a macvlan's lower device), read alone: a creation's echo needs nothing else. */
export function linkParentOf(reply: Reply): number | undefined {
  const v = parseAttrs(reply.payload, 16, reply.payload.length, ONLY_IFLA_LINK).get(IFLA_LINK);
  return v && v.length >= 4 ? get32(v, 0) : undefined;
}

/** The link an RTM_GETLINK's outcome carries; undefined when there is none (ENODEV); other refusals thrown. */
export function linkOf(outcome: Outcome): Link | undefined {
  if (!outcome.error) return parseLink(outcome.replies[0]);
  if (outcome.error.errno === ENODEV) return undefined;
  throw outcome.error;
}

/** One link of the socket's netns, by name or ifindex; undefined if it has none such. */
export async function findLink(sock: RtnlSocket, which: string | number): Promise<Link | undefined> {
  const [outcome] = await sock.send([getLink(which)]);
  return linkOf(outcome);
}

const AF_SPEC_FAMILIES: ReadonlySet<number> = new Set([AF_INET, AF_INET6]);
const ONLY_INET_CONF: ReadonlySet<number> = new Set([IFLA_INET_CONF]);
const ONLY_ADDR_GEN_MODE: ReadonlySet<number> = new Set([IFLA_INET6_ADDR_GEN_MODE]);

/**
 * From IFLA_AF_SPEC: net.ipv4.conf.<if>.arp_notify (AF_INET: IFLA_INET_CONF,
 * an array of u32 indexed by id - 1) and the IPv6 addrgenmode (AF_INET6:
 * IFLA_INET6_ADDR_GEN_MODE, one byte); only those attributes are taken apart.
 */
function familySettings(afSpec: Uint8Array | undefined): { arpNotify?: number; addrGenMode?: number } {
  if (!afSpec) return {};
  const families = parseAttrs(afSpec, 0, afSpec.length, AF_SPEC_FAMILIES);
  const inet = families.get(AF_INET);
  const inet6 = families.get(AF_INET6);
  const conf = inet && parseAttrs(inet, 0, inet.length, ONLY_INET_CONF).get(IFLA_INET_CONF);
  const id = IPV4_DEVCONF_ARP_NOTIFY;
  return {
    arpNotify: conf && conf.length >= id * 4 ? get32(conf, (id - 1) * 4) : undefined,
    addrGenMode: inet6 && parseAttrs(inet6, 0, inet6.length, ONLY_ADDR_GEN_MODE).get(IFLA_INET6_ADDR_GEN_MODE)?.[0],
  };
}

/** aa:bb:cc:... (any length: 6 bytes for Ethernet, 20 for InfiniBand). */
export function formatMac(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (i ? ':' : '') + (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s;
}
