/**
 * The Docker remote network driver's logic (libnetwork's remote driver API),
 * apart from HTTP: networks and endpoints as Docker describes them, the
 * links they need made in the host netns over rtnetlink, and the state that
 * lets a restarted plugin pick up where it stopped.
 *
 * Modes (`-o mode=`; default from what `parent` is):
 * - bridge: `parent` is a Linux bridge (created, up, when absent; deleted
 *   with the last network that made it, once it has no port left). Join makes
 *   a veth: host end `vpw<id>` enslaved and up, the other end `pwtmp<id>` left
 *   in the host netns for Docker to move into the container as eth<N>.
 * - ovs: `parent` is an Open vSwitch bridge: the same veth, the host end an
 *   OVS port (with `tag=<vlan>` when a VLAN is asked for).
 * - macvlan: Join makes a macvlan `pwtmp<id>` on `parent` (or on
 *   `<parent>.<vlan>`, created when absent and deleted with the network).
 */
import { createHash, randomBytes } from 'node:crypto';
import { PipeworkError } from '../errors';
import { parseCidr, parseMac } from '../addressing';
import { refusedWith } from '../netlink/error';
import { ENODEV } from '../netlink/errno';
import { type Link, deleteLink, dumpLinks, findLink } from '../netlink/link';
import { RtnlSocket } from '../netlink/socket';
import { createBridge } from '../netlink/kinds/bridge';
import { MACVLAN_MODES, type MacvlanMode, createMacvlan } from '../netlink/kinds/macvlan';
import { createVeth } from '../netlink/kinds/veth';
import { createVlan } from '../netlink/kinds/vlan';
import { kindData } from '../netlink/kinds';
import { ovsRunning, runProgram } from '../run';
import { JsonStateFile } from './state';
import { isOvsBridge } from '../exec/observe';
import { UndoLog } from '../exec/undo';
import { checkIfname } from '../plan/names';


/** A refusal sent back to Docker as `{"Err": message}` with this HTTP status. */
export class DriverError extends Error {
  constructor(message: string, readonly status = 500) {
    super(message);
    this.name = 'DriverError';
  }
}

export type Mode = 'bridge' | 'ovs' | 'macvlan';

export interface NetworkRecord {
  id: string;
  mode: Mode;
  parent: string;
  vlan?: number;
  /** macvlan over a VLAN: the `<parent>.<vid>` link the macvlans sit on. */
  lower?: string;
  mtu?: number;
  macvlanMode?: MacvlanMode;
  /** IPv4/IPv6 gateway (no prefix length) from Docker's IPAM, given back in Join. */
  gateway?: string;
  gatewayIPv6?: string;
  internal?: boolean;
  /** We created `parent` (a Linux bridge) / `lower` (a VLAN link): ours to delete. */
  createdBridge?: boolean;
  createdVlan?: boolean;
  created: string;
}

export interface EndpointRecord {
  id: string;
  networkId: string;
  address?: string;
  addressIPv6?: string;
  mac: string;
  /** The MAC was ours (Docker gave none). */
  macGenerated: boolean;
  /** Links made by Join (until Leave). */
  srcName?: string;
  hostName?: string;
  sandboxKey?: string;
}

export interface PluginState {
  version: 1;
  networks: Record<string, NetworkRecord>;
  endpoints: Record<string, EndpointRecord>;
}

/** What Docker sends; every field is checked before use. */
type Json = Record<string, unknown>;

/** Generic options we understand (`docker network create -o KEY=VALUE`). */
const OPTION_KEYS = ['parent', 'mode', 'vlan', 'mtu', 'macvlan_mode', 'com.docker.network.driver.mtu'];

function str(req: Json, key: string): string {
  const v = req[key];
  if (typeof v !== 'string' || v === '') throw new DriverError(`missing ${key}`);
  return v;
}

function optStr(obj: unknown, key: string): string | undefined {
  if (typeof obj !== 'object' || obj === null) return undefined;
  const v = (obj as Json)[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new DriverError(`${key} must be a string`);
  return v;
}

/** Docker's ids are hex; anything else is hashed so that link names stay plain. */
function shortId(id: string, n: number): string {
  const plain = /^[0-9a-zA-Z]+$/.test(id) ? id : createHash('md5').update(id).digest('hex');
  return plain.slice(0, n);
}

/** The link names of an endpoint: both at most 15 characters. */
export function linkNames(endpointId: string): { srcName: string; hostName: string } {
  return { srcName: `pwtmp${shortId(endpointId, 10)}`, hostName: `vpw${shortId(endpointId, 12)}` };
}

const stripPrefix = (cidr: string) => cidr.split('/')[0];

/** A locally administered unicast MAC: 02:42 + the IPv4 address as Docker's bridge does, else random. */
function generateMac(address?: string): string {
  const b = Buffer.alloc(6);
  const v4 = address && /^(\d+)\.(\d+)\.(\d+)\.(\d+)\//.exec(address);
  if (v4) {
    b[0] = 0x02;
    b[1] = 0x42;
    for (let i = 0; i < 4; i++) b[2 + i] = Number(v4[1 + i]);
  } else {
    randomBytes(6).copy(b);
    b[0] = (b[0] & 0xfc) | 0x02;
  }
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export class Driver {
  private state: PluginState;

  private constructor(private readonly sock: RtnlSocket, private readonly file: JsonStateFile<PluginState>) {
    this.state = file.load();
    if (this.state.version !== 1) throw new PipeworkError(`the state file ${file.path} has version ${this.state.version}, not 1`);
  }

  /** Loads the state (refusing a damaged file) and opens the host's netlink socket. */
  static open(statePath: string): Driver {
    const file = new JsonStateFile<PluginState>(statePath, () => ({ version: 1, networks: {}, endpoints: {} }));
    const sock = RtnlSocket.open();
    try {
      return new Driver(sock, file);
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  close(): void {
    this.sock.close();
  }

  /** A copy of the state, for tests and EndpointOperInfo. */
  snapshot(): PluginState {
    return JSON.parse(JSON.stringify(this.state));
  }

  private save(): void {
    this.file.save(this.state);
  }

  // -------------------------------------------------------------------------
  // Kernel helpers

  /** Deletes the link if it is there; true when it was. */
  private async deleteIfPresent(name: string): Promise<boolean> {
    const l = await findLink(this.sock, name);
    if (!l) return false;
    try {
      await this.sock.request(deleteLink(l.index, name));
    } catch (e) {
      if (refusedWith(e, ENODEV)) return false; // gone meanwhile
      throw e;
    }
    return true;
  }

  private async portCount(bridge: Link): Promise<number> {
    return (await this.sock.request(dumpLinks(bridge.index))).length;
  }


  // -------------------------------------------------------------------------
  // Protocol methods (Docker's names); each returns the JSON reply

  activate(): Json {
    return { Implements: ['NetworkDriver'] };
  }

  getCapabilities(): Json {
    return { Scope: 'local', ConnectivityScope: 'local' };
  }

  async createNetwork(req: Json): Promise<Json> {
    const id = str(req, 'NetworkID');
    if (this.state.networks[id]) return {}; // asked again (Docker retries): already made
    const options = (req.Options ?? {}) as Json;
    if (typeof options !== 'object' || Array.isArray(options)) throw new DriverError('Options must be an object');
    const generic = options['com.docker.network.generic'] ?? {};
    if (typeof generic !== 'object' || generic === null || Array.isArray(generic)) throw new DriverError('com.docker.network.generic must be an object');
    for (const key of Object.keys(generic)) {
      if (!OPTION_KEYS.includes(key) && !key.startsWith('com.docker.'))
        throw new DriverError(`unknown option ${key} (pipework takes: parent, mode, vlan, mtu, macvlan_mode)`);
    }
    const parent = optStr(generic, 'parent');
    if (!parent) throw new DriverError('option parent is required: -o parent=BRIDGE (bridge mode) or -o parent=INTERFACE (macvlan mode)');
    checkIfname(parent, 'parent');
    const modeOpt = optStr(generic, 'mode');
    if (modeOpt !== undefined && !['bridge', 'macvlan'].includes(modeOpt)) throw new DriverError(`mode ${modeOpt} is not bridge or macvlan`);
    const vlanText = optStr(generic, 'vlan');
    let vlan: number | undefined;
    if (vlanText !== undefined) {
      if (!/^\d+$/.test(vlanText) || Number(vlanText) < 1 || Number(vlanText) > 4094) throw new DriverError(`vlan ${vlanText} is not in 1-4094`);
      vlan = Number(vlanText);
    }
    const mtuText = optStr(generic, 'mtu') ?? optStr(generic, 'com.docker.network.driver.mtu');
    let mtu: number | undefined;
    if (mtuText !== undefined) {
      if (!/^\d+$/.test(mtuText) || Number(mtuText) < 68 || Number(mtuText) > 65535) throw new DriverError(`mtu ${mtuText} is not in 68-65535`);
      mtu = Number(mtuText);
    }
    const mvText = optStr(generic, 'macvlan_mode');
    if (mvText !== undefined && !(mvText in MACVLAN_MODES)) throw new DriverError(`macvlan_mode ${mvText} is not one of ${Object.keys(MACVLAN_MODES).join(', ')}`);
    const gateway = ipamGateway(req.IPv4Data, 'IPv4Data');
    const gatewayIPv6 = ipamGateway(req.IPv6Data, 'IPv6Data');
    const internal = options['com.docker.network.internal'] === true || options['com.docker.network.internal'] === 'true';

    const undo = new UndoLog();
    const net: NetworkRecord = { id, mode: 'bridge', parent, gateway, gatewayIPv6, internal: internal || undefined, created: new Date().toISOString() };
    if (mtu !== undefined) net.mtu = mtu;
    if (vlan !== undefined) net.vlan = vlan;
    if (mvText !== undefined) net.macvlanMode = mvText as MacvlanMode;
    try {
      const existing = await findLink(this.sock, parent);
      // An OVS bridge of the userspace datapath has no kernel link of its name: ask OVS before creating anything.
      const ovs = modeOpt !== 'macvlan' && existing?.kind !== 'bridge' && (await isOvsBridge(parent, existing));
      if (ovs) {
        net.mode = 'ovs';
      } else if (!existing) {
        if (modeOpt === 'macvlan') throw new DriverError(`parent interface ${parent} does not exist`);
        if (vlan !== undefined) throw new DriverError('VLAN configuration currently unsupported for Linux bridge.');
        await this.sock.request(createBridge({ name: parent, up: true }));
        undo.add(() => this.deleteIfPresent(parent));
        net.createdBridge = true;
      } else if (modeOpt === 'macvlan') {
        net.mode = 'macvlan';
      } else if (existing.kind === 'bridge') {
        if (vlan !== undefined) throw new DriverError('VLAN configuration currently unsupported for Linux bridge.');
      } else if (modeOpt === 'bridge') {
        throw new DriverError(`${parent} is not a bridge (mode=bridge needs a Linux or Open vSwitch bridge; mode=macvlan plugs into an interface)`);
      } else {
        net.mode = 'macvlan';
      }
      if (net.mode === 'macvlan' && vlan !== undefined) {
        const lower = checkIfname(`${parent}.${vlan}`, 'VLAN interface');
        const l = await findLink(this.sock, lower);
        if (!l) {
          await this.sock.request(createVlan({ name: lower, parent: existing!.index, mtu: existing!.mtu, up: true }, vlan));
          undo.add(() => this.deleteIfPresent(lower));
          net.createdVlan = true;
        } else if (l.kind !== 'vlan' || kindData(l, 'vlan')?.id !== vlan) {
          throw new DriverError(`${lower} exists and is not a VLAN interface for id ${vlan}`);
        }
        net.lower = lower;
      }
      this.state.networks[id] = net;
      this.save();
    } catch (e) {
      delete this.state.networks[id];
      throw await undo.rollBack(e);
    }
    return {};
  }

  async deleteNetwork(req: Json): Promise<Json> {
    const id = str(req, 'NetworkID');
    const net = this.network(id);
    for (const ep of Object.values(this.state.endpoints)) {
      if (ep.networkId === id) await this.removeEndpointLinks(net, ep);
    }
    const others = Object.values(this.state.networks).filter((n) => n.id !== id);
    if (net.createdVlan && net.lower && !others.some((n) => n.lower === net.lower)) await this.deleteIfPresent(net.lower);
    if (net.createdBridge && !others.some((n) => n.parent === net.parent)) {
      const br = await findLink(this.sock, net.parent);
      if (br?.kind === 'bridge' && (await this.portCount(br)) === 0) await this.deleteIfPresent(net.parent);
    }
    for (const ep of Object.values(this.state.endpoints)) if (ep.networkId === id) delete this.state.endpoints[ep.id];
    delete this.state.networks[id];
    this.save();
    return {};
  }

  async createEndpoint(req: Json): Promise<Json> {
    const networkId = str(req, 'NetworkID');
    const id = str(req, 'EndpointID');
    this.network(networkId);
    const known = this.state.endpoints[id];
    if (known) {
      if (known.networkId !== networkId) throw new DriverError(`endpoint ${id} already exists on network ${known.networkId}`);
      return known.macGenerated ? { Interface: { MacAddress: known.mac } } : {};
    }
    const iface = req.Interface ?? {};
    if (typeof iface !== 'object' || Array.isArray(iface)) throw new DriverError('Interface must be an object');
    const address = optStr(iface, 'Address');
    const addressIPv6 = optStr(iface, 'AddressIPv6');
    const givenMac = optStr(iface, 'MacAddress');
    try {
      if (address) parseCidr(address);
      if (addressIPv6) parseCidr(addressIPv6);
      if (givenMac) parseMac(givenMac);
    } catch (e) {
      throw new DriverError((e as Error).message.split('\n')[0]);
    }
    const mac = givenMac ?? generateMac(address);
    this.state.endpoints[id] = { id, networkId, address, addressIPv6, mac: mac.toLowerCase(), macGenerated: !givenMac };
    this.save();
    return givenMac ? {} : { Interface: { MacAddress: mac } };
  }

  async deleteEndpoint(req: Json): Promise<Json> {
    const networkId = str(req, 'NetworkID');
    const ep = this.endpoint(networkId, str(req, 'EndpointID'));
    const net = this.state.networks[networkId];
    if (net) await this.removeEndpointLinks(net, ep);
    delete this.state.endpoints[ep.id];
    this.save();
    return {};
  }

  endpointOperInfo(req: Json): Json {
    const networkId = str(req, 'NetworkID');
    const ep = this.endpoint(networkId, str(req, 'EndpointID'));
    const net = this.network(networkId);
    const value: Record<string, string> = { mode: net.mode, parent: net.lower ?? net.parent, mac: ep.mac };
    if (ep.hostName && net.mode !== 'macvlan') value.host_interface = ep.hostName;
    if (net.vlan !== undefined) value.vlan = String(net.vlan);
    return { Value: value };
  }

  async join(req: Json): Promise<Json> {
    const networkId = str(req, 'NetworkID');
    const ep = this.endpoint(networkId, str(req, 'EndpointID'));
    const net = this.network(networkId);
    const sandboxKey = typeof req.SandboxKey === 'string' ? req.SandboxKey : undefined;
    const { srcName, hostName } = linkNames(ep.id);
    // Leftovers of an earlier Join that Docker never heard back from.
    await this.deleteIfPresent(srcName);
    if (net.mode !== 'macvlan') await this.deleteIfPresent(hostName);

    const parent = await findLink(this.sock, net.lower ?? net.parent);
    if (!parent && net.mode !== 'ovs') throw new DriverError(`${net.lower ?? net.parent} (parent of network ${shortId(net.id, 12)}) does not exist`);
    if (net.mode === 'bridge' && parent!.kind !== 'bridge') throw new DriverError(`${net.parent} is no longer a bridge`);
    const mtu = net.mtu ?? parent?.mtu;
    const address = parseMac(ep.mac);
    const undo = new UndoLog();
    try {
      if (net.mode === 'macvlan') {
        await this.sock.request(createMacvlan({ name: srcName, parent: parent!.index, mtu, address }, net.macvlanMode ?? 'bridge'));
        undo.add(() => this.deleteIfPresent(srcName));
      } else {
        const master = net.mode === 'bridge' ? parent!.index : undefined;
        await this.sock.request(createVeth({ name: hostName, mtu, master, up: true, queues: 1 }, { name: srcName, mtu, address, queues: 1 }));
        undo.add(() => this.deleteIfPresent(hostName)); // its peer srcName goes with it
        if (net.mode === 'ovs') {
          await runProgram('ovs-vsctl', ['--may-exist', 'add-port', net.parent, hostName, ...(net.vlan ? [`tag=${net.vlan}`] : []),
            '--', 'set', 'Interface', hostName, `external-ids:pipework.endpoint=${ep.id}`]);
          undo.add(() => runProgram('ovs-vsctl', ['--if-exists', 'del-port', net.parent, hostName]));
        }
      }
      const before = { ...ep };
      undo.add(async () => { this.state.endpoints[ep.id] = before; });
      this.state.endpoints[ep.id] = { ...ep, srcName, hostName: net.mode === 'macvlan' ? undefined : hostName, sandboxKey };
      this.save();
    } catch (e) {
      throw await undo.rollBack(e);
    }
    const reply: Json = { InterfaceName: { SrcName: srcName, DstPrefix: 'eth' } };
    if (!net.internal && net.gateway) reply.Gateway = net.gateway;
    if (!net.internal && net.gatewayIPv6 && ep.addressIPv6) reply.GatewayIPv6 = net.gatewayIPv6;
    return reply;
  }

  async leave(req: Json): Promise<Json> {
    const networkId = str(req, 'NetworkID');
    const ep = this.endpoint(networkId, str(req, 'EndpointID'));
    const net = this.network(networkId);
    await this.removeEndpointLinks(net, ep);
    delete ep.srcName;
    delete ep.hostName;
    delete ep.sandboxKey;
    this.save();
    return {};
  }

  // -------------------------------------------------------------------------

  private network(id: string): NetworkRecord {
    const net = this.state.networks[id];
    if (!net) throw new DriverError(`network ${id} not found`);
    return net;
  }

  private endpoint(networkId: string, id: string): EndpointRecord {
    this.network(networkId);
    const ep = this.state.endpoints[id];
    if (!ep || ep.networkId !== networkId) throw new DriverError(`endpoint ${id} not found on network ${networkId}`);
    return ep;
  }

  /**
   * The endpoint's links, wherever Docker left them: the container end is
   * back in the host netns under its SrcName after the sandbox went (its
   * deletion takes a veth's host end too); or only the host end is left
   * (the container's netns died with the other end). Absent is fine.
   */
  private async removeEndpointLinks(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    const { srcName, hostName } = linkNames(ep.id);
    await this.deleteIfPresent(ep.srcName ?? srcName);
    if (net.mode !== 'macvlan') {
      await this.deleteIfPresent(ep.hostName ?? hostName);
      if (net.mode === 'ovs' && ovsRunning()) await runProgram('ovs-vsctl', ['--if-exists', 'del-port', net.parent, ep.hostName ?? hostName]);
    }
  }
}

/** The gateway (address only) of the first IPAM pool that has one. */
function ipamGateway(data: unknown, what: string): string | undefined {
  if (data === undefined || data === null) return undefined;
  if (!Array.isArray(data)) throw new DriverError(`${what} must be a list`);
  for (const pool of data) {
    const gw = optStr(pool, 'Gateway');
    if (!gw) continue;
    try {
      return parseCidr(gw.includes('/') ? gw : `${gw}/${gw.includes(':') ? 128 : 32}`).address;
    } catch {
      throw new DriverError(`${what}: invalid Gateway ${stripPrefix(gw)}`);
    }
  }
  return undefined;
}
