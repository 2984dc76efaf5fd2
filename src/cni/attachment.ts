/**
 * ADD, DEL and CHECK: the attachments themselves, over the pipework Session
 * API (host netns = the plugin's own, guest = CNI_NETNS). Loaded only for
 * these commands: it brings in the netlink library and the native addon.
 */
import { Session } from '../session';
import type { AttachResult } from '../exec/attach';
import type { AttachRequest } from '../plan/attach';
import { MAX_IFNAME } from '../addressing/ifname';
import { RtnlSocket } from '../netlink/socket';
import { refusedWith } from '../netlink/error';
import { EEXIST, ENODEV } from '../netlink/errno';
import { createBridge } from '../netlink/kinds/bridge';
import { type KindName, kindData } from '../netlink/kinds';
import { deleteLink, findLink, setLink, type Link } from '../netlink/link';
import { readAddresses } from '../netlink/address';
import { readRoutes } from '../netlink/route';
import { AF_INET, AF_INET6, ARPHRD_INFINIBAND } from '../netlink/constants';
import type { Guest } from '../guest';
import { parseCidr, parseIp } from '../addressing';
import { CniError, ErrorCode } from './errors';
import type { Attachment, Dns, NetConf, Result, ResultInterface, ResultIp } from './config';
import type { CniCall } from './delegate';
import { ipamOf } from './ipam';
import {
  addRouteRequest, hasRoute, openNetns, openNetnsIfPresent, parseRoute, type ParsedRoute,
} from './netns';

/** Mode dummy: a host interface name that makes the library create a dummy link in the container. */
export const DUMMY_HOST = 'dummy-pipework';

/** The link kind each mode leaves in the container. */
const CONTAINER_KIND: Record<NetConf['mode'], KindName> = { bridge: 'veth', macvlan: 'macvlan', vlan: 'macvlan', ipoib: 'ipoib', dummy: 'dummy' };

const invalid = (msg: string, details = '') => new CniError(ErrorCode.InvalidConfig, msg, details);

/** The host interface a mode works on: its bridge, its master, or the name that makes the library create a dummy. */
const hostInterfaceOf = (conf: NetConf): string => (conf.mode === 'bridge' ? conf.bridge! : conf.mode === 'dummy' ? DUMMY_HOST : conf.master!);

/**
 * The host interface for the library (`link`: it as just looked up),
 * checked so that the library's own choice (bridge -> veth, physical ->
 * macvlan, IPoIB -> child, absent dummy* -> dummy) is the mode asked for.
 * Mode bridge: the bridge is created when absent (any name), up, with a MAC
 * of its own, and never removed again (other containers share it); it comes
 * back too, for the attach not to look it up again.
 */
async function prepareHost(host: RtnlSocket, conf: NetConf, link: Link | undefined): Promise<{ name: string; bridge?: Link }> {
  switch (conf.mode) {
    case 'bridge': {
      const name = conf.bridge!;
      if (!link) {
        try {
          // A MAC of its own: a bridge without one takes its ports' lowest, which changes as containers come and go.
          await host.request(createBridge({ name, up: true, address: randomMac() }));
        } catch (e) {
          // Another ADD made it meanwhile: fine, if it is a bridge.
          if (!refusedWith(e, EEXIST)) throw e;
        }
        link = await findLink(host, name);
        if (!link) throw new CniError(ErrorCode.TryAgainLater, `bridge ${name} vanished right after it was created`);
      }
      if (link.kind !== 'bridge') throw invalid(`${name} exists and is not a Linux bridge (${link.kind ?? 'a physical interface'})`, 'mode bridge needs a Linux bridge, or a name that is free');
      if (!link.up) {
        await host.request(setLink(link.index, { up: true }, name));
        link = { ...link, up: true };
      }
      return { name, bridge: link };
    }
    case 'macvlan':
    case 'vlan':
    case 'ipoib': {
      const master = conf.master!;
      if (!link) throw invalid(`master ${master} not found on the host`);
      const ib = link.hwType === ARPHRD_INFINIBAND;
      if (conf.mode === 'ipoib' && !ib) throw invalid(`master ${master} is not an IPoIB interface`);
      if (conf.mode !== 'ipoib') {
        if (ib) throw invalid(`master ${master} is an IPoIB interface: use mode ipoib`);
        if (link.kind === 'bridge' || link.kind === 'openvswitch')
          throw invalid(`master ${master} is a${link.kind === 'bridge' ? ' Linux' : 'n Open vSwitch'} bridge: use mode bridge, or a master that is not a bridge`);
        if (conf.mode === 'vlan' && Buffer.byteLength(`${master}.${conf.vlan}`) > MAX_IFNAME)
          throw invalid(`the VLAN link name ${master}.${conf.vlan} would be longer than ${MAX_IFNAME} characters`);
      }
      return { name: master };
    }
    case 'dummy':
      if (link) throw invalid(`a host interface named ${DUMMY_HOST} exists: mode dummy needs that name free`);
      return { name: DUMMY_HOST };
  }
}

/** A random locally administered unicast MAC. */
function randomMac(): Buffer {
  const { randomBytes }: typeof import('node:crypto') = require('node:crypto');
  const mac = randomBytes(6);
  mac[0] = (mac[0] & 0xfe) | 0x02;
  return mac;
}

/** What the library is asked for. */
function attachRequest(conf: NetConf, hostInterface: string, ifname: string, addresses: string[]): AttachRequest {
  return {
    hostInterface,
    containerInterface: ifname,
    addresses,
    mac: conf.mac,
    vlan: conf.mode === 'vlan' ? String(conf.vlan) : conf.mode === 'ipoib' ? conf.pkey : undefined,
    macvlanMode: conf.macvlanMode,
    announce: conf.announce,
    nodad: conf.nodad,
  };
}

/** The first gateway of each family among the IPAM ips (for routes without `gw`). */
function gatewaysOf(ips: ResultIp[]): { 4?: Buffer; 6?: Buffer } {
  const out: { 4?: Buffer; 6?: Buffer } = {};
  for (const ip of ips) {
    if (!ip.gateway) continue;
    const gw = parseIp(ip.gateway, 'gateway');
    out[gw.family] ??= gw.bytes;
  }
  return out;
}

/**
 * The links of ADD and DEL are made and removed at most KERNEL_TURNS calls at
 * a time, in arrival order. The kernel takes one lock (rtnl) for that work
 * anyway; a daemon serving a burst would otherwise interleave every call step
 * by step and finish them all together at the end, where in turn the first
 * pods are ready first for the same total. Two, so the JavaScript of one
 * overlaps the kernel's work on the other. (The plugin binary makes one call.)
 */
const KERNEL_TURNS = 2;
let turnsTaken = 0;
const waitingForTurn: (() => void)[] = [];

async function inTurn<T>(fn: () => Promise<T>): Promise<T> {
  if (turnsTaken < KERNEL_TURNS) turnsTaken++;
  else await new Promise<void>((r) => waitingForTurn.push(r));
  try {
    return await fn();
  } finally {
    // The turn passes to the next in line, or is given back.
    const next = waitingForTurn.shift();
    if (next) next();
    else turnsTaken--;
  }
}

/** ADD: IPAM first (addresses), then the link with its addresses in one attach, then MTU and routes. */
export async function add(conf: NetConf, a: Attachment, call: CniCall): Promise<Result> {
  const ipam = ipamOf(conf, a, call);
  const guest = openNetns(a.netns);
  const session = call.session ?? new Session();
  const host = RtnlSocket.open();
  let guestSock: RtnlSocket | undefined;
  let allocated = false;
  let attached = false;
  try {
    guestSock = RtnlSocket.open(guest.fd);
    const [existing, hostLink] = await Promise.all([findLink(guestSock, a.ifname), findLink(host, hostInterfaceOf(conf))]);
    if (existing) throw new CniError(ErrorCode.Internal, `interface ${a.ifname} already exists in ${a.netns}`);
    const { name: hostInterface, bridge: bridgeNow } = await prepareHost(host, conf, hostLink);

    let ipamResult: Result = { cniVersion: conf.cniVersion };
    if (ipam) {
      try {
        ipamResult = await ipam.add();
        allocated = true;
      } catch (e) {
        // Spec, section 4: a delegated plugin that failed on ADD is called again with DEL.
        await ipam.del().catch(() => undefined);
        throw e;
      }
    }
    const ips = ipamResult.ips ?? [];
    for (const ip of ips) {
      try {
        parseCidr(ip.address);
      } catch (e) {
        throw new CniError(ErrorCode.InvalidConfig, `${ipam!.type} returned an invalid address ${JSON.stringify(ip.address)}`, (e as Error).message);
      }
    }
    const missing = conf.requestedIps.filter((want) => !ips.some((ip) => sameIp(ip.address, want)));
    if (missing.length)
      throw new CniError(ErrorCode.Internal, `${ipam!.type} did not assign the IP addresses asked for: ${missing.join(', ')}`,
        `it assigned ${ips.map((ip) => ip.address).join(', ') || 'none'}; CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips are read by the IPAM plugin`);
    const routes = dedupe((ipamResult.routes ?? []).map((r) => parseRoute(r, gatewaysOf(ips))));

    const sock = guestSock;
    return await inTurn(async () => {
      // The bridge as just seen: the attach plans from it without looking again (and does look when the kernel disagrees).
      const r = await session.attachOnto(bridgeNow, guest, attachRequest(conf, hostInterface, a.ifname, ips.map((ip) => ip.address)));
      attached = true;
      const cif = r.containerInterface;
      // Mode bridge: the veth's host end, and the bridge (whose MAC may have changed with its first port).
      const [hostVeth, bridge] = conf.mode === 'bridge'
        ? await Promise.all([findLink(host, r.hostInterface!), findLink(host, conf.bridge!)])
        : [undefined, undefined];
      if (conf.mtu !== undefined && conf.mtu !== cif.mtu) {
        // The library gives a veth its bridge's MTU: the configuration's is set on both ends afterwards.
        await sock.request(setLink(cif.index, { mtu: conf.mtu }, `${a.ifname} mtu`));
        if (hostVeth) await host.request(setLink(hostVeth.index, { mtu: conf.mtu }, `${hostVeth.name} mtu`));
      }
      if (routes.length) await sock.all(routes.map((p) => addRouteRequest(p, cif.index, a.ifname)));
      return buildResult(conf, a, r, ipamResult, hostVeth, bridge);
    });
  } catch (e) {
    if (attached) await (conf.mode === 'vlan' ? session.unplug(guest, a.ifname) : session.detach(guest, a.ifname)).catch(() => undefined);
    if (allocated) await ipam!.del().catch(() => undefined);
    throw e;
  } finally {
    guestSock?.close();
    host.close();
    if (!call.session) session.close();
    guest.close();
  }
}

/** True when the address of `cidr` is `ip` (texts of one address can differ: 2001:db8::1, 2001:DB8:0::1). */
function sameIp(cidr: string, ip: string): boolean {
  return parseCidr(cidr).bytes.equals(parseIp(ip, 'IP').bytes);
}

function dedupe(routes: ParsedRoute[]): ParsedRoute[] {
  const seen = new Set<string>();
  return routes.filter((p) => {
    const key = `${p.family}|${p.dst.toString('hex')}/${p.dstLen}|${p.gateway?.toString('hex') ?? ''}|${p.route.table ?? ''}|${p.route.priority ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The ADD result: host interfaces first (bridge, veth host end) then the
 * container's, ips pointing at it; merged after a prevResult when chained.
 */
function buildResult(conf: NetConf, a: Attachment, r: AttachResult, ipam: Result, hostVeth?: Link, bridge?: Link): Result {
  const prev = conf.prevResult;
  const interfaces: ResultInterface[] = [...(prev?.interfaces ?? [])];
  if (bridge) interfaces.push({ name: bridge.name, mac: bridge.mac });
  if (hostVeth) interfaces.push({ name: hostVeth.name, mac: hostVeth.mac });
  const index = interfaces.length;
  interfaces.push({
    name: a.ifname,
    ...(r.containerInterface.mac ? { mac: r.containerInterface.mac } : {}),
    // `mtu` of an interface is 1.1.0's.
    ...(conf.cniVersion !== '1.0.0' ? { mtu: conf.mtu ?? r.containerInterface.mtu } : {}),
    sandbox: a.netns,
  });
  const ips = [...(prev?.ips ?? []), ...(ipam.ips ?? []).map((ip) => ({ ...ip, interface: index }))];
  const routes = [...(prev?.routes ?? []), ...(ipam.routes ?? [])];
  // The configuration's DNS if it names servers (as the reference bridge plugin does), else IPAM's, else prevResult's.
  const nonEmpty = (d?: Dns) => (d && Object.values(d).some((v) => (Array.isArray(v) ? v.length > 0 : !!v)) ? d : undefined);
  const dns = (conf.dns?.nameservers?.length ? conf.dns : undefined) ?? nonEmpty(ipam.dns) ?? nonEmpty(prev?.dns);
  return {
    cniVersion: conf.cniVersion,
    interfaces,
    ...(ips.length ? { ips } : {}),
    ...(routes.length ? { routes } : {}),
    ...(dns ? { dns } : {}),
  };
}

/**
 * DEL: the container interface goes (a veth takes its host end along; mode
 * vlan also drops the `<master>.<vid>` link with its last user), then the
 * IPAM release. A netns or interface that is gone already is success, and an
 * interface of that name that this mode did not make is left alone.
 */
export async function del(conf: NetConf, a: Attachment, call: CniCall): Promise<void> {
  const errors: unknown[] = [];
  let guest: Guest | undefined;
  try {
    guest = openNetnsIfPresent(a.netns);
    if (guest) {
      const session = call.session ?? new Session();
      try {
        const sock = RtnlSocket.open(guest.fd);
        let link: Link | undefined;
        try {
          link = await findLink(sock, a.ifname);
        } finally {
          sock.close();
        }
        if (link && link.kind === CONTAINER_KIND[conf.mode]) {
          const g = guest;
          await inTurn(() => (conf.mode === 'vlan' ? session.unplug(g, a.ifname) : session.detach(g, a.ifname)));
        }
      } finally {
        if (!call.session) session.close();
      }
    }
    // The netns is gone but may still be torn down by the kernel (asynchronously, veth and all): the veth's host end goes now.
    else if (conf.mode === 'bridge') await deleteHostVeth(conf, a);
  } catch (e) {
    errors.push(e);
  } finally {
    guest?.close();
  }
  try {
    await ipamOf(conf, a, call)?.del();
  } catch (e) {
    errors.push(e);
  }
  if (errors.length) throw errors[0];
}

/**
 * DEL without a netns, mode bridge: the veth host end that prevResult lists
 * just before the container interface, deleted if it is still there with the
 * same name and MAC as a veth port of our bridge (a name alone could be a new
 * container's: names derive from netns inode numbers, which get reused).
 */
async function deleteHostVeth(conf: NetConf, a: Attachment): Promise<void> {
  const list = conf.prevResult?.interfaces ?? [];
  const i = list.findIndex((x) => x.name === a.ifname && x.sandbox);
  const veth = i >= 2 && list[i - 2].name === conf.bridge && !list[i - 1].sandbox ? list[i - 1] : undefined;
  if (!veth?.mac) return;
  const host = RtnlSocket.open();
  try {
    const [link, bridge] = await Promise.all([findLink(host, veth.name), findLink(host, conf.bridge!)]);
    if (!link || !bridge || link.kind !== 'veth' || link.master !== bridge.index || link.mac?.toLowerCase() !== veth.mac.toLowerCase()) return;
    try {
      await host.request(deleteLink(link.index, link.name));
    } catch (e) {
      if (!refusedWith(e, ENODEV)) throw e;
    }
  } finally {
    host.close();
  }
}

const fail = (msg: string, details = '') => new CniError(ErrorCode.Internal, msg, details);

/**
 * CHECK: IPAM's CHECK, then the container interface of prevResult exists in
 * CNI_NETNS with its kind (a macvlan in its mode), MAC and addresses; prevResult's routes exist; in
 * mode bridge the veth's host end is still a port of the bridge.
 */
export async function check(conf: NetConf, a: Attachment, call: CniCall): Promise<void> {
  const prev = conf.prevResult;
  if (!prev) throw invalid('required prevResult missing', 'CHECK needs the result of the ADD as prevResult');
  await ipamOf(conf, a, call)?.check();
  const interfaces = prev.interfaces ?? [];
  const index = interfaces.findIndex((i) => i.name === a.ifname && i.sandbox === a.netns);
  if (index < 0) throw invalid(`prevResult lists no interface ${a.ifname} in ${a.netns}`);
  const expected = interfaces[index];

  const guest = openNetns(a.netns);
  const sock = RtnlSocket.open(guest.fd);
  const host = RtnlSocket.open();
  try {
    const link = await findLink(sock, a.ifname);
    if (!link) throw fail(`interface ${a.ifname} not found in ${a.netns}`);
    const kind = CONTAINER_KIND[conf.mode];
    if (link.kind !== kind) throw fail(`interface ${a.ifname} in ${a.netns} is a ${link.kind ?? 'physical'} link, not a ${kind}`);
    if (kind === 'macvlan') {
      const mode = kindData(link, 'macvlan')?.mode;
      const want = conf.macvlanMode ?? 'bridge';
      if (mode !== want) throw fail(`interface ${a.ifname} in ${a.netns} is a macvlan in mode ${mode}, not ${want}`);
    }
    if (expected.mac && link.mac?.toLowerCase() !== expected.mac.toLowerCase())
      throw fail(`interface ${a.ifname} has MAC ${link.mac}, expected ${expected.mac}`);
    if (!link.up) throw fail(`interface ${a.ifname} in ${a.netns} is down`);

    const want = (prev.ips ?? []).filter((ip) => ip.interface === index);
    if (want.length) {
      const have = (await readAddresses(sock)).filter((row) => row.index === link.index);
      for (const ip of want) {
        const c = parseCidr(ip.address);
        const family = c.family === 4 ? AF_INET : AF_INET6;
        if (!have.some((row) => row.family === family && row.prefixLen === c.prefixLen && c.bytes.equals(row.address)))
          throw fail(`address ${ip.address} not found on ${a.ifname} in ${a.netns}`);
      }
    }
    const routes = (prev.routes ?? []).map((r) => parseRoute(r, gatewaysOf(prev.ips ?? [])));
    if (routes.length) {
      const rows = { 4: routes.some((p) => p.family === 4) ? await readRoutes(sock, AF_INET) : [], 6: routes.some((p) => p.family === 6) ? await readRoutes(sock, AF_INET6) : [] };
      for (const p of routes) if (!hasRoute(rows[p.family], p)) throw fail(`route ${p.route.dst}${p.route.gw ? ` via ${p.route.gw}` : ''} not found in ${a.netns}`);
    }

    if (conf.mode === 'bridge') {
      const bridge = await findLink(host, conf.bridge!);
      if (!bridge || bridge.kind !== 'bridge') throw fail(`bridge ${conf.bridge} not found on the host`);
      // IFLA_LINK of the container end: the host end's index in our netns.
      const peer = link.parent ? await findLink(host, link.parent) : undefined;
      if (!peer || peer.kind !== 'veth') throw fail(`the host end of ${a.ifname} is gone`);
      if (peer.master !== bridge.index) throw fail(`the host end ${peer.name} of ${a.ifname} is not a port of bridge ${conf.bridge}`);
      const listed = interfaces.find((i) => i.name === peer.name && !i.sandbox);
      if (listed?.mac && peer.mac?.toLowerCase() !== listed.mac.toLowerCase()) throw fail(`host interface ${peer.name} has MAC ${peer.mac}, expected ${listed.mac}`);
    }
  } finally {
    host.close();
    sock.close();
    guest.close();
  }
}
