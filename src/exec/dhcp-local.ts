// udhcpc, dhclient and dhcpcd, run here: in the guest's netns, with /etc an
// overlay on a scratch dir and a UTS namespace of their own, watched until
// they hold a lease (or fail, and leave nothing running).
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PipeworkError } from '../errors';
import type { IsolatedChild } from '../native';
import { spawnIsolated } from '../native/spawn';
import { RtnlSocket } from '../netlink/socket';
import { type DhcpRequest, dhcpCommandLine, fileSafe, leaseDir, runDir } from '../plan/dhcp';
import { type DhcpOutcome, dhcpTimeoutMs, findDhcpClient } from './dhcp-client';
import {
  type Proc, childrenOf, describeExit, firstPidfile, identify, killTree, nsInode, once, procStat, procsInUts, readPidfile,
  removePidfile, sleep, tail, terminate, within,
} from './dhcp-procs';
import { addresses, linkIndex } from './dhcp-readback';
import { type ClientState, scratchDir, writeState } from './dhcp-records';
import { nameservers, writeInRoot } from './dhcp-resolv';
import { stopRecorded } from './dhcp-stop';

/** Added to the client's PATH: its scripts call ip, ifconfig and route by name. */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** A hostname for the client's private UTS namespace, or undefined if the guest name is not one. */
const utsName = (s: string) => (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(s) ? s : undefined);

interface Scratch {
  dir: string;
  etcUpper: string;
  etcWork: string;
  log: string;
  /** dhcpcd's private /run/dhcpcd (its pidfile and control sockets). */
  dhcpcdRun: string;
}

function makeScratch(hostname: string, ifname: string): Scratch {
  const dir = scratchDir(hostname, ifname);
  const s = { dir, etcUpper: join(dir, 'etc'), etcWork: join(dir, 'etc.work'), log: join(dir, 'client.log'), dhcpcdRun: join(dir, 'dhcpcd') };
  mkdirSync(s.etcUpper, { mode: 0o755 });
  mkdirSync(s.etcWork, { mode: 0o700 });
  // A regular, empty resolv.conf on top: scripts then write it here even
  // where the host's is a symlink (into /run/systemd/resolve, /run/resolvconf:
  // outside the overlay), and keep none of the host's nameservers.
  writeFileSync(join(s.etcUpper, 'resolv.conf'), '', { mode: 0o644 });
  return s;
}

/** The value after the last `flag` in argv (a user's own -p/-pf wins, as in the client). */
function argAfter(argv: string[], flag: string): string | undefined {
  let value: string | undefined;
  for (let i = 1; i < argv.length - 1; i++) if (argv[i] === flag) value = argv[i + 1];
  return value;
}

/** resolvconf would bypass our /etc: scripts use it when it is executable. /dev/null is not. */
function resolvconfMasks(): Array<[string, string]> {
  const seen = new Set<string>();
  for (const p of ['/sbin/resolvconf', '/usr/sbin/resolvconf', '/bin/resolvconf', '/usr/bin/resolvconf']) {
    try {
      const real = realpathSync(p);
      if (statSync(real).isFile()) seen.add(real);
    } catch {
      // absent
    }
  }
  return [...seen].map((p) => ['/dev/null', p]);
}

function clientEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  const path = (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  for (const d of SBIN) if (!path.includes(d)) path.push(d);
  env.PATH = path.join(':');
  return env;
}

export async function runLocalClient(guestFd: number, ifname: string, request: DhcpRequest): Promise<DhcpOutcome> {
  const file = findDhcpClient(request);
  const timeoutMs = dhcpTimeoutMs();
  const argv = dhcpCommandLine(ifname, request);
  const client = request.client;
  const netnsIno = fstatSync(guestFd).ino;
  const pidfile = client === 'udhcpc' ? argAfter(argv, '-p') : client === 'dhclient' ? argAfter(argv, '-pf') : undefined;

  const scratch = makeScratch(request.hostname, ifname);
  const binds = resolvconfMasks();
  if (client === 'dhcpcd') {
    // dhcpcd keys its pidfile and control socket by interface name only: a
    // second container's `dhcpcd eth1` would hand its request to the first
    // one's daemon (or the host's own dhcpcd) and exit 0 with no lease. Each
    // gets its own /run/dhcpcd, and its own lease/DUID dir per guest.
    mkdirSync(scratch.dhcpcdRun, { mode: 0o755 });
    const leases = join(leaseDir(), `dhcpcd.${fileSafe(request.hostname)}`);
    mkdirSync(leases, { recursive: true, mode: 0o755 });
    mkdirSync('/run/dhcpcd', { recursive: true, mode: 0o755 });
    mkdirSync('/var/lib/dhcpcd', { recursive: true, mode: 0o755 });
    binds.push([scratch.dhcpcdRun, '/run/dhcpcd'], [leases, '/var/lib/dhcpcd']);
  }
  if (client === 'dhclient') mkdirSync(leaseDir(), { recursive: true, mode: 0o755 });
  // Where the original's pidfiles go; not a pidfile's own dir (a guest given
  // as a path would make that a tree of odd directories).
  if (pidfile) mkdirSync(runDir(), { recursive: true, mode: 0o755 });

  const logFd = openSync(scratch.log, 'a', 0o600);
  let child: IsolatedChild;
  try {
    child = spawnIsolated({
      file, args: argv.slice(1), env: clientEnv(), netnsFd: guestFd,
      privateMounts: true, overlays: [{ target: '/etc', upper: scratch.etcUpper, work: scratch.etcWork }], bindMounts: binds,
      privateUts: true, hostname: utsName(request.hostname),
      // Ours to outlive: out of our session, and not holding our event loop.
      newSession: true, unref: true,
      stdoutFd: logFd, stderrFd: logFd,
    });
  } catch (e) {
    rmSync(scratch.dir, { recursive: true, force: true });
    const err = e as Error & { syscall?: string; code?: string };
    throw new PipeworkError(`Cannot start DHCP client ${client} in an isolated namespace: ${err.message}`);
  } finally {
    closeSync(logFd);
  }

  let exit: { code: number | null; signal: string | null } | undefined;
  const exited = child.exited.then((e) => { exit = e; }, () => { exit = { code: null, signal: 'unknown' }; });
  const childStart = procStat(child.pid)?.startTime ?? '0';
  // Read at once (it has just exec'd): the UTS namespace we made for it, so
  // only it and what it forks are in there. dhclient forks its daemon at
  // start-up, dhcpcd its privsep helpers; all are found (and ended) by it.
  const utsIno = nsInode(child.pid, 'uts');
  const sock = RtnlSocket.open(guestFd);
  const deadline = Date.now() + timeoutMs;
  /** A daemon it forked (dhclient, dhcpcd), once found. */
  let daemon: Proc | undefined;
  let failed = false;

  const fail = async (why: string): Promise<never> => {
    failed = true;
    daemon ??= findDaemon();
    await killTree(child, () => exit !== undefined, exited);
    if (daemon) await terminate(daemon);
    const rest = utsIno === undefined ? [] : procsInUts(utsIno);
    await Promise.all(rest.map((p) => terminate(p, 1000)));
    if (pidfile) removePidfile(pidfile, [child.pid, daemon?.pid, ...rest.map((p) => p.pid)]);
    const log = tail(scratch.log);
    rmSync(scratch.dir, { recursive: true, force: true });
    throw new PipeworkError(`DHCP client ${client} on ${ifname} ${why}${log ? `:\n${log}` : '.'}`);
  };

  /** The daemon the client forked, by its pidfile: a live `client` in the guest's netns, started after it. */
  const daemonPidfile = () => (client === 'dhcpcd' ? firstPidfile(scratch.dhcpcdRun) : pidfile);
  const findDaemon = (): Proc | undefined => {
    const f = daemonPidfile();
    const pid = f ? readPidfile(f) : undefined;
    if (!pid || pid === child.pid) return undefined;
    // Not an older one named by a stale pidfile: started after our child.
    const p = identify(pid, client, netnsIno);
    return p && BigInt(p.startTime) >= BigInt(childStart) ? p : undefined;
  };

  try {
    const index = await linkIndex(sock, ifname);
    let left: Proc | undefined;
    if (client === 'udhcpc' && request.foreground) {
      // udhcpc -f never exits: leased once the address is there and the
      // script (address, routes, resolv.conf) has finished.
      for (;;) {
        if (exit) return await fail(`exited (${describeExit(exit)}) without a lease`);
        if ((await addresses(sock, index, false)).length > 0 && childrenOf(child.pid).length === 0) break;
        if (Date.now() >= deadline) return await fail(`got no lease within ${timeoutMs / 1000} s`);
        await sleep(25);
      }
      left = identify(child.pid, client, netnsIno);
      if (!left) return await fail('vanished right after its lease');
    } else {
      // udhcpc -q exits once leased; dhclient and dhcpcd fork to the
      // background once leased (dhclient also when it gives up: checked below).
      await within(exited, deadline - Date.now());
      if (!exit) return await fail(`got no lease within ${timeoutMs / 1000} s`);
      if (exit.code !== 0) return await fail(`failed (${describeExit(exit)})`);
      if (client !== 'udhcpc') {
        const until = Date.now() + 2000; // the forked daemon writes its pidfile after its parent exits
        while (!(daemon = findDaemon()) && Date.now() < until) await sleep(10);
        if (!daemon) return await fail(`left no running daemon in its pidfile ${daemonPidfile() ?? `in ${scratch.dhcpcdRun}`}`);
      }
      const found = await addresses(sock, index, client === 'dhcpcd');
      if (found.length === 0) return await fail('finished without configuring an address');
      if (client === 'udhcpc' && pidfile) removePidfile(pidfile, [child.pid]); // -q writes none; an old one is stale
      if (client === 'dhclient' && !request.foreground) {
        // As the original: the lease is configured, the daemon is not wanted.
        await terminate(daemon!);
        if (utsIno !== undefined) await Promise.all(procsInUts(utsIno).map((p) => terminate(p, 1000)));
        if (pidfile) removePidfile(pidfile, [daemon!.pid]);
      } else if (daemon) {
        left = daemon;
      }
    }

    const addrs = await addresses(sock, index, true);
    const { dns, resolvConf } = passDns(scratch, request.rootfs);
    if (!left) {
      // Nothing of it may outlive the attach (a script still finishing, say).
      if (utsIno !== undefined) await Promise.all(procsInUts(utsIno).map((p) => terminate(p, 1000)));
      rmSync(scratch.dir, { recursive: true, force: true });
      return { addresses: addrs, dns, resolvConf, stop: async () => {} };
    }
    const leftPidfile = client === 'dhcpcd' ? daemonPidfile() : pidfile;
    const state: ClientState = {
      client, hostname: request.hostname, ifname, pid: left.pid, startTime: left.startTime, comm: left.comm, netnsIno, utsIno, pidfile: leftPidfile,
    };
    writeState(scratch.dir, state);
    return {
      addresses: addrs, dns, resolvConf, pid: left.pid, pidfile: leftPidfile, log: scratch.log,
      stop: once(() => stopRecorded(scratch.dir, state)),
    };
  } catch (e) {
    if (failed) throw e;
    // Anything else (the link vanished, the guest's resolv.conf refused us):
    // nothing may stay running.
    return await fail(`was stopped: ${(e as Error).message}`);
  } finally {
    sock.close();
  }
}

/** The lease's nameservers, as the client's script wrote them into our /etc; copied into the guest's. */
function passDns(scratch: Scratch, rootfs: string | undefined): { dns: string[]; resolvConf?: string } {
  let text = '';
  try {
    text = readFileSync(join(scratch.etcUpper, 'resolv.conf'), 'utf8');
  } catch {
    // removed by a script: nothing to pass on
  }
  const dns = nameservers(text);
  if (!rootfs || dns.length === 0) return { dns };
  const lines = text.split('\n').map((l) => l.trimEnd()).filter((l) => l && !l.startsWith('#'));
  writeInRoot(rootfs, 'etc/resolv.conf', `${lines.join('\n')}\n`);
  return { dns, resolvConf: join(rootfs, 'etc/resolv.conf') };
}
