import {
  AF_INET, AF_INET6, IN6_ADDR_GEN_MODE_EUI64, IN6_ADDR_GEN_MODE_NONE, IPV4_DEVCONF_ARP_NOTIFY, NLM_F_ECHO,
} from '../netlink/constants';
import { type NetlinkError, refusedWith } from '../netlink/error';
import { EAFNOSUPPORT, EEXIST, EOPNOTSUPP, EXFULL } from '../netlink/errno';
import { PipeworkError } from '../errors';
import type { Reply, Request } from '../netlink/message';
import type { RtnlSocket } from '../netlink/socket';
import { addAddress, deleteAddress } from '../netlink/address';
import { routeRequest } from '../netlink/route';
import {
  type Link, deleteLink, deleteLinkByName, dumpLinks, getLinkByIndex, getLinkByName, linkParentOf, parseLink, setLink,
} from '../netlink/link';
import { BRIDGE_MAX_PORTS, createBridge } from '../netlink/kinds/bridge';
import { createDummy } from '../netlink/kinds/dummy';
import { createIpoib } from '../netlink/kinds/ipoib';
import { createMacvlan } from '../netlink/kinds/macvlan';
import { createVeth } from '../netlink/kinds/veth';
import { createVlan } from '../netlink/kinds/vlan';
import { type KindName, linkKind } from '../netlink/kinds';
import { type AttachPlan, CREATED_BRIDGE_ALIAS, type HostLink, type Step, inGuest, vlanUsersAlias } from '../plan/steps';
import { VlanUsersLock, changeVlanUsers, readVlanUsers, withVlanUsersLock } from './vlan-users';
import { Undo } from './undo';
import { AttachAborted, type ExecOptions, InjectedFault, type NetnsPair } from './context';
import { lookupLinks } from './observe';
import { MOVED_ALIAS_PREFIX } from '../plan/detach';
import { readFileSync } from 'node:fs';
import { native } from '../native';
import { runProgram } from '../run';
import type { DhcpOutcome } from './dhcp-client';

/** What an attach left in place. */
export interface AttachResult {
  guest: string;
  netns: string;
  containerInterface: { name: string; index: number; mac?: string; mtu: number };
  hostInterface?: string;
  addresses: string[];
  gateway?: string;
  /** With DHCP: the DNS servers of the lease, and where they were written (the guest's own resolv.conf). */
  dns?: string[];
  resolvConf?: string;
  /** With converge: the attachment is new, was completed, or was complete already. */
  status?: 'created' | 'repaired' | 'unchanged';
}

export interface AttachOptions extends ExecOptions {
  /**
   * When the attachment asked for exists already (the container interface,
   * of the right kind, on the requested bridge or parent), complete what is
   * missing instead of refusing it; a link that is something else is still refused.
   */
  converge?: boolean;
}

/** The container-side link as it ended up. */
export interface AttachOutcome {
  containerInterface: Link;
  hostInterface?: string;
  dhcp?: DhcpOutcome;
}

const family = (f: 4 | 6) => (f === 4 ? AF_INET : AF_INET6);

/** A refused link creation, said in terms of what the user can do about it. */
function creationError(kind: KindName, e: unknown): unknown {
  if (refusedWith(e, EOPNOTSUPP))
    return new PipeworkError(`This kernel cannot create ${kind} links (module ${linkKind(kind)?.module} not available): ${e.message}`);
  if (refusedWith(e, EXFULL))
    return new PipeworkError(`The bridge is full: Linux bridges hold at most ${BRIDGE_MAX_PORTS} ports (${e.message}); spread the containers over several bridges.`);
  return e;
}

/** Creates a link; a kernel without the kind gets a message that names it and its module. */
async function createLinkOf(sock: RtnlSocket, kind: KindName, req: Request): Promise<Reply[]> {
  try {
    return await sock.request(req);
  } catch (e) {
    throw creationError(kind, e);
  }
}

/** Turning IPv6 address generation off is refused where the link has no IPv6 state (MTU < 1280, IPv6 disabled at boot): nothing to turn off. */
const noIpv6State = (e?: NetlinkError) => e?.errno === EAFNOSUPPORT;

/**
 * Runs a plan. Each side effect registers its undo as soon as the kernel
 * confirms it; on any failure everything done so far is undone in reverse
 * and the original error is rethrown.
 */
export async function executeAttach(plan: AttachPlan, ns: NetnsPair, opts: ExecOptions = {}): Promise<AttachOutcome> {
  const undo = new Undo(ns);
  const created = new Map<string, number>(); // host links made by this plan: name -> ifindex
  const resolve = (l: HostLink) => (l.index || created.get(l.name) || 0);
  let guestLink: Link | undefined;
  let dhcp: DhcpOutcome | undefined;
  // Looked up once the container interface exists, by name: no dump.
  const guest = async () => (guestLink ??= parseLink((await ns.guest.request(getLinkByName(plan.containerInterface)))[0]));
  // The veth's creation reply (NLM_F_ECHO) names the peer's index: no lookup needed before the guest batch.
  const known: { index?: number } = {};
  // A VLAN user count's lock, held from counting this attach until its macvlan exists (exec/vlan-users.ts).
  const held: { vlan?: VlanUsersLock } = {};

  try {
    const steps = plan.steps;
    for (let i = 0; i < steps.length; ) {
      if (opts.failAtStep === i) throw new InjectedFault(i);
      if (opts.abort?.aborted) throw new AttachAborted();
      const step = steps[i];
      if (inGuest(step)) {
        // Consecutive guest-side changes go out in one sendmsg.
        let end = i;
        while (end < steps.length && inGuest(steps[end]) && opts.failAtStep !== end && opts.killAfterStep !== end - 1) end++;
        // A veth just made: its index came with the creation reply; its IPv4 settings are the netns defaults.
        const announces = steps.slice(i, end).some((s) => s.op === 'arp-notify');
        const link = guestLink ?? (known.index
          ? { index: known.index, arpNotify: announces ? defaultArpNotify(ns.guestFd) : undefined } as Link
          : await guest());
        const batch = steps.slice(i, end).map((s) => guestRequest(s, link));
        // The link's state after the batch comes back in the same sendmsg.
        const outcomes = await ns.guest.send([...batch.map((b) => b.req), getLinkByName(plan.containerInterface)]);
        const after = outcomes.pop()!;
        outcomes.forEach((o, k) => {
          const reverse = batch[k].undo;
          if (!o.error && reverse) undo.push(reverse, 'guest');
        });
        const failed = outcomes.find((o, k) => o.error && !(steps[i + k].op === 'ipv6-off' && noIpv6State(o.error)))?.error;
        if (failed) throw failed;
        if (!after.error) guestLink = parseLink(after.replies[0]);
        i = end;
        if (opts.killAfterStep === end - 1) process.kill(process.pid, 'SIGKILL');
        continue;
      }
      dhcp = (await runHostStep(step, ns, undo, created, resolve, guest, known, held)) ?? dhcp;
      if (opts.killAfterStep === i) process.kill(process.pid, 'SIGKILL');
      i++;
    }
    return { containerInterface: await guest(), hostInterface: plan.hostInterface, dhcp };
  } catch (e) {
    throw await undo.rollBack(e);
  } finally {
    held.vlan?.release();
  }
}

/** A guest-side step as one request and the request that reverses it (none for one that changes nothing). */
function guestRequest(step: Step, link: Link): { req: Request; undo?: () => Request } {
  const { index } = link;
  switch (step.op) {
    case 'arp-notify': {
      const set = (v: number) => setLink(index, { inetConf: { [IPV4_DEVCONF_ARP_NOTIFY]: v } }, `${step.ifname} arp_notify`);
      const before = link.arpNotify ?? 0;
      return { req: set(step.enable ? 1 : before), undo: () => set(before) };
    }
    case 'guest-link-up':
      return { req: setLink(index, { up: true }, step.name), undo: () => setLink(index, { up: false }, step.name) };
    case 'announce':
      // The same MAC: the kernel still reports a MAC change, and announces the addresses (arp_notify).
      return { req: setLink(index, { address: macBytes(link.mac!) }, `${step.ifname} address`) };
    case 'set-guest-link': {
      const before = { address: step.mac && link.mac ? macBytes(link.mac) : undefined, mtu: step.mtu && link.mtu };
      return { req: setLink(index, { address: step.mac, mtu: step.mtu }, step.name), undo: () => setLink(index, before, step.name) };
    }
    case 'add-address': {
      const spec = {
        index, family: family(step.cidr.family), address: step.cidr.bytes, prefixLen: step.cidr.prefixLen,
        broadcast: step.broadcast, nodad: step.nodad,
      };
      return { req: addAddress(spec, step.ifname), undo: () => deleteAddress(spec, step.ifname) };
    }
    case 'add-gateway-route': {
      const spec = { family: family(step.family), dst: step.gateway, dstLen: step.gateway.length * 8, oif: index };
      return { req: routeRequest('add', spec, `${step.ifname} gateway host route`), undo: () => routeRequest('del', spec) };
    }
    case 'ipv6-off': {
      const set = (mode: number) => setLink(index, { addrGenMode: mode }, `${step.ifname} addrgenmode`);
      return { req: set(IN6_ADDR_GEN_MODE_NONE), undo: () => set(link.addrGenMode ?? IN6_ADDR_GEN_MODE_EUI64) };
    }
    case 'replace-default-route': {
      // `ip -4|-6 route replace default` sends an all-zero RTA_DST: so do we.
      const spec = { family: family(step.family), dst: Buffer.alloc(step.gateway.length), dstLen: 0, gateway: step.gateway, oif: index };
      return { req: routeRequest('replace', spec, `${step.ifname} default route`), undo: () => routeRequest('del', spec) };
    }
    default:
      throw new Error(`${step.op} is not a guest-side step`);
  }
}

async function runHostStep(
  step: Step, ns: NetnsPair, undo: Undo, created: Map<string, number>,
  resolve: (l: HostLink) => number, guest: () => Promise<Link>, known: { index?: number }, held: { vlan?: VlanUsersLock },
): Promise<DhcpOutcome | void> {
  const host = ns.host;
  const guestDelete = (name: string) => undo.push(() => deleteLinkByName(name), 'guest');
  switch (step.op) {
    case 'create-bridge': {
      const made = await createLinkOf(host, 'bridge', createBridge({ name: step.name, up: true }))
        .then(() => true, (e) => {
          // Another process made it between our look and our create: use theirs, if it is a bridge.
          if (refusedWith(e, EEXIST)) return false;
          throw e;
        });
      const link = parseLink((await host.request(getLinkByName(step.name)))[0]);
      if (link.kind !== 'bridge') throw new PipeworkError(`${step.name} appeared meanwhile and is not a bridge (${link.kind ?? 'no kind'}).`);
      const index = link.index;
      created.set(step.name, index);
      if (!made) return;
      // Only if no port other than ours remains: ports of others keep it.
      undo.pushAsync(async (s) => {
        const ports = await s.host.request(dumpLinks(index));
        if (ports.length === 0) await s.host.request(deleteLink(index, step.name));
      });
      // The kernel ignores IFLA_IFALIAS when it creates a link: marked as ours afterwards, for gc --bridges.
      await host.request(setLink(index, { alias: CREATED_BRIDGE_ALIAS }, step.name));
      return;
    }
    case 'create-ovs-bridge':
      await runProgram('ovs-vsctl', ['add-br', step.name]);
      undo.pushAsync(() => runProgram('ovs-vsctl', ['--if-exists', 'del-br', step.name]));
      return;
    case 'move-aside-host-link': {
      const { index, name } = step.link;
      await host.request(setLink(index, { name: step.aside }, name));
      undo.push(() => setLink(index, { name }, step.aside));
      // A veth's peer left in this guest under the container interface's name would refuse ours: aside too, in the guest.
      const [peer] = await lookupLinks(ns.guest, [step.peerName]);
      if (peer?.kind === 'veth' && peer.parent === index) {
        await ns.guest.request(setLink(peer.index, { name: step.aside }, peer.name));
        undo.push(() => setLink(peer.index, { name: peer.name }, step.aside), 'guest');
      }
      return;
    }
    case 'delete-host-link':
      await host.request(deleteLink(step.link.index, step.link.name));
      return;
    case 'port-carrier':
      await host.linkCarrier(step.name);
      return;
    case 'host-link-up': {
      const index = resolve(step.link);
      await host.request(setLink(index, { up: true }, step.link.name));
      undo.push(() => setLink(index, { up: false }, step.link.name));
      return;
    }
    case 'vlan-user': {
      const index = resolve(step.link);
      const lock = held.vlan = await VlanUsersLock.take(ns.hostFd, index);
      if (step.converge) {
        const { linksOnLowers }: typeof import('./gc') = require('./gc');
        const found = (await linksOnLowers(ns, [], new Set([index]))).get(index) ?? 0;
        if (((await readVlanUsers(host, index)) ?? 0) > found) return; // counted before it was killed
      }
      await changeVlanUsers(host, index, step.link.name, 1);
      undo.pushAsync((s) => withVlanUsersLock(s.hostFd, index, lock, () => changeVlanUsers(s.host, index, step.link.name, -1)));
      return;
    }
    case 'create-vlan':
    {
      await createLinkOf(host, 'vlan', createVlan({ name: step.name, parent: resolve(step.parent), mtu: step.mtu || undefined, up: true }, step.vid));
      undo.push(() => deleteLinkByName(step.name));
      const index = parseLink((await host.request(getLinkByName(step.name)))[0]).index;
      created.set(step.name, index);
      held.vlan = await VlanUsersLock.take(ns.hostFd, index); // until the macvlan is on it: gc would find it unused
      // The kernel ignores IFLA_IFALIAS when it creates a link: set it afterwards.
      await host.request(setLink(index, { alias: vlanUsersAlias(1) }, step.name));
      return;
    }
    case 'create-veth': {
      const was = step.masterWas;
      if (step.master?.index && was) {
        const { index, name } = step.master;
        // A bridge whose last port goes takes 00:00:00:00:00:00 and MTU 1500 (its first port gave it that port's):
        // give back what it had. The kernel then keeps them fixed; ports no longer change them.
        undo.pushAsync(async (s) => {
          if ((await s.host.request(dumpLinks(index))).length) return;
          const now = parseLink((await s.host.request(getLinkByIndex(index)))[0]);
          const address = was.mac && now.mac !== was.mac ? macBytes(was.mac) : undefined;
          const mtu = now.mtu !== was.mtu ? was.mtu : undefined;
          if (address || mtu) await s.host.request(setLink(index, { address, mtu }, name));
        });
      }
      const req = createVeth(
        { name: step.hostName, mtu: step.mtu || undefined, master: step.master && resolve(step.master), up: true, queues: 1 },
        { name: step.peerName, mtu: step.mtu || undefined, address: step.mac, netnsFd: ns.guestFd, queues: 1 },
      );
      // A bridge port's IPv6 off in the same sendmsg, by name: it has no carrier yet (its peer is down), so no address yet.
      const addrGenNone = setLink(0, { name: step.hostName, addrGenMode: IN6_ADDR_GEN_MODE_NONE }, `${step.hostName} addrgenmode none`);
      const [made, addrGen] = await host.send([{ ...req, flags: req.flags | NLM_F_ECHO }, ...(step.hostAddrGenNone ? [addrGenNone] : [])]);
      if (made.error) throw creationError('veth', made.error);
      undo.push(() => deleteLinkByName(step.hostName));
      if (addrGen?.error && !noIpv6State(addrGen.error)) throw addrGen.error;
      known.index = made.replies[0] && linkParentOf(made.replies[0]);
      return;
    }
    case 'ovs-add-port': {
      const ids = Object.entries(step.externalIds).map(([k, v]) => `external-ids:${k}=${v}`);
      // A port record left by a container that died unplugged would keep its old tag and ids: replace it.
      await runProgram('ovs-vsctl', ['--if-exists', 'del-port', step.port, '--', 'add-port', step.bridge, step.port,
        ...(step.vlan ? [`tag=${step.vlan}`] : []), '--', 'set', 'Interface', step.port, ...ids]);
      undo.pushAsync(async () => { await runProgram('ovs-vsctl', ['--if-exists', 'del-port', step.bridge, step.port]); });
      return;
    }
    case 'create-macvlan':
      await createLinkOf(host, 'macvlan', createMacvlan({
        name: step.name, parent: resolve(step.parent), mtu: step.mtu || undefined, address: step.mac, netnsFd: ns.guestFd,
      }, step.mode));
      guestDelete(step.name);
      held.vlan?.release(); // counted and made: what converge and gc compare agrees again
      return;
    case 'create-ipoib':
      await createLinkOf(host, 'ipoib', createIpoib({ name: step.name, parent: resolve(step.parent), netnsFd: ns.guestFd }, step.pkey));
      guestDelete(step.name);
      return;
    case 'create-dummy':
      await createLinkOf(host, 'dummy', createDummy({ name: step.name, address: step.mac, netnsFd: ns.guestFd }));
      guestDelete(step.name);
      return;
    case 'move-link': {
      const [before] = await host.request(getLinkByName(step.link.name));
      const original = parseLink(before);
      // The alias remembers the host name, so detach can give the link back as it was.
      const alias = original.alias ? undefined : movedAlias(original.name);
      await host.request(setLink(original.index, { netnsFd: ns.guestFd, name: step.name, address: step.mac, alias }, step.link.name));
      const { index } = await guest();
      undo.push((s) => setLink(index, {
        netnsFd: s.hostFd, name: original.name, address: step.mac && original.mac ? macBytes(original.mac) : undefined,
        up: original.up, alias: alias && '',
      }, step.name), 'guest');
      return;
    }
    case 'dhcp': {
      const { runDhcpClient }: typeof import('./dhcp') = require('./dhcp');
      const outcome = await runDhcpClient({ guestFd: ns.guestFd, ifname: step.ifname, request: step.request });
      undo.pushAsync(() => outcome.stop());
      return outcome;
    }
    default:
      throw new Error(`${step.op} is not a host-side step`);
  }
}

/**
 * net.ipv4.conf.default.arp_notify of the guest: what a link created there
 * starts with. /proc/sys/net resolves in the netns of the thread that opens it.
 */
function defaultArpNotify(netnsFd: number): number {
  return Number(native.withNetns(netnsFd, () => readFileSync('/proc/sys/net/ipv4/conf/default/arp_notify', 'utf8')));
}

const movedAlias = (name: string) => `${MOVED_ALIAS_PREFIX}${name}`;

const macBytes = (mac: string) => Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
