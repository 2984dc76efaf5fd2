/**
 * The `pipework` command. Loads only what the command at hand needs: a
 * single call has to start faster than the shell original runs.
 */
import { Command, GlobalOptions, HELP, USAGE, parseArgs } from './args';
import { PipeworkError } from '../errors';

type Out = { out: (s: string) => void; err: (s: string) => void };
const stdio: Out = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) };

/** Runs one command line; resolves with the exit status. */
export async function main(argv: string[], io: Out = stdio): Promise<number> {
  if (argv[0] === 'docker-plugin') return require('../docker/plugin').main(argv.slice(1), io);
  if (argv[0] === 'watch') return require('../docker/watch').main(argv.slice(1), io);
  let cmd: Command;
  try {
    cmd = parseArgs(argv);
  } catch (e) {
    io.err((e as Error).message);
    return 1;
  }
  try {
    return await run(cmd, io);
  } catch (e) {
    io.err(describeError(e, 'opts' in cmd && cmd.opts.verbose));
    return 1;
  }
}

/** One line for the user: our own messages as they are, kernel refusals with their cause. */
export function describeError(e: unknown, verbose = false): string {
  const err = e as Error & { code?: string; syscall?: string };
  if (err instanceof PipeworkError || err?.name === 'NetlinkError') return err.message;
  if (err?.syscall) return `${err.syscall} failed: ${err.code ?? ''} ${err.message}`.trim();
  return verbose ? `pipework: internal error: ${err?.stack ?? err}` : `pipework: internal error: ${err?.message ?? err}`;
}

async function run(cmd: Command, io: Out): Promise<number> {
  switch (cmd.kind) {
    case 'usage':
      io.err(USAGE);
      return 1;
    case 'help':
      io.out(HELP);
      return 0;
    case 'version':
      io.out(require('../../package.json').version);
      return 0;
    case 'wait': {
      const { waitForInterface }: typeof import('../exec/wait') = require('../exec/wait');
      const ok = await waitForInterface(cmd.containerInterface, cmd.timeout === undefined ? undefined : cmd.timeout * 1000);
      if (!ok) io.err(`${cmd.containerInterface} did not come up with carrier within ${cmd.timeout} s`);
      return ok ? 0 : 1;
    }
    case 'batch': {
      const { runBatch }: typeof import('./batch') = require('./batch');
      return runBatch(cmd.file, cmd.unplug, cmd.opts, io);
    }
    default: {
      const { Session }: typeof import('../index') = require('../index');
      const session = new Session();
      try {
        return await runOne(session, cmd, io);
      } finally {
        session.close();
      }
    }
  }
}

type SessionT = import('../index').Session;

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
        if (r.stdout) process.stdout.write(r.stdout);
        return 0;
      }
      case 'unplug': {
        if (cmd.opts.dryRun) {
          const { renderPlan }: typeof import('../index') = require('../index');
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
        return await attach(session, cmd, named, io, attachWith ?? ((g, r) => session.attach(g, r)));
    }
  } finally {
    guest.close();
  }
}

async function attach(session: SessionT, cmd: Extract<Command, { kind: 'attach' }>, named: import('../guest/resolve').NamedGuest, io: Out,
  attachWith: import('../bulk').Attacher): Promise<number> {
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
    const { renderPlan }: typeof import('../index') = require('../index');
    io.out(renderPlan(await session.plan(named.guest, request)));
    return 0;
  }
  const result = await attachWith(named.guest, request);
  if (opts.json) io.out(JSON.stringify({ ...result, guest: named.name }));
  else if (opts.verbose) {
    const c = result.containerInterface;
    io.err(`${named.name}: ${c.name} (${c.mac}, mtu ${c.mtu})${result.hostInterface ? ` <-> ${result.hostInterface}` : ''}` +
      `${result.addresses.length ? ` ${result.addresses.join(' ')}` : ''}${result.gateway ? ` via ${result.gateway}` : ''}`);
  }
  return 0;
}

export type { GlobalOptions };
