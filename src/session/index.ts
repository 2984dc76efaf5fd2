import { closeSync } from 'node:fs';
import { native } from '../native';
import { RtnlSocket } from '../netlink/socket';
import { type Guest, type GuestSpec, openGuest } from '../guest';
import { type AttachRequest, checkRequest, planAttach } from '../plan/attach';
import { type AttachPlan, renderStep } from '../plan/steps';
import { type AttachOptions, type AttachOutcome, type AttachResult, executeAttach } from '../exec/attach';
import type { ExecOptions, NetnsPair } from '../exec/context';
import { type DetachOutcome, deleteGroup, detachOrGroup, executeDetach, observeDetach } from '../exec/detach';
import { type DetachPlan, planDetach, renderDetachStep } from '../plan/detach';
import { linkByMac, lookupLinks, observe } from '../exec/observe';
import { parseRoute, parseRule } from '../plan/ip-grammar';
import { routeRequest } from '../netlink/route';
import { ruleRequest } from '../netlink/rule';
import { PipeworkError } from '../errors';
import { formatIp } from '../addressing';
import { type BulkAttachItem, type BulkDetachItem, type BulkOptions, type BulkResult, attachMany, detachMany } from '../bulk';
import { type Link, dumpLinks } from '../netlink/link';
import { refusedWith } from '../netlink/error';
import { EEXIST, ENODEV } from '../netlink/errno';
import { type GcStep, planGc } from '../plan/gc';
import { executeGc, observeGc } from '../exec/gc';


/** The DHCP runner, loaded only when DHCP is used. */
const dhcpModule = (): typeof import('../exec/dhcp-client') => require('../exec/dhcp-client');

/** A guest as given: a spec to open, or a Guest already open (the caller closes it). */
export type GuestArg = GuestSpec | Guest;
const isGuest = (g: GuestArg): g is Guest => typeof g === 'object' && 'tag' in g && 'close' in g;

/**
 * Holds the host's netlink socket and netns fd, and one socket per guest
 * netns while it is worked on. Reuse one Session for many containers.
 */
export class Session {
  private readonly host: RtnlSocket;
  private readonly hostFd: number;
  private closed = false;

  /**
   * hostNetns: the netns that plays "host" (bridges, veth host ends,
   * physical parents), held by fd; default: the one this process runs in.
   */
  constructor(opts: { hostNetns?: number } = {}) {
    this.hostFd = opts.hostNetns === undefined
      ? native.openNetnsPath('/proc/thread-self/ns/net')
      : native.openNetnsPath(`/proc/self/fd/${opts.hostNetns}`);
    this.host = RtnlSocket.open(opts.hostNetns);
  }

  /** The attach plan, without changing anything (for --dry-run). */
  async plan(guest: GuestArg, request: AttachRequest, opts: Pick<AttachOptions, 'converge'> = {}): Promise<AttachPlan> {
    const checked = checkRequest(request, opts.converge);
    return this.withGuest(guest, async (g, ns) => planAttach(checked, await observe(ns, g, checked)));
  }

  /** `pipework HOSTIF [-i CIF] [-l LOCAL] GUEST IP/LEN[@GW] [MAC][@VLAN]`: all of it, or nothing. */
  async attach(guest: GuestArg, request: AttachRequest, opts: AttachOptions = {}): Promise<AttachResult> {
    return this.attachOnto(undefined, guest, request, opts);
  }

  /**
   * attach, for attachMany: `bridge` is the host interface, a Linux bridge,
   * as the batch looked it up once (see observe()). If the kernel then
   * refuses the veth (its host-end name taken, the bridge gone), the attach,
   * rolled back, is planned again from a full look.
   * @internal
   */
  async attachOnto(bridge: Link | undefined, guest: GuestArg, request: AttachRequest, opts: AttachOptions = {}): Promise<AttachResult> {
    const checked = checkRequest(request, opts.converge);
    if (checked.dhcp) dhcpModule().checkDhcpRequest(checked.dhcp); // a missing client refused before any link is made
    return this.withGuest(guest, async (g, ns) => {
      let status: AttachPlan['status'];
      const run = async (known?: Link) => {
        const plan = planAttach(checked, await observe(ns, g, checked, known));
        status = plan.status;
        return executeAttach(plan, ns, opts);
      };
      let outcome: AttachOutcome;
      try {
        // Converge looks at the guest first: no shortcut.
        outcome = await run(checked.converge ? undefined : bridge);
      } catch (e) {
        if (!bridge || !refusedWith(e, EEXIST, ENODEV)) throw e;
        outcome = await run();
      }
      const { containerInterface: link, hostInterface, dhcp } = outcome;
      return {
        guest: g.label,
        netns: g.path,
        containerInterface: { name: link.name, index: link.index, mac: link.mac, mtu: link.mtu },
        hostInterface,
        addresses: dhcp ? dhcp.addresses : checked.addresses.map((a) => `${a.address}/${a.prefixLen}`),
        gateway: checked.gateway && formatIp(checked.gateway.bytes),
        ...(dhcp ? { dns: dhcp.dns, resolvConf: dhcp.resolvConf } : {}),
        ...(status ? { status } : {}),
      };
    });
  }

  /** Removes what attach made for the container interface (default eth1); harmless if already gone. */
  async detach(guest: GuestArg, containerInterface = 'eth1', opts: ExecOptions = {}): Promise<DetachOutcome> {
    return this.withGuest(guest, async (g, ns) =>
      executeDetach(await this.detachPlan(ns, g, containerInterface, false), ns, opts));
  }

  /**
   * `pipework unplug`: detach, and what attach made around it: the veth's OVS
   * port, the VLAN link under a macvlan once its last container goes, a DHCP
   * client left running. All of it, or (until the interface is gone) nothing.
   */
  async unplug(guest: GuestArg, containerInterface = 'eth1', opts: ExecOptions = {}): Promise<DetachOutcome> {
    return this.withGuest(guest, async (g, ns) =>
      executeDetach(await this.detachPlan(ns, g, containerInterface, true), ns, opts));
  }

  /** The unplug plan, without changing anything (for --dry-run). */
  async planUnplug(guest: GuestArg, containerInterface = 'eth1'): Promise<DetachPlan> {
    return this.withGuest(guest, (g, ns) => this.detachPlan(ns, g, containerInterface, true));
  }

  /** Attaches many containers with bounded concurrency; results stream back as they complete. */
  attachMany(items: Iterable<BulkAttachItem> | AsyncIterable<BulkAttachItem>, opts?: BulkOptions & AttachOptions): AsyncGenerator<BulkResult<AttachResult>> {
    return attachMany(this, items, opts);
  }

  /** Detaches many containers with bounded concurrency; results stream back as they complete. */
  detachMany(items: Iterable<BulkDetachItem> | AsyncIterable<BulkDetachItem>, opts?: BulkOptions): AsyncGenerator<BulkResult<DetachOutcome>> {
    return detachMany(this, items, opts);
  }

  /**
   * Bulk teardown's first half: see detachOrGroup (src/exec/detach.ts). With unplug, as unplug does.
   * @internal
   */
  async detachOrGroup(guest: GuestArg, containerInterface = 'eth1', group: number, opts: { unplug?: boolean } = {}):
    Promise<{ outcome: DetachOutcome; grouped: boolean }> {
    return this.withGuest(guest, async (g, ns) =>
      detachOrGroup(await this.detachPlan(ns, g, containerInterface, !!opts.unplug), ns, group));
  }

  /**
   * Bulk teardown's second half: every host link of the group, deleted at once.
   * @internal
   */
  async deleteLinkGroup(group: number): Promise<void> {
    if (this.closed) throw new Error('netlink socket is closed');
    await deleteGroup({ hostFd: this.hostFd }, group);
  }

  /** A Linux bridge and how many ports it has (undefined for anything else): one lookup, one kernel-filtered dump. */
  async bridge(name: string): Promise<{ link: Link; ports: number } | undefined> {
    const [link] = await lookupLinks(this.host, [name]);
    if (link?.kind !== 'bridge') return undefined;
    return { link, ports: (await this.host.request(dumpLinks(link.index))).length };
  }

  /** `mac:<addr>`: the name of the host interface with that MAC. */
  async hostInterfaceByMac(mac: string): Promise<string> {
    return (await linkByMac(this.host, mac)).name;
  }

  /** `ip route ARGS` inside the guest (`pipework route GUEST ARGS`), done over rtnetlink. */
  async route(guest: GuestArg, args: string[]): Promise<void> {
    const { cmd, spec, dev } = parseRoute(args);
    await this.withGuest(guest, async (_g, ns) => {
      if (dev) {
        const [link] = await lookupLinks(ns.guest, [dev]);
        if (!link) throw new PipeworkError(`Cannot find device "${dev}"`);
        spec.oif = link.index;
      }
      await ns.guest.request(routeRequest(cmd, spec, args.join(' ')));
    });
  }

  /** `ip rule ARGS` inside the guest (`pipework rule GUEST ARGS`), done over rtnetlink. */
  async rule(guest: GuestArg, args: string[]): Promise<void> {
    const { cmd, spec } = parseRule(args);
    await this.withGuest(guest, (_g, ns) => ns.guest.request(ruleRequest(cmd, spec, args.join(' '))));
  }

  /**
   * `pipework gc`: removes what containers that died without unplug (and
   * attaches killed half-way) left behind, and only what pipework marked as
   * its own (see src/plan/gc.ts); with bridges, also bridges it created that
   * have no port left. dryRun: what would be removed, changing nothing.
   * Each removal stands alone: one that fails is reported with its error.
   */
  async gc(opts: { bridges?: boolean; dryRun?: boolean } = {}): Promise<{ removed: GcStep[]; failed: { step: GcStep; error: Error }[] }> {
    const pair = { host: this.host, hostFd: this.hostFd };
    const steps = planGc(await observeGc(pair), opts);
    if (opts.dryRun) return { removed: steps, failed: [] };
    const { done, failed } = await executeGc(steps, pair);
    return { removed: done, failed };
  }

  close(): void {
    this.closed = true;
    this.host.close();
    closeSync(this.hostFd);
  }

  /** What detaching (or, with unplug, unplugging) the container interface takes, as observed now. */
  private async detachPlan(ns: NetnsPair, g: Guest, containerInterface: string, unplug: boolean): Promise<DetachPlan> {
    return planDetach(containerInterface, await observeDetach(ns, containerInterface, g.path, unplug ? g : undefined));
  }

  private async withGuest<T>(guest: GuestArg, fn: (g: Guest, ns: NetnsPair) => Promise<T>): Promise<T> {
    const g = isGuest(guest) ? guest : openGuest(guest);
    let sock: RtnlSocket | undefined;
    try {
      sock = RtnlSocket.open(g.fd);
      return await fn(g, { host: this.host, hostFd: this.hostFd, guest: sock, guestFd: g.fd });
    } finally {
      sock?.close();
      if (!isGuest(guest)) g.close();
    }
  }
}

/** One attach with a session of its own. */
export async function attach(guest: GuestSpec, request: AttachRequest, opts?: AttachOptions): Promise<AttachResult> {
  const s = new Session();
  try {
    return await s.attach(guest, request, opts);
  } finally {
    s.close();
  }
}

/** One detach with a session of its own. */
export async function detach(guest: GuestSpec, containerInterface?: string): Promise<DetachOutcome> {
  const s = new Session();
  try {
    return await s.detach(guest, containerInterface);
  } finally {
    s.close();
  }
}

/** A new, empty network namespace held by an fd (for tests, demos and benchmarks). */
export function createNetns(): number {
  return native.newNetns();
}

/** The plan as the equivalent commands, one per line. */
export function renderPlan(plan: AttachPlan | DetachPlan): string {
  return 'action' in plan
    ? plan.steps.map((s) => renderDetachStep(s, plan.guestPath)).join('\n')
    : plan.steps.map((s) => renderStep(s, plan.guestPath)).join('\n');
}
