import { deleteLink, deleteLinkGroup, deletedLinkIndex, findLink, getLinkByName, linkOf, setLink } from '../netlink/link';
import { RTNLGRP_LINK } from '../netlink/constants';
import { type Subscription, subscribe } from '../netlink/subscription';
import { getNsid, parseNsid } from '../netlink/netns';
import { RtnlSocket } from '../netlink/socket';
import { refusedWith } from '../netlink/error';
import { ENODEV } from '../netlink/errno';
import { PipeworkError } from '../errors';
import { ovsRunning, runProgram } from '../run';
import { InjectedFault, type NetnsPair } from './context';
import { Undo } from './undo';
import { vlanUsersAlias } from '../plan/steps';
import { findDhcpClients } from './dhcp-records';
import {
  type DetachObserved, type DetachPlan, type DetachStep, MOVED_ALIAS_PREFIX, type OvsPort, removesContainerInterface,
} from '../plan/detach';

export interface DetachOutcome {
  /** What happened to the container interface: deleted, given back to the host, or absent already. */
  action: 'deleted' | 'returned' | 'absent';
  kind?: string;
}

/** The guest as unplug knows it: DHCP clients are recorded under its label. */
export interface UnplugGuest {
  label: string;
}

/**
 * Reads what planDetach needs: the container interface and whether its
 * IFLA_LINK is an index in the host netns (a veth's host end, a macvlan's
 * lower device). With `unplug`, also the host end's OVS port, the VLAN link
 * under a macvlan and DHCP clients.
 */
export async function observeDetach(ns: NetnsPair, cif: string, guestPath: string, unplug?: UnplugGuest): Promise<DetachObserved> {
  // One sendmsg: the link, and the id the guest gives the host netns (valid once the link's peer info was filled in).
  const [linkOut, nsidOut] = await ns.guest.send([getLinkByName(cif), getNsid(ns.hostFd)]);
  const link = linkOf(linkOut);
  const o: DetachObserved = { guestPath, link, dhcpClients: [] };
  const hostNsid = nsidOut.error ? undefined : parseNsid(nsidOut.replies[0]);
  if (link?.parent && !link.alias?.startsWith(MOVED_ALIAS_PREFIX) && hostNsid !== undefined && link.linkNetnsid === hostNsid) {
    o.hostParent = link.parent;
  }
  if (!unplug) return o;
  const wantPeer = o.hostParent !== undefined && (link!.kind === 'macvlan' || (link!.kind === 'veth' && ovsRunning()));
  if (wantPeer) o.peer = await findLink(ns.host, o.hostParent!);
  if (link?.kind === 'veth' && o.peer?.kind === 'veth') o.ovsPort = await ovsPortOf(o.peer.name);
  o.dhcpClients = findDhcpClients(unplug.label, cif);
  return o;
}

/**
 * Runs a detach plan. Until the container interface is gone, every step is
 * undone if a later one fails (the interface is what finds everything else).
 * The steps after it (DHCP clients) are found without it: a second unplug
 * completes them.
 */
export async function executeDetach(plan: DetachPlan, ns: NetnsPair, opts: { failAtStep?: number } = {}): Promise<DetachOutcome> {
  const undo = new Undo(ns);
  let committed = false;
  try {
    for (const [i, step] of plan.steps.entries()) {
      if (opts.failAtStep === i) throw new InjectedFault(i);
      await runDetachStep(step, ns, undo);
      committed ||= removesContainerInterface(step);
    }
  } catch (e) {
    throw committed ? e : await undo.rollBack(e);
  }
  return { action: plan.action, kind: plan.kind };
}

async function runDetachStep(step: DetachStep, ns: NetnsPair, undo: Undo): Promise<void> {
  switch (step.op) {
    case 'vlan-release': {
      const { link, users } = step;
      await ns.host.request(setLink(link.index, { alias: vlanUsersAlias(users - 1) }, link.name));
      undo.push(() => setLink(link.index, { alias: vlanUsersAlias(users) }, link.name));
      return;
    }
    case 'ovs-del-port': {
      const { port } = step;
      await runProgram('ovs-vsctl', ['--if-exists', 'del-port', port.bridge, port.port]);
      undo.pushAsync(() => runProgram('ovs-vsctl', ['--may-exist', 'add-port', port.bridge, port.port,
        ...(port.tag ? [`tag=${port.tag}`] : []),
        ...(Object.keys(port.externalIds).length ? ['--', 'set', 'Interface', port.port,
          ...Object.entries(port.externalIds).map(([k, v]) => `external-ids:${JSON.stringify(k)}=${JSON.stringify(v)}`)] : []),
      ]));
      return;
    }
    case 'delete-link':
      await deleteLinkAnnounced(ns, step);
      return;
    case 'delete-vlan':
      await ns.host.request(deleteLink(step.link.index, step.link.name));
      return;
    case 'return-link':
      await ns.guest.request(setLink(step.index, {
        netnsFd: ns.hostFd, up: false, name: step.hostName, alias: step.hostName ? '' : undefined,
      }, step.ifname));
      return;
    case 'stop-dhcp': {
      const { stopDhcpClient }: typeof import('./dhcp-stop') = require('./dhcp-stop');
      await stopDhcpClient(step.record);
      return;
    }
  }
}

/**
 * Deletes the container interface; done once the kernel announces the last
 * device of the deletion gone (RTM_DELLINK: a veth's host end in the host
 * netns, which the kernel unregisters right after the container end, or the
 * interface itself). It announces a device once it is unlisted and every
 * protocol has let go of it (addresses, routes, bridge port; its name free);
 * the deleting sendmsg returns only after an RCU barrier that precedes freeing
 * its memory, ~20 ms later here, so it runs on a thread of its own, holding
 * up no other request. A refusal fails the step. Announcements lost
 * (ENOBUFS): the deletion's own answer is waited for.
 */
async function deleteLinkAnnounced(ns: NetnsPair, step: Extract<DetachStep, { op: 'delete-link' }>): Promise<void> {
  const [netnsFd, index] = step.hostEnd !== undefined ? [ns.hostFd, step.hostEnd] : [ns.guestFd, step.index];
  let announced!: () => void;
  const gone = new Promise<void>((resolve) => { announced = resolve; });
  // Subscribed before the request goes out: the announcement cannot come first.
  const sub: Subscription = subscribe(RTNLGRP_LINK, (reply) => {
    if (deletedLinkIndex(reply) === index) announced();
  }, () => undefined, netnsFd);
  try {
    const deleted = ns.guest.request(deleteLink(step.index, step.ifname), { alone: true });
    void deleted.catch(() => undefined); // once announced, the rest of the deletion answers to nobody
    await Promise.race([gone, deleted]);
  } finally {
    sub.close();
  }
}

/**
 * For bulk teardown: a plan that only deletes a veth is not run now (each
 * deletion waits for an RCU grace period, ~20 ms) but the veth's host end
 * joins `group`, which deleteGroup() then removes at once. Any other plan
 * runs as usual.
 */
export async function detachOrGroup(plan: DetachPlan, ns: NetnsPair, group: number): Promise<{ outcome: DetachOutcome; grouped: boolean }> {
  const [only, ...rest] = plan.steps;
  if (only?.op === 'delete-link' && only.hostEnd !== undefined && rest.length === 0) {
    await ns.host.request(setLink(only.hostEnd, { group }, `${only.ifname} host end`));
    return { outcome: { action: plan.action, kind: plan.kind }, grouped: true };
  }
  return { outcome: await executeDetach(plan, ns), grouped: false };
}

/**
 * Deletes every link of the group in the host netns (a veth takes its
 * container end with it). None left in it (ENODEV) is success: links marked
 * while an earlier deletion ran went with that one. The deleting sendmsg
 * returns only after the kernel's RCU barriers and its wait for the last
 * references to the devices (up to seconds for hundreds of them): so it runs
 * alone, on a socket and a thread of its own (hostFd's netns), while the
 * host socket goes on marking the next veths.
 */
export async function deleteGroup(ns: Pick<NetnsPair, 'hostFd'>, group: number): Promise<void> {
  const sock = RtnlSocket.open(ns.hostFd);
  try {
    await sock.request(deleteLinkGroup(group), { alone: true });
  } catch (e) {
    if (!refusedWith(e, ENODEV)) throw e;
  } finally {
    sock.close();
  }
}


/** The OVS port named so, with what re-adding it takes; undefined if ovsdb has none. */
export async function ovsPortOf(name: string): Promise<OvsPort | undefined> {
  let stdout: string;
  try {
    ({ stdout } = await runProgram('ovs-vsctl', ['--format=json', '--', 'port-to-br', name,
      '--', '--columns=tag', 'list', 'Port', name, '--', '--columns=external_ids', 'list', 'Interface', name]));
  } catch (e) {
    if (e instanceof PipeworkError && /no port named/.test(e.message)) return undefined;
    throw e;
  }
  const [bridge, tagJson, idsJson] = stdout.trim().split('\n');
  const tag = JSON.parse(tagJson).data[0][0];
  const ids: [string, [string, string][]] = JSON.parse(idsJson).data[0][0];
  return { bridge, port: name, tag: typeof tag === 'number' ? tag : undefined, externalIds: Object.fromEntries(ids[1]) };
}
