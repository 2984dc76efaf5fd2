/**
 * The commands that act on one guest (attach, route, rule, tc, unplug), as
 * the CLI, its --batch and `pipework watch` run them, and the one-line
 * message a failure gives the user.
 */
import type { Command } from './args';
import { PipeworkError, RollbackError } from '../errors';
import type { Out } from '../run/out';

/** One line for the user: our own messages as they are, kernel refusals with their cause. */
export function describeError(e: unknown, verbose = false): string {
  const err = e as Error & { code?: string; syscall?: string };
  if (err instanceof RollbackError)
    return [describeError(err.cause, verbose), ...err.errors.map((u) => `pipework: undoing it failed too, left in place: ${describeError(u, verbose)}`)].join('\n');
  if (err instanceof PipeworkError || err?.name === 'NetlinkError') return err.message;
  if (err?.syscall) return `${err.syscall} failed: ${err.code ?? ''} ${err.message}`.trim();
  return verbose ? `pipework: internal error: ${err?.stack ?? err}` : `pipework: internal error: ${err?.message ?? err}`;
}

type SessionT = import('../session').Session;

/**
 * The commands that act on one guest, with a session the caller owns (reused
 * by --batch). attachWith: how an attach is made (a batch's bulk attacher;
 * default session.attach).
 */
export async function runOne(session: SessionT, cmd: Command, io: Out, attachWith?: import('../bulk').Attacher): Promise<number> {
  if (cmd.kind !== 'attach' && cmd.kind !== 'route' && cmd.kind !== 'rule' && cmd.kind !== 'tc' && cmd.kind !== 'unplug') {
    throw new PipeworkError(`${cmd.kind} cannot be used here`);
  }
  const { resolveGuest }: typeof import('../guest/resolve') = require('../guest/resolve');
  const named = await resolveGuest(cmd.guest);
  const { guest } = named;
  try {
    switch (cmd.kind) {
      case 'route':
        if (cmd.opts.dryRun) io.out(`nsenter --net=${guest.path} ip route ${cmd.args.join(' ')}`);
        else await session.route(guest, cmd.args);
        return 0;
      case 'rule':
        if (cmd.opts.dryRun) io.out(`nsenter --net=${guest.path} ip rule ${cmd.args.join(' ')}`);
        else await session.rule(guest, cmd.args);
        return 0;
      case 'tc': {
        if (cmd.opts.dryRun) {
          io.out(`nsenter --net=${guest.path} tc ${cmd.args.join(' ')}`);
          return 0;
        }
        const { runProgram }: typeof import('../run') = require('../run');
        const r = await runProgram('tc', cmd.args, { netnsFd: guest.fd });
        if (r.stdout) io.out(r.stdout.replace(/\n$/, ''));
        return 0;
      }
      case 'unplug': {
        if (cmd.opts.dryRun) {
          const { renderPlan }: typeof import('../session') = require('../session');
          const plan = renderPlan(await session.planUnplug(guest, cmd.containerInterface));
          if (plan) io.out(plan);
          return 0;
        }
        const r = await session.unplug(guest, cmd.containerInterface);
        if (cmd.opts.json) io.out(JSON.stringify({ guest: named.name, containerInterface: cmd.containerInterface, ...r }));
        else if (cmd.opts.verbose) io.err(`${cmd.containerInterface} in ${named.name}: ${r.action}`);
        return 0;
      }
      case 'attach':
        return await attach(session, cmd, named, io, attachWith);
    }
  } finally {
    guest.close();
  }
}

/** Tests only: PIPEWORK_TEST_KILL_AFTER_STEP=k makes an attach die by SIGKILL right after its step k, as a crash would. */
function killAfterStep(): number | undefined {
  const k = process.env.PIPEWORK_TEST_KILL_AFTER_STEP;
  return k === undefined ? undefined : Number(k);
}

async function attach(session: SessionT, cmd: Extract<Command, { kind: 'attach' }>, named: import('../guest/resolve').NamedGuest, io: Out,
  attachWith?: import('../bulk').Attacher): Promise<number> {
  const { opts } = cmd;
  let hostInterface = cmd.hostInterface;
  if (hostInterface.startsWith('mac:')) hostInterface = await session.hostInterfaceByMac(hostInterface.slice(4));
  if (cmd.family !== undefined) {
    for (const a of cmd.addresses) {
      const v6 = a.includes(':');
      if (a !== '0/0' && v6 !== (cmd.family === 6)) throw new PipeworkError(`The address ${a} is not an IPv${cmd.family} address (-a ${cmd.family}).`);
    }
  }
  const request = {
    hostInterface,
    containerInterface: cmd.containerInterface,
    hostName: cmd.localName,
    addresses: cmd.addresses,
    gateway: cmd.gateway,
    mac: cmd.mac,
    vlan: cmd.vlan,
    directPhys: cmd.directPhys,
    macvlanMode: opts.macvlanMode as import('../netlink/kinds/macvlan').MacvlanMode | undefined,
    nodad: opts.nodad,
    announce: opts.arp,
    ipv6: opts.ipv6,
    dhcp: cmd.dhcp && { ...cmd.dhcp, hostname: named.name, docker: named.docker, rootfs: named.rootfs },
    docker: named.docker && { id: named.docker.id, name: named.docker.name },
  };
  if (opts.dryRun) {
    const { renderPlan }: typeof import('../session') = require('../session');
    const plan = renderPlan(await session.plan(named.guest, request, { converge: opts.converge }));
    if (plan) io.out(plan);
    return 0;
  }
  const attachOpts = { converge: opts.converge, killAfterStep: killAfterStep() };
  const result = await (attachWith ?? ((g, r, o) => session.attach(g, r, o)))(named.guest, request, attachOpts);
  if (opts.json) io.out(JSON.stringify({ ...result, guest: named.name }));
  else if (opts.verbose) {
    const c = result.containerInterface;
    io.err(`${named.name}: ${c.name} (${c.mac}, mtu ${c.mtu})${result.hostInterface ? ` <-> ${result.hostInterface}` : ''}` +
      `${result.addresses.length ? ` ${result.addresses.join(' ')}` : ''}${result.gateway ? ` via ${result.gateway}` : ''}` +
      `${result.status ? ` (${result.status})` : ''}`);
  }
  return 0;
}
