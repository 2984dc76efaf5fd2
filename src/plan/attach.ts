import { type Cidr, broadcastOf, inPrefix, parseCidr, parseIp, parseMac } from '../addressing';
import { PipeworkError } from '../errors';
import { ARPHRD_INFINIBAND } from '../netlink/constants';
import { MACVLAN_MODES, type MacvlanMode } from '../netlink/kinds/macvlan';
import type { Link } from '../netlink/link';
import { checkIfname, vethHostName } from './names';
import { type AttachPlan, type HostLink, type Step, asideName, vlanUsers } from './steps';
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
}

export function checkRequest(r: AttachRequest): CheckedRequest {
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

/** Request + observed state -> the steps of the attach. Pure. */
export function planAttach(r: CheckedRequest, o: Observed): AttachPlan {
  const kind = hostKind(r.hostInterface, o);
  const cif = r.containerInterface ?? (kind === 'ipoib' ? 'ib0' : 'eth1');
  const steps: Step[] = [];
  let hostInterface: string | undefined;
  let asideLink: HostLink | undefined;

  if (r.vlan !== undefined && (kind === 'bridge' || kind === 'new-bridge')) throw new PipeworkError('VLAN configuration currently unsupported for Linux bridge.');
  if (r.mac && kind === 'ipoib') throw new PipeworkError('MACADDR configuration unsupported for IPoIB interfaces.');
  if (r.directPhys && kind !== 'phys')
    throw new PipeworkError(`--direct-phys needs an existing physical interface; ${r.hostInterface} is not one.`);

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
      const hostName = r.hostName ?? vethHostName(cif, o.guestTag);
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
      if (kind === 'ovs' || kind === 'new-ovs') {
        steps.push({
          op: 'ovs-add-port', bridge: r.hostInterface, port: hostName,
          vlan: r.vlan === undefined ? undefined : vlanId(r.vlan),
          externalIds: {
            'pipework.interface': hostName,
            'pipework.bridge': r.hostInterface,
            ...(r.docker ? { 'pipework.containerid': r.docker.id, 'pipework.containername': `/${r.docker.name}` } : {}),
            'pipework.nspid': o.guestTag,
            ...(r.vlan !== undefined ? { 'pipework.vlan': r.vlan } : {}),
          },
        });
      }
      hostInterface = hostName;
      break;
    }
    case 'phys': {
      let parent = hostLink(o.host!);
      let parentUp = o.host!.up;
      if (r.vlan !== undefined) {
        const vid = vlanId(r.vlan);
        const name = `${r.hostInterface}.${vid}`;
        checkIfname(name, 'VLAN');
        if (!o.host!.up) steps.push({ op: 'host-link-up', link: parent });
        if (o.vlanLink) {
          if (o.vlanLink.kind !== 'vlan') throw new PipeworkError(`${name} already exists but is not a VLAN device for tag ${vid}`);
          parent = hostLink(o.vlanLink);
          parentUp = o.vlanLink.up;
          const users = vlanUsers(o.vlanLink.alias);
          if (users !== undefined && !r.directPhys) steps.push({ op: 'vlan-user', link: parent, users });
        } else {
          steps.push({ op: 'create-vlan', parent, name, vid, mtu });
          parent = { name, index: 0 };
          parentUp = true;
        }
      }
      if (!parentUp) steps.push({ op: 'host-link-up', link: parent });
      if (r.directPhys) steps.push({ op: 'move-link', link: parent, name: cif, mac: r.mac });
      else steps.push({ op: 'create-macvlan', parent, name: cif, mode: r.macvlanMode, mtu, mac: r.mac });
      break;
    }
    case 'ipoib': {
      const pkey = r.vlan === undefined ? undefined : parseInt(r.vlan, 16);
      if (pkey === 0) throw new PipeworkError(`Invalid partition key: ${r.vlan}`);
      if (!o.host!.up) steps.push({ op: 'host-link-up', link: hostLink(o.host!) });
      steps.push({ op: 'create-ipoib', parent: hostLink(o.host!), name: cif, pkey });
      break;
    }
    case 'dummy':
      steps.push({ op: 'create-dummy', name: cif, mac: r.mac });
      break;
  }
  for (const cidr of r.addresses) {
    steps.push({ op: 'add-address', ifname: cif, cidr, broadcast: broadcastOf(cidr), nodad: r.nodad && cidr.family === 6 });
  }
  // The original's order: addresses, link up, routes (a route needs its device up).
  // With an IPv4 address, the kernel announces it (gratuitous ARP) as the link comes up.
  const announce = r.announce && r.addresses.some((a) => a.family === 4);
  if (announce) steps.push({ op: 'arp-notify', ifname: cif, enable: true });
  // Before the link comes up, or the kernel has made its link-local address already.
  if (!r.ipv6) steps.push({ op: 'ipv6-off', ifname: cif });
  steps.push({ op: 'guest-link-up', name: cif });
  if (announce) steps.push({ op: 'arp-notify', ifname: cif, enable: false });
  if (r.gateway) {
    const gw = r.gateway;
    const onLink = r.addresses.some((a) => inPrefix(gw.bytes, a)) || o.gatewayRoutable === true;
    if (!onLink) steps.push({ op: 'add-gateway-route', ifname: cif, gateway: gw.bytes, family: gw.family });
    steps.push({ op: 'replace-default-route', ifname: cif, gateway: gw.bytes, family: gw.family });
  }
  if (r.dhcp) steps.push({ op: 'dhcp', ifname: cif, request: r.dhcp });
  if (asideLink) steps.push({ op: 'delete-host-link', link: asideLink });
  return { guestPath: o.guestPath, containerInterface: cif, hostInterface, steps };
}
