import { type Cidr, formatIp } from '../addressing';
import { formatMac } from '../netlink/link';
import type { MacvlanMode } from '../netlink/kinds/macvlan';
import { type DhcpRequest, dhcpCommandLine } from './dhcp';

/** A link in the host netns, known by name and, once it exists, by ifindex. */
export interface HostLink {
  name: string;
  index: number;
}

/**
 * One side effect of an attach, as plain data. The executor turns each into
 * netlink requests (or an ovs-vsctl call) and knows its undo; `renderStep`
 * prints it as the equivalent command for --dry-run.
 */
export type Step =
  | { op: 'create-bridge'; name: string }
  | { op: 'create-ovs-bridge'; name: string }
  /**
   * A down link with the veth host end's name, renamed out of the way (the undo gives its name back);
   * its veth peer too, if that is in the guest under the container interface's name (peerName).
   */
  | { op: 'move-aside-host-link'; link: HostLink; aside: string; peerName: string }
  /** The link moved aside, deleted once everything else is done (the original deletes it first). */
  | { op: 'delete-host-link'; link: HostLink }
  | { op: 'host-link-up'; link: HostLink }
  | { op: 'create-vlan'; parent: HostLink; name: string; vid: number; mtu: number }
  /** One more container on a VLAN link pipework made: its count lives in the link's alias. */
  | { op: 'vlan-user'; link: HostLink; users: number }
  /**
   * masterWas: an existing bridge's MAC and MTU, which a bridge left without ports loses (the undo gives them back).
   * hostAddrGenNone: the host end gets no IPv6 address (set in the same sendmsg, before it has carrier).
   */
  | {
    op: 'create-veth'; hostName: string; master?: HostLink; masterWas?: { mac?: string; mtu: number }; mtu: number; peerName: string;
    mac?: Buffer; hostAddrGenNone?: boolean;
  }
  | { op: 'ovs-add-port'; bridge: string; port: string; vlan?: number; externalIds: Record<string, string> }
  | { op: 'create-macvlan'; parent: HostLink; name: string; mode: MacvlanMode; mtu: number; mac?: Buffer }
  | { op: 'create-ipoib'; parent: HostLink; name: string; pkey?: number }
  | { op: 'create-dummy'; name: string; mac?: Buffer }
  | { op: 'move-link'; link: HostLink; name: string; mac?: Buffer }
  | { op: 'guest-link-up'; name: string }
  /** Converge: the MAC or MTU the container interface would have been created with. */
  | { op: 'set-guest-link'; name: string; mac?: Buffer; mtu?: number }
  | { op: 'add-address'; ifname: string; cidr: Cidr; broadcast?: Uint8Array; nodad: boolean }
  | { op: 'add-gateway-route'; ifname: string; gateway: Buffer; family: 4 | 6 }
  | { op: 'replace-default-route'; ifname: string; gateway: Buffer; family: 4 | 6 }
  /** Gratuitous ARP by the kernel itself: arp_notify on while the link comes up (or its MAC is set), then back as it was. */
  | { op: 'arp-notify'; ifname: string; enable: boolean }
  /**
   * A veth host end on a Linux bridge: its carrier applied now (ETHTOOL_GLINK), not when the kernel's
   * worker gets to it, so the port forwards before the announcement (the bridge drops what comes earlier).
   */
  | { op: 'port-carrier'; name: string }
  /** Gratuitous ARP once the bridge port forwards: the container interface's own MAC set again while arp_notify is on. */
  | { op: 'announce'; ifname: string }
  /** No IPv6 address generation on the container interface (addrgenmode none), before it comes up. */
  | { op: 'ipv6-off'; ifname: string }
  /** A DHCP client for the container interface, in the guest netns and a private mount namespace. */
  | { op: 'dhcp'; ifname: string; request: DhcpRequest };

/** An attach, fully decided: what to do, where, and what it will be called. */
export interface AttachPlan {
  /** How the guest is named in rendered commands (e.g. /proc/42/ns/net). */
  guestPath: string;
  containerInterface: string;
  /** The host-side link the plan creates (veth host end), if any. */
  hostInterface?: string;
  steps: Step[];
  /** With converge: whether the attachment is new, was completed, or was complete already. */
  status?: 'created' | 'repaired' | 'unchanged';
}

/** Where each kind of step acts: every kind there is (the fault-injection tests enumerate them from here). */
export const STEP_SIDE: Record<Step['op'], 'host' | 'guest'> = {
  'create-bridge': 'host',
  'create-ovs-bridge': 'host',
  'move-aside-host-link': 'host',
  'delete-host-link': 'host',
  'host-link-up': 'host',
  'create-vlan': 'host',
  'vlan-user': 'host',
  'create-veth': 'host',
  'ovs-add-port': 'host',
  'create-macvlan': 'host',
  'create-ipoib': 'host',
  'create-dummy': 'host',
  'move-link': 'host',
  'guest-link-up': 'guest',
  'set-guest-link': 'guest',
  'add-address': 'guest',
  'add-gateway-route': 'guest',
  'replace-default-route': 'guest',
  'arp-notify': 'guest',
  'port-carrier': 'host',
  announce: 'guest',
  'ipv6-off': 'guest',
  dhcp: 'host',
};

/** Whether a step acts inside the guest netns (else in the host's). */
export const inGuest = (step: Step): boolean => STEP_SIDE[step.op] === 'guest';

/**
 * The name a down link in the way of the veth host end is moved aside to,
 * until the attach is complete; its ifindex keeps it unique (15 characters at most).
 */
export const asideName = (index: number) => `pwold${index}`;

/**
 * The alias of a VLAN link pipework created, counting the containers on it:
 * unplug deletes the link when the last one goes (and never one it did not make).
 */
export const VLAN_USERS_PREFIX = 'pipework:vlan-users=';
/** The alias of a bridge an attach created (`gc --bridges` deletes it once it has no port left; never one it found). */
export const CREATED_BRIDGE_ALIAS = 'pipework:bridge';
export const vlanUsersAlias = (n: number) => `${VLAN_USERS_PREFIX}${n}`;
export function vlanUsers(alias: string | undefined): number | undefined {
  return alias?.startsWith(VLAN_USERS_PREFIX) ? Number(alias.slice(VLAN_USERS_PREFIX.length)) || 0 : undefined;
}

const mtuArg = (mtu: number) => (mtu ? ` mtu ${mtu}` : '');
const macArg = (mac?: Buffer) => (mac ? ` address ${formatMac(mac)}` : '');

/** The step as the `ip`/`ovs-vsctl` command that does the same thing. */
export function renderStep(step: Step, guestPath: string): string {
  const netns = `netns ${guestPath}`;
  const inNs = (cmd: string) => `nsenter --net=${guestPath} ${cmd}`;
  switch (step.op) {
    case 'create-bridge':
      return `ip link add name ${step.name} up type bridge && ip link set dev ${step.name} alias ${CREATED_BRIDGE_ALIAS}`;
    case 'create-ovs-bridge':
      return `ovs-vsctl add-br ${step.name}`;
    case 'move-aside-host-link':
      return `ip link set dev ${step.link.name} name ${step.aside}`;
    case 'delete-host-link':
      return `ip link del dev ${step.link.name}`;
    case 'host-link-up':
      return `ip link set dev ${step.link.name} up`;
    case 'create-vlan':
      return `ip link add link ${step.parent.name} name ${step.name}${mtuArg(step.mtu)} up type vlan id ${step.vid} && ip link set dev ${step.name} alias ${vlanUsersAlias(1)}`;
    case 'vlan-user':
      return `ip link set dev ${step.link.name} alias ${vlanUsersAlias(step.users + 1)}`;
    case 'create-veth':
      return `ip link add ${step.hostName}${mtuArg(step.mtu)}${step.master ? ` master ${step.master.name}` : ''} up` +
        ` type veth peer name ${step.peerName}${mtuArg(step.mtu)}${macArg(step.mac)} ${netns}` +
        (step.hostAddrGenNone ? ` && ip link set dev ${step.hostName} addrgenmode none` : '');
    case 'ovs-add-port':
      return `ovs-vsctl --if-exists del-port ${step.port} -- add-port ${step.bridge} ${step.port}${step.vlan ? ` tag=${step.vlan}` : ''} -- set Interface ${step.port} ` +
        Object.entries(step.externalIds).map(([k, v]) => `external-ids:${k}=${v}`).join(' ');
    case 'create-macvlan':
      return `ip link add link ${step.parent.name} name ${step.name}${mtuArg(step.mtu)}${macArg(step.mac)} ${netns} type macvlan mode ${step.mode}`;
    case 'create-ipoib':
      return `ip link add link ${step.parent.name} name ${step.name} ${netns} type ipoib` +
        (step.pkey !== undefined ? ` pkey 0x${step.pkey.toString(16)}` : '');
    case 'create-dummy':
      return `ip link add name ${step.name}${macArg(step.mac)} ${netns} type dummy`;
    case 'move-link':
      return `ip link set dev ${step.link.name} ${netns} name ${step.name}${macArg(step.mac)}`;
    case 'guest-link-up':
      return inNs(`ip link set dev ${step.name} up`);
    case 'set-guest-link':
      return inNs(`ip link set dev ${step.name}${macArg(step.mac)}${step.mtu ? mtuArg(step.mtu) : ''}`);
    case 'add-address': {
      const brd = step.broadcast ? ` brd ${formatIp(step.broadcast)}` : '';
      return inNs(`ip -${step.cidr.family} addr add ${step.cidr.address}/${step.cidr.prefixLen}${brd} dev ${step.ifname}${step.nodad ? ' nodad' : ''}`);
    }
    case 'add-gateway-route':
      return inNs(`ip -${step.family} route add ${formatIp(step.gateway)}/${step.family === 4 ? 32 : 128} dev ${step.ifname}`);
    case 'replace-default-route':
      return inNs(`ip -${step.family} route replace default via ${formatIp(step.gateway)} dev ${step.ifname}`);
    case 'dhcp':
      return step.request.client === 'dhcp'
        ? `docker run -d --rm --net container:${step.request.docker?.id ?? step.request.hostname} --cap-add NET_ADMIN busybox ${dhcpCommandLine(step.ifname, step.request).join(' ')}`
        : inNs(dhcpCommandLine(step.ifname, step.request).join(' '));
    case 'arp-notify':
      return inNs(`sysctl -w net.ipv4.conf.${step.ifname}.arp_notify=${step.enable ? '1' : '<previous value>'}`);
    case 'ipv6-off':
      return inNs(`ip link set dev ${step.ifname} addrgenmode none`);
    case 'port-carrier':
      return `ethtool ${step.name}`;
    case 'announce':
      return inNs(`ip link set dev ${step.ifname} address <its own address>`);
  }
}
