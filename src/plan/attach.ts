import { type Cidr, broadcastOf, inPrefix, parseCidr, parseIp, parseMac } from '../addressing';
import { PipeworkError } from '../errors';
import { ARPHRD_INFINIBAND, RT_TABLE_MAIN } from '../netlink/constants';
import { MACVLAN_MODES, type MacvlanMode } from '../netlink/kinds/macvlan';
import { kindData } from '../netlink/kinds';
import { type Link, formatMac } from '../netlink/link';
import type { AddressEntry } from '../netlink/address';
import type { RouteEntry } from '../netlink/route';
import { checkIfname, vethHostName } from './names';
import { type AttachPlan, type HostLink, type Step, asideName, vlanUsers } from './steps';
import { MOVED_ALIAS_PREFIX, type OvsPort } from './detach';
import type { DhcpRequest } from './dhcp';

/** What a caller asks for: the arguments of one `pipework` attach. */
export interface AttachRequest {
  /** Host interface: a bridge, a physical interface, or a name to create (br*, ovs*, dummy*). */
  hostInterface: string;
  /** Container-side name (default eth1, ib0 for IPoIB). */
  containerInterface?: string;
  /** Host-side name of the veth (default v<cif>pl<pid>). */
  hostName?: string;
  /** Addresses with prefix (`10.0.0.2/24`); `0/0` or none means: link up, no address. */
  addresses?: string[];
  /** Default gateway, reached over the container interface. */
  gateway?: string;
  /** Container-side MAC: `aa:bb:cc:dd:ee:ff` or `U:<text>`. */
  mac?: string;
  /** VLAN id (physical or OVS parent) or, for IPoIB, the partition key as hex digits. */
  vlan?: string;
  /** Move the physical interface itself into the container instead of a macvlan. */
  directPhys?: boolean;
  macvlanMode?: MacvlanMode;
  /** IPv6 addresses without duplicate address detection. */
  nodad?: boolean;
  /** MTU of the new links; default: the host interface's, as the original copies it. */
  mtu?: number;
  /** Send a gratuitous ARP after a static IPv4 address (default true). */
  announce?: boolean;
  /**
   * IPv6 on the container interface (default true). false: the kernel makes
   * no IPv6 address for it (addrgenmode none: no link-local address, so no
   * DAD, MLD report or router solicitation flooded through the bridge), and
   * IPv6 addresses or gateways are refused.
   */
  ipv6?: boolean;
  /**
   * IPv6 address generation on the veth's host end when it is a port of a
   * Linux bridge (default false: a bridge port hands its frames to the bridge
   * and never uses an address of its own; no link-local address means no DAD
   * and MLD traffic for it).
   */
  hostIpv6?: boolean;
  /** Get the address from a DHCP client instead (no addresses then). */
  dhcp?: DhcpRequest;
  /** A Docker container's id and name, recorded on an OVS port as the original does (name as `docker inspect` gives it, with its '/'). */
  docker?: { id: string; name: string };
}

/** The kernel state the plan depends on, read before planning. */
export interface Observed {
  /** The host interface named in the request, if it exists. */
  host?: Link;
  /** True when the host interface is an Open vSwitch bridge. */
  hostIsOvs: boolean;
  /** True when ovs-vsctl can reach an ovsdb (asked only for an absent `ovs*` name). */
  ovsAvailable?: boolean;
  /** A link already named like the veth host end we would create. */
  localLink?: Link;
  /** The `<if>.<vid>` link, when a VLAN on a physical parent is asked for. */
  vlanLink?: Link;
  /** Tag used in generated names: the guest's PID, else a netns name or id. */
  guestTag: string;
  guestPath: string;
  /** Per gateway outside every new prefix: true if an existing guest route reaches it. */
  gatewayRoutable?: boolean;
  /** With converge: the container interface as found in the guest, and what is on it. */
  existing?: Existing;
  /** With converge onto a VLAN link pipework counts users of: the macvlans found on it in every netns. */
  vlanUsersFound?: number;
}

/** A container interface that already exists, as converge sees it. */
export interface Existing {
  link: Link;
  /** Its IFLA_LINK when that is an index in the host netns: a veth's host end, a macvlan's or IPoIB's lower device. */
  hostParent?: number;
  /** The addresses on it. */
  addresses: AddressEntry[];
  /** The guest's routes through it. */
  routes: RouteEntry[];
  /** Open vSwitch: the port named like the veth host end, as ovsdb has it. */
  ovsPort?: OvsPort;
  /** DHCP: the client's work is done (a recorded client still runs, or the link has an IPv4 address from a client that exits once leased). */
  dhcpDone?: boolean;
}

export type HostKind = 'bridge' | 'ovs' | 'ipoib' | 'phys' | 'new-bridge' | 'new-ovs' | 'dummy';

/** The original's order: Linux bridge, OVS bridge, IPoIB, physical; when absent, by name prefix. */
export function hostKind(name: string, o: Pick<Observed, 'host' | 'hostIsOvs'>): HostKind {
  if (o.host) {
    if (o.host.kind === 'bridge') return 'bridge';
    if (o.hostIsOvs) return 'ovs';
    if (o.host.hwType === ARPHRD_INFINIBAND) return 'ipoib';
    return 'phys';
  }
  if (name.startsWith('br')) return 'new-bridge';
  if (name.startsWith('ovs')) return 'new-ovs';
  if (name.startsWith('dummy')) return 'dummy';
  throw new PipeworkError(`I do not know how to setup interface ${name}.`);
}

/** The parsed, checked form of a request; everything that can be refused before looking at the kernel. */
export interface CheckedRequest {
  hostInterface: string;
  containerInterface?: string;
  hostName?: string;
  addresses: Cidr[];
  gateway?: { family: 4 | 6; bytes: Buffer };
  mac?: Buffer;
  vlan?: string;
  directPhys: boolean;
  macvlanMode: MacvlanMode;
  nodad: boolean;
  mtu?: number;
  announce: boolean;
  ipv6: boolean;
  hostIpv6: boolean;
  dhcp?: DhcpRequest;
  docker?: { id: string; name: string };
  /** Complete an attachment that already exists instead of refusing it (see planAttach). */
  converge: boolean;
}

export function checkRequest(r: AttachRequest, converge = false): CheckedRequest {
  checkIfname(r.hostInterface, 'host interface');
  if (r.containerInterface !== undefined) checkIfname(r.containerInterface, 'container interface');
  if (r.hostName !== undefined) checkIfname(r.hostName, 'local interface');
  const addresses = (r.addresses ?? []).filter((a) => a !== '0/0').map(parseCidr);
  if (r.dhcp && (addresses.length || r.gateway)) throw new PipeworkError('DHCP and a static address exclude each other.');
  const gateway = r.gateway === undefined ? undefined : parseIp(r.gateway, 'gateway');
  if (gateway && addresses.length && !addresses.some((a) => a.family === gateway.family))
    throw new PipeworkError(`The gateway ${r.gateway} is not of the same IP family as the address.`);
  if (r.ipv6 === false && (addresses.some((a) => a.family === 6) || gateway?.family === 6))
    throw new PipeworkError('An IPv6 address or gateway needs IPv6 on the container interface (drop --no-ipv6 / ipv6: false).');
  if (r.vlan !== undefined && !/^[0-9a-fA-F]{1,4}$/.test(r.vlan)) throw new PipeworkError(`Invalid VLAN id: ${r.vlan}`);
  const mode = r.macvlanMode ?? 'bridge';
  if (!(mode in MACVLAN_MODES)) throw new PipeworkError(`Invalid macvlan mode: ${mode} (private, vepa, bridge or passthru)`);
  return {
    hostInterface: r.hostInterface,
    containerInterface: r.containerInterface,
    hostName: r.hostName,
    addresses,
    gateway,
    mac: r.mac === undefined ? undefined : parseMac(r.mac),
    vlan: r.vlan,
    directPhys: r.directPhys ?? false,
    macvlanMode: mode,
    nodad: r.nodad ?? false,
    mtu: r.mtu === undefined ? undefined : checkMtu(r.mtu),
    announce: r.announce ?? true,
    ipv6: r.ipv6 ?? true,
    hostIpv6: r.hostIpv6 ?? false,
    dhcp: r.dhcp,
    docker: r.docker,
    converge,
  };
}

function checkMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new PipeworkError(`Invalid MTU: ${mtu} (68-65535)`);
  return mtu;
}

function vlanId(text: string): number {
  const vid = Number(text);
  if (!/^\d+$/.test(text) || vid < 1 || vid > 4094) throw new PipeworkError(`Invalid VLAN id: ${text} (1-4094)`);
  return vid;
}

const hostLink = (l: Link): HostLink => ({ name: l.name, index: l.index });

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array) => !!a && a.length === b.length && a.every((x, k) => x === b[k]);

/**
 * With converge, an existing container interface must be the very attachment
 * asked for: the reason it is not, or undefined if it is.
 */
function notThatAttachment(kind: HostKind, r: CheckedRequest, o: Observed, ex: Existing, hostName?: string): string | undefined {
  const { link } = ex;
  const what = `${link.name} in the container is ${link.kind ? `a ${link.kind} link` : 'a link of no kind'}`;
  switch (kind) {
    case 'bridge':
    case 'new-bridge':
    case 'ovs':
    case 'new-ovs':
      if (link.kind !== 'veth') return `${what}, not a veth`;
      if (!o.localLink || ex.hostParent !== o.localLink.index) return `${what} whose peer is not ${hostName} in the host`;
      if (kind === 'new-bridge' || kind === 'new-ovs') return `${what} whose host end ${hostName} is not on ${r.hostInterface} (no such bridge)`;
      if (kind === 'bridge' && o.localLink.master !== o.host!.index) return `${what} whose host end ${hostName} is not on bridge ${r.hostInterface}`;
      if (kind === 'ovs' && ex.ovsPort && ex.ovsPort.bridge !== r.hostInterface) return `${what} whose host end ${hostName} is a port of ${ex.ovsPort.bridge}`;
      return undefined;
    case 'phys': {
      const vlanName = r.vlan === undefined ? undefined : `${r.hostInterface}.${vlanId(r.vlan)}`;
      if (r.directPhys) {
        return link.alias === `${MOVED_ALIAS_PREFIX}${vlanName ?? r.hostInterface}` ? undefined : `${what} not moved there from ${vlanName ?? r.hostInterface}`;
      }
      const parent = vlanName ? o.vlanLink : o.host;
      if (link.kind !== 'macvlan') return `${what}, not a macvlan`;
      const mode = kindData(link, 'macvlan')?.mode;
      if (mode !== undefined && mode !== r.macvlanMode) return `${what} in mode ${mode}, not ${r.macvlanMode}`;
      return parent && ex.hostParent === parent.index ? undefined : `${what} not on ${vlanName ?? r.hostInterface}`;
    }
    case 'ipoib':
      if (link.kind !== 'ipoib') return `${what}, not an IPoIB child`;
      return ex.hostParent === o.host!.index ? undefined : `${what} not on ${r.hostInterface}`;
    case 'dummy':
      return link.kind === 'dummy' ? undefined : `${what}, not a dummy`;
  }
}

/** The OVS port as the attach would make it: whether the existing one is that. */
function ovsPortIs(port: OvsPort | undefined, step: Extract<Step, { op: 'ovs-add-port' }>): boolean {
  return !!port && port.bridge === step.bridge && port.tag === step.vlan &&
    Object.entries(step.externalIds).every(([k, v]) => port.externalIds[k] === v);
}

/**
 * Request + observed state -> the steps of the attach. Pure.
 *
 * With converge and the container interface found (observed.existing): if it
 * is the attachment asked for, only what is missing is planned (address,
 * link up, gateway routes, MAC, MTU, OVS port and tag, VLAN user record, DHCP
 * client); if it is not, the attach is refused, saying why.
 */
export function planAttach(r: CheckedRequest, o: Observed): AttachPlan {
  const ex = r.converge ? o.existing : undefined;
  // A link moved in with --direct-phys is no longer in the host: it is the attachment found.
  const kind = ex && r.directPhys && !o.host ? 'phys' : hostKind(r.hostInterface, o);
  const cif = r.containerInterface ?? (kind === 'ipoib' ? 'ib0' : 'eth1');
  const steps: Step[] = [];
  let hostInterface: string | undefined;
  let asideLink: HostLink | undefined;

  if (r.vlan !== undefined && (kind === 'bridge' || kind === 'new-bridge')) throw new PipeworkError('VLAN configuration currently unsupported for Linux bridge.');
  if (r.mac && kind === 'ipoib') throw new PipeworkError('MACADDR configuration unsupported for IPoIB interfaces.');
  if (r.directPhys && kind !== 'phys')
    throw new PipeworkError(`--direct-phys needs an existing physical interface; ${r.hostInterface} is not one.`);

  const vethName = ['bridge', 'new-bridge', 'ovs', 'new-ovs'].includes(kind) ? r.hostName ?? vethHostName(cif, o.guestTag) : undefined;
  if (ex) {
    const why = notThatAttachment(kind, r, o, ex, vethName);
    if (why) throw new PipeworkError(`${cif} exists but is not the attachment asked for: ${why}.`);
  }
  const mtu = r.mtu ?? o.host?.mtu ?? 0;
  switch (kind) {
    case 'bridge':
    case 'new-bridge':
    case 'ovs':
    case 'new-ovs': {
      if (kind === 'new-bridge') steps.push({ op: 'create-bridge', name: r.hostInterface });
      if (kind === 'new-ovs') {
        if (!o.ovsAvailable) throw new PipeworkError('Need OVS installed on the system to create an ovs bridge');
        steps.push({ op: 'create-ovs-bridge', name: r.hostInterface });
      }
      const hostName = vethName!;
      if (ex) {
        if (!o.localLink!.up) steps.push({ op: 'host-link-up', link: hostLink(o.localLink!) });
      } else {
        if (o.localLink) {
          if (o.localLink.up) throw new PipeworkError(`Link ${hostName} exists and is up`);
          asideLink = { name: asideName(o.localLink.index), index: o.localLink.index };
          steps.push({ op: 'move-aside-host-link', link: hostLink(o.localLink), aside: asideLink.name, peerName: cif });
        }
        // Index 0: a bridge this plan creates, resolved by the executor once it exists.
        const master = kind === 'bridge' ? hostLink(o.host!) : kind === 'new-bridge' ? { name: r.hostInterface, index: 0 } : undefined;
        const masterWas = kind === 'bridge' ? { mac: o.host!.mac, mtu: o.host!.mtu } : undefined;
        const hostAddrGenNone = master !== undefined && !r.hostIpv6;
        steps.push({ op: 'create-veth', hostName, master, masterWas, mtu, peerName: cif, mac: r.mac, hostAddrGenNone });
      }
      if (kind === 'ovs' || kind === 'new-ovs') {
        const port: Extract<Step, { op: 'ovs-add-port' }> = {
          op: 'ovs-add-port', bridge: r.hostInterface, port: hostName,
          vlan: r.vlan === undefined ? undefined : vlanId(r.vlan),
          externalIds: {
            'pipework.interface': hostName,
            'pipework.bridge': r.hostInterface,
            ...(r.docker ? { 'pipework.containerid': r.docker.id, 'pipework.containername': `/${r.docker.name}` } : {}),
            'pipework.nspid': o.guestTag,
            ...(r.vlan !== undefined ? { 'pipework.vlan': r.vlan } : {}),
          },
        };
        if (!ex || !ovsPortIs(ex.ovsPort, port)) steps.push(port);
      }
      hostInterface = hostName;
      break;
    }
    case 'phys': {
      if (ex && r.directPhys) break; // moved in already: only the guest side may be missing
      let parent = hostLink(o.host!);
      let parentUp = o.host!.up;
      if (r.vlan !== undefined) {
        const vid = vlanId(r.vlan);
        const name = `${r.hostInterface}.${vid}`;
        checkIfname(name, 'VLAN');
        if (!o.host!.up) steps.push({ op: 'host-link-up', link: parent });
        if (o.vlanLink) {
          if (o.vlanLink.kind !== 'vlan' || kindData(o.vlanLink, 'vlan')?.id !== vid)
            throw new PipeworkError(`${name} already exists but is not a VLAN device for tag ${vid}`);
          parent = hostLink(o.vlanLink);
          parentUp = o.vlanLink.up;
          const users = vlanUsers(o.vlanLink.alias);
          // The count goes up before the macvlan is made: a macvlan found on the link is counted already. With
          // converge and none found, a count above the users found in every netns is taken to include this one
          // (killed between the count and the macvlan); an attach to the same link in flight meanwhile would be one too.
          const counted = ex || (r.converge && users !== undefined && users > (o.vlanUsersFound ?? users));
          if (users !== undefined && !r.directPhys && !counted) steps.push({ op: 'vlan-user', link: parent, users });
        } else {
          steps.push({ op: 'create-vlan', parent, name, vid, mtu });
          parent = { name, index: 0 };
          parentUp = true;
        }
      }
      if (!parentUp) steps.push({ op: 'host-link-up', link: parent });
      if (ex) break;
      if (r.directPhys) steps.push({ op: 'move-link', link: parent, name: cif, mac: r.mac });
      else steps.push({ op: 'create-macvlan', parent, name: cif, mode: r.macvlanMode, mtu, mac: r.mac });
      break;
    }
    case 'ipoib': {
      const pkey = r.vlan === undefined ? undefined : parseInt(r.vlan, 16);
      if (pkey === 0) throw new PipeworkError(`Invalid partition key: ${r.vlan}`);
      if (!o.host!.up) steps.push({ op: 'host-link-up', link: hostLink(o.host!) });
      if (!ex) steps.push({ op: 'create-ipoib', parent: hostLink(o.host!), name: cif, pkey });
      break;
    }
    case 'dummy':
      if (!ex) steps.push({ op: 'create-dummy', name: cif, mac: r.mac });
      break;
  }
  if (ex) {
    // What the creation would have set: the MAC asked for, the MTU a veth or macvlan gets.
    const mac = r.mac && ex.link.mac !== formatMac(r.mac) ? r.mac : undefined;
    const setsMtu = (kind === 'phys' && !r.directPhys) || vethName !== undefined;
    const wantMtu = setsMtu && mtu && ex.link.mtu !== mtu ? mtu : undefined;
    if (mac || wantMtu) steps.push({ op: 'set-guest-link', name: cif, mac, mtu: wantMtu });
  }
  const present = (c: Cidr) => ex?.addresses.some((a) => a.prefixLen === c.prefixLen && sameBytes(a.address, c.bytes));
  for (const cidr of r.addresses) {
    if (present(cidr)) continue;
    steps.push({ op: 'add-address', ifname: cif, cidr, broadcast: broadcastOf(cidr), nodad: r.nodad && cidr.family === 6 });
  }
  // The original's order: addresses, link up, routes (a route needs its device up).
  // With an IPv4 address, the kernel announces it (gratuitous ARP) as the link comes up; on a Linux bridge,
  // whose port drops frames until the kernel has seen its carrier (which comes with this link-up), once the port forwards.
  const announce = !ex?.link.up && r.announce && r.addresses.some((a) => a.family === 4);
  const bridgePort = kind === 'bridge' || kind === 'new-bridge' ? vethName : undefined;
  if (!ex?.link.up) {
    const aroundUp = announce && !bridgePort;
    if (aroundUp) steps.push({ op: 'arp-notify', ifname: cif, enable: true });
    // Before the link comes up, or the kernel has made its link-local address already.
    if (!r.ipv6) steps.push({ op: 'ipv6-off', ifname: cif });
    steps.push({ op: 'guest-link-up', name: cif });
    if (aroundUp) steps.push({ op: 'arp-notify', ifname: cif, enable: false });
  }
  if (r.gateway) {
    const gw = r.gateway;
    const route = (dstLen: number, want: (e: RouteEntry) => boolean) =>
      ex?.routes.some((e) => e.dstLen === dstLen && e.oif === ex.link.index && want(e));
    const onLink = r.addresses.some((a) => inPrefix(gw.bytes, a)) || o.gatewayRoutable === true;
    if (!onLink && !route(gw.bytes.length * 8, (e) => sameBytes(e.dst, gw.bytes)))
      steps.push({ op: 'add-gateway-route', ifname: cif, gateway: gw.bytes, family: gw.family });
    if (!route(0, (e) => e.table === RT_TABLE_MAIN && sameBytes(e.gateway, gw.bytes)))
      steps.push({ op: 'replace-default-route', ifname: cif, gateway: gw.bytes, family: gw.family });
  }
  // After the routes: they go out with the link-up in one sendmsg.
  if (announce && bridgePort) {
    steps.push({ op: 'port-carrier', name: bridgePort }, { op: 'arp-notify', ifname: cif, enable: true },
      { op: 'announce', ifname: cif }, { op: 'arp-notify', ifname: cif, enable: false });
  }
  if (r.dhcp && !ex?.dhcpDone) steps.push({ op: 'dhcp', ifname: cif, request: r.dhcp });
  if (asideLink) steps.push({ op: 'delete-host-link', link: asideLink });
  const status = !r.converge ? undefined : !ex ? 'created' : steps.length ? 'repaired' : 'unchanged';
  return { guestPath: o.guestPath, containerInterface: cif, hostInterface, steps, ...(status ? { status } : {}) };
}
