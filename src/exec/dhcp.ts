// Runs a DHCP client for a container interface, the way the original did,
// minus its side effects on the host:
// - the client runs in the guest's netns, in a private mount namespace where
//   /etc is an overlay (its scripts' resolv.conf, hostname files and temp
//   files land in a scratch dir) and in a private UTS namespace (a script's
//   `hostname` renames nobody);
// - the lease's DNS servers go to the guest's own resolv.conf (Docker, LXC);
// - a client that stays running is remembered (state file), so its undo and
//   a later `pipework unplug` can stop exactly that process.
import {
  accessSync, closeSync, constants, existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync,
  realpathSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { PipeworkError } from '../errors';
import { type DhcpRequest, dhcpCommandLine, fileSafe, leaseDir, runDir, scratchBase } from '../plan/dhcp';
import type { DhcpClientRecord } from '../plan/detach';
import type { ClientState } from './dhcp-records';

/** What the client got. stop() ends a client left running and removes its pidfile (undo). */
export interface DhcpOutcome {
  addresses: string[];
  dns: string[];
  /** The guest's resolv.conf we wrote the lease's DNS servers to, if any. */
  resolvConf?: string;
  /** PID of a client left running (-f variants, dhcpcd; for `dhcp`, the helper container's udhcpc). */
  pid?: number;
  /** Its pidfile, if it has one. */
  pidfile?: string;
  /** `dhcp` method: the busybox helper container left running. */
  helperContainer?: string;
  /** The client's stdout and stderr while it is left running (removed by stop()). */
  log?: string;
  stop(): Promise<void>;
}

/** How long to wait for a lease: PIPEWORK_DHCP_TIMEOUT seconds, default 30. */
export function dhcpTimeoutMs(): number {
  const text = process.env.PIPEWORK_DHCP_TIMEOUT;
  if (text === undefined || text === '') return 30_000;
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) {
    throw new PipeworkError(`Invalid PIPEWORK_DHCP_TIMEOUT: ${text} (seconds, more than 0)`);
  }
  return Math.round(Number(text) * 1000);
}

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/**
 * The client's executable, looked up on PATH as the original's `which` did
 * (so PATH decides, e.g. for a client installed elsewhere), or the
 * original's message.
 */
export function findDhcpClient(request: Pick<DhcpRequest, 'client'>): string {
  if (request.client === 'dhcp') throw new Error('the dhcp method runs udhcpc in a Docker helper container, not here');
  const name = request.client;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir.startsWith('/')) continue; // relative PATH entries: not for a program run as root
    const path = `${dir}/${name}`;
    try {
      if (statSync(path).isFile()) {
        accessSync(path, constants.X_OK); // as exec would: throws if not executable
        return path;
      }
    } catch {
      // not here
    }
  }
  throw new PipeworkError(`You asked for DHCP client ${name}, but I can't find it.`);
}

/**
 * Checks what can be checked before anything changes: the client exists
 * (the original's message), or for `dhcp`, that the guest is a Docker
 * container. The planner may call it up front; runDhcpClient calls it too.
 */
export function checkDhcpRequest(request: DhcpRequest): void {
  if (request.client === 'dhcp') {
    if (!request.docker) {
      throw new PipeworkError([
        'You asked for a Docker-specific DHCP method.',
        `However, ${request.hostname} doesn't seem to be a Docker container.`,
        "Try to replace 'dhcp' with another option?",
        'Aborting.',
      ].join('\n'));
    }
    return;
  }
  findDhcpClient(request);
  dhcpTimeoutMs();
}

export async function runDhcpClient(ctx: { guestFd: number; ifname: string; request: DhcpRequest }): Promise<DhcpOutcome> {
  checkDhcpRequest(ctx.request);
  const run = ctx.request.client === 'dhcp' ? runDockerHelper : runLocalClient;
  return run(ctx.guestFd, ctx.ifname, ctx.request);
}

// ---------------------------------------------------------------------------
// Local clients: udhcpc, dhclient, dhcpcd

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

/** A new scratch dir `<scratchBase>/<guest>.<ifname>.XXXXXX`. */
function scratchDir(hostname: string, ifname: string): string {
  const base = scratchBase();
  mkdirSync(base, { recursive: true, mode: 0o700 });
  return mkdtempSync(join(base, `${fileSafe(hostname)}.${fileSafe(ifname)}.`));
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

async function runLocalClient(guestFd: number, ifname: string, request: DhcpRequest): Promise<DhcpOutcome> {
  const file = findDhcpClient(request);
  const timeoutMs = dhcpTimeoutMs();
  const argv = dhcpCommandLine(ifname, request);
  const client = request.client;
  const netnsIno = fstatSync(guestFd).ino;
  const pidfile = client === 'udhcpc' ? argAfter(argv, '-p') : client === 'dhclient' ? argAfter(argv, '-pf') : undefined;
  const { RtnlSocket }: typeof import('../netlink/socket') = require('../netlink/socket');

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

  const { spawnIsolated }: typeof import('../native/spawn') = require('../native/spawn');
  const logFd = openSync(scratch.log, 'a', 0o600);
  let child: import('../native/spawn').IsolatedChild;
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

export function nameservers(resolvConf: string): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]);
  }
  return out;
}

/**
 * Writes a file inside a container's root without following its symlinks out
 * of it. Docker bind-mounts its resolv.conf there: O_TRUNC writes through to
 * that file, as wanted (a rename would fail on the mount point).
 */
function writeInRoot(rootfs: string, path: string, content: string): void {
  const { openInRoot }: typeof import('../native/spawn') = require('../native/spawn');
  let fd: number;
  try {
    // A symlink is followed, but only inside rootfs (RESOLVE_IN_ROOT).
    fd = openInRoot(rootfs, path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
  } catch (e) {
    throw new PipeworkError(`Cannot write the lease's DNS servers to ${join(rootfs, path)}: ${(e as Error).message}`);
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

function readInRoot(rootfs: string, path: string): string | undefined {
  const { openInRoot }: typeof import('../native/spawn') = require('../native/spawn');
  try {
    const fd = openInRoot(rootfs, path, constants.O_RDONLY);
    try {
      return readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// The `dhcp` method: busybox udhcpc in a helper container sharing the guest's netns

const HELPER_LABEL = 'pipework.dhcp-helper';

/**
 * udhcpc does nothing with a lease but run its event script, and Docker's
 * official busybox image ships none (upstream issue 163: the original's
 * `dhcp` method leased an address and configured nothing). The helper gets
 * this one, read-only, where either busybox build looks for its default
 * (a user's own `-s` still wins). Like Debian's default.script, with
 * busybox applets only, except that a lease without DNS servers leaves the
 * container's resolv.conf alone instead of emptying it.
 */
export const HELPER_SCRIPT = `#!/bin/sh
# udhcpc event script of pipework's DHCP helper container
case "$1" in
  deconfig)
    ip link set "$interface" up
    ip -4 addr flush dev "$interface"
    ;;
  bound|renew)
    ifconfig "$interface" \${mtu:+mtu $mtu} "$ip" netmask "$subnet" \${broadcast:+broadcast $broadcast}
    router="\${router%% *}"
    current=$(ip -4 route show dev "$interface" | awk '$1 == "default" { print $3 }')
    [ ".$router" != ".$current" ] && ip -4 route flush exact 0.0.0.0/0 dev "$interface"
    [ -n "$router" ] && ip -4 route replace default via "$router" dev "$interface"
    if [ -n "$dns" ]; then
      R=""
      [ -n "$domain" ] && R="search $domain
"
      for i in $dns; do R="\${R}nameserver $i
"; done
      printf '%s' "$R" > /etc/resolv.conf
    fi
    ;;
esac
exit 0
`;

const HELPER_SCRIPT_TARGETS = ['/usr/share/udhcpc/default.script', '/etc/udhcpc/default.script'];

async function runDockerHelper(guestFd: number, ifname: string, request: DhcpRequest): Promise<DhcpOutcome> {
  const { dockerApi }: typeof import('../guest/docker') = require('../guest/docker');
  const { RtnlSocket }: typeof import('../netlink/socket') = require('../netlink/socket');
  const docker = request.docker!;
  const timeoutMs = dhcpTimeoutMs();
  const deadline = Date.now() + timeoutMs;
  const dir = scratchDir(request.hostname, ifname);
  const script = join(dir, 'udhcpc.script');
  writeFileSync(script, HELPER_SCRIPT, { mode: 0o755 });
  // -f: busybox udhcpc otherwise forks to the background once leased, so
  // the helper's PID 1 exits, Docker ends the container, and nobody renews
  // the lease: what the original did (upstream issues 111, 133, 181).
  const [prog, ...args] = dhcpCommandLine(ifname, request);
  const spec = {
    Image: 'busybox',
    Cmd: [prog, ...args],
    Labels: { [HELPER_LABEL]: 'true', 'pipework.containerid': docker.id, 'pipework.interface': ifname },
    // udhcpc stays running to renew the lease (as in the original); AutoRemove:
    // no stray exited helpers (upstream issue 163).
    HostConfig: {
      NetworkMode: `container:${docker.id}`, CapAdd: ['NET_ADMIN'], AutoRemove: true,
      Binds: HELPER_SCRIPT_TARGETS.map((t) => `${script}:${t}:ro`),
    },
  };
  const message = (r: { status: number; body: any }) => `${r.status} ${typeof r.body === 'string' ? r.body.trim() : r.body?.message ?? ''}`;
  let id: string | undefined;
  let failed = false;
  const remove = async () => {
    if (!id) return;
    const r = await dockerApi('DELETE', `/containers/${id}?force=true`).catch((e: Error) => ({ status: 0, body: e.message }));
    if (r.status !== 204 && r.status !== 404 && r.status !== 409) throw new PipeworkError(`Cannot remove the DHCP helper container ${id.slice(0, 12)}: ${message(r)}`);
  };
  const fail = async (why: string): Promise<never> => {
    failed = true;
    const logs = id ? await dockerApi('GET', `/containers/${id}/logs?stdout=1&stderr=1&tail=20`).catch(() => undefined) : undefined;
    await remove().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    const text = logs?.status === 200 && typeof logs.body === 'string' ? stripDockerStream(logs.body) : '';
    throw new PipeworkError(`DHCP helper container (busybox udhcpc) on ${ifname} ${why}${text ? `:\n${text}` : '.'}`);
  };

  const sock = RtnlSocket.open(guestFd);
  try {
    let created = await dockerApi('POST', '/containers/create', spec);
    if (created.status === 404) {
      // `docker run` pulls a missing image: so do we.
      const pulled = await dockerApi('POST', '/images/create?fromImage=busybox&tag=latest');
      const text = typeof pulled.body === 'string' ? pulled.body : JSON.stringify(pulled.body ?? '');
      if (pulled.status !== 200 || /"error"/.test(text)) return await fail(`could not be created: cannot pull the busybox image: ${message(pulled)}`);
      created = await dockerApi('POST', '/containers/create', spec);
    }
    if (created.status !== 201) return await fail(`could not be created: ${message(created)}`);
    id = created.body.Id as string;
    const started = await dockerApi('POST', `/containers/${id}/start`);
    if (started.status !== 204 && started.status !== 304) return await fail(`could not start: ${message(started)}`);
    const inspected = await dockerApi('GET', `/containers/${id}/json`);
    const pid = Number(inspected.body?.State?.Pid ?? 0);
    const helper = pid > 0 ? identify(pid) : undefined;
    if (!helper) return await fail('exited at once');

    const index = await linkIndex(sock, ifname);
    for (;;) {
      if (!alive(helper)) return await fail('exited without a lease');
      if ((await addresses(sock, index, false)).length > 0 && childrenOf(pid).length === 0) break;
      if (Date.now() >= deadline) return await fail(`got no lease within ${timeoutMs / 1000} s`);
      await sleep(25);
    }
    const addrs = await addresses(sock, index, true);
    // The helper shares the guest's resolv.conf (Docker gives container:
    // network mode the other container's file): its script wrote it already.
    const written = request.rootfs ? readInRoot(request.rootfs, 'etc/resolv.conf') : undefined;
    const state: ClientState = { client: 'dhcp', hostname: request.hostname, ifname, helperContainer: id, pid, startTime: helper.startTime };
    writeState(dir, state);
    return {
      addresses: addrs, dns: nameservers(written ?? ''), resolvConf: written !== undefined ? join(request.rootfs!, 'etc/resolv.conf') : undefined,
      pid, helperContainer: id,
      stop: once(() => stopRecorded(dir, state)),
    };
  } catch (e) {
    if (failed) throw e;
    return await fail(`was stopped: ${(e as Error).message}`);
  } finally {
    sock.close();
  }
}

/** Docker's log stream for a non-TTY container: 8-byte frame headers before each chunk. */
function stripDockerStream(s: string): string {
  return s.replace(/[\x00-\x02]\x00\x00\x00[\s\S]{4}/g, '').trim().split('\n').slice(-20).join('\n');
}

// ---------------------------------------------------------------------------
// Stopping what was left running, now or from a later process (unplug)

function writeState(dir: string, state: ClientState): void {
  const tmp = join(dir, 'state.json.tmp');
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  renameSync(tmp, join(dir, 'state.json'));
}

/** Ends the recorded client (only if it is still that very process), its pidfile and its scratch dir. */
async function stopRecorded(dir: string, state: ClientState): Promise<void> {
  if (state.helperContainer) {
    const { dockerApi }: typeof import('../guest/docker') = require('../guest/docker');
    const r = await dockerApi('DELETE', `/containers/${state.helperContainer}?force=true`);
    if (r.status !== 204 && r.status !== 404 && r.status !== 409) {
      throw new PipeworkError(`Cannot remove the DHCP helper container ${state.helperContainer.slice(0, 12)}: ${r.status}`);
    }
  } else if (state.pid && state.startTime) {
    // The client itself first (TERM: it may tidy up, dhcpcd ends its helpers),
    // then whatever else it left in its UTS namespace.
    const p = identify(state.pid, state.comm, state.netnsIno);
    if (p && p.startTime === state.startTime) await terminate(p);
    if (state.utsIno !== undefined) await Promise.all(procsInUts(state.utsIno).map((q) => terminate(q, 1000)));
  }
  if (state.pidfile) removePidfile(state.pidfile, [state.pid]);
  rmSync(dir, { recursive: true, force: true });
}

/** Whether a client findDhcpClients found still runs (the very process recorded). */
export function dhcpClientRunning(record: DhcpClientRecord): boolean {
  let state: ClientState;
  try {
    state = JSON.parse(readFileSync(join(record.dir, 'state.json'), 'utf8'));
  } catch {
    return false;
  }
  if (state.helperContainer) return true; // its container's fate is Docker's to tell; unplug removes it
  const p = state.pid && state.startTime ? identify(state.pid, state.comm, state.netnsIno) : undefined;
  return !!p && p.startTime === state.startTime;
}

/**
 * gc: whether anything but the recorded client still uses its netns (a
 * process outside the client's own UTS namespace, or a name in /run/netns):
 * a client alone in it keeps alive the netns of a container that is gone.
 */
export function dhcpNetnsInUse(record: DhcpClientRecord): boolean {
  let state: ClientState;
  try {
    state = JSON.parse(readFileSync(join(record.dir, 'state.json'), 'utf8'));
  } catch {
    return true; // nothing to judge by: not ours to stop
  }
  if (state.netnsIno === undefined || state.utsIno === undefined || state.helperContainer) return true;
  try {
    for (const name of readdirSync('/run/netns')) {
      try { if (statSync(`/run/netns/${name}`).ino === state.netnsIno) return true; } catch { /* gone meanwhile */ }
    }
  } catch { /* no /run/netns */ }
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (nsInode(pid, 'net') === state.netnsIno && nsInode(pid, 'uts') !== state.utsIno && identify(pid)) return true;
  }
  return false;
}

/** Whether the client stays running after the lease (the -f variants, dhcpcd, Docker's helper). */
export const dhcpClientStays = (r: Pick<DhcpRequest, 'client' | 'foreground'>) => r.foreground || r.client === 'dhcpcd' || r.client === 'dhcp';

/**
 * Stops a client findDhcpClients found (only if its PID still is that
 * process) and removes its pidfile and scratch dir; gone already is success.
 */
export async function stopDhcpClient(record: DhcpClientRecord): Promise<void> {
  let state: ClientState;
  try {
    state = JSON.parse(readFileSync(join(record.dir, 'state.json'), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  await stopRecorded(record.dir, state);
}

// ---------------------------------------------------------------------------
// Processes: only ever signalled after checking they are the one we mean

interface Proc {
  pid: number;
  startTime: string;
  comm: string;
}

function procStat(pid: number): { state: string; startTime: string; comm: string } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], startTime: rest[19], comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')) };
  } catch {
    return undefined;
  }
}

/** The live process pid, if it is named comm and (if given) in the netns with inode netnsIno. */
function identify(pid: number, comm?: string, netnsIno?: number): Proc | undefined {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return undefined;
  if (comm !== undefined && st.comm !== comm) return undefined;
  if (netnsIno !== undefined) {
    try {
      if (statSync(`/proc/${pid}/ns/net`).ino !== netnsIno) return undefined;
    } catch {
      return undefined;
    }
  }
  return { pid, startTime: st.startTime, comm: st.comm };
}

const alive = (p: Proc) => {
  const st = procStat(p.pid);
  return st !== undefined && st.startTime === p.startTime && st.state !== 'Z' && st.state !== 'X';
};

function signal(p: Proc, sig: NodeJS.Signals): void {
  if (!alive(p)) return;
  try {
    process.kill(p.pid, sig);
  } catch {
    // gone meanwhile
  }
}

/** TERM, up to 3 s, then KILL; resolves once it is gone. */
async function terminate(p: Proc, graceMs = 3000): Promise<void> {
  signal(p, 'SIGTERM');
  const until = Date.now() + graceMs;
  while (alive(p) && Date.now() < until) await sleep(10);
  if (!alive(p)) return;
  signal(p, 'SIGKILL');
  const hard = Date.now() + 3000;
  while (alive(p) && Date.now() < hard) await sleep(10);
}

/** Our own child (watched by pidfd, so its PID is ours until `exited` settles): TERM, then KILL. */
async function killTree(child: { pid: number }, gone: () => boolean, exited: Promise<void>): Promise<void> {
  if (gone()) return;
  try { process.kill(child.pid, 'SIGTERM'); } catch { /* exited meanwhile */ }
  await within(exited, 2000);
  if (gone()) return;
  try { process.kill(child.pid, 'SIGKILL'); } catch { /* exited meanwhile */ }
  await within(exited, 3000);
}

/** Waits for p, at most ms; the timer does not outlive the wait (it would hold the event loop). */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => { timer = setTimeout(r, Math.max(0, ms)); })]);
  } finally {
    clearTimeout(timer);
  }
}

function nsInode(pid: number, kind: string): number | undefined {
  try {
    return statSync(`/proc/${pid}/ns/${kind}`).ino;
  } catch {
    return undefined;
  }
}

/**
 * Live processes in the UTS namespace with inode ino. Only used for the
 * namespaces we create for a client (never the host's: checked), so all of
 * them are the client's own.
 */
function procsInUts(ino: number): Proc[] {
  if (ino === nsInode(process.pid, 'uts')) return [];
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (nsInode(pid, 'uts') !== ino) continue;
    const p = identify(pid);
    if (p) out.push(p);
  }
  return out;
}

/** Direct children of pid (a client's running script). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function readPidfile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function firstPidfile(dir: string): string | undefined {
  try {
    const f = readdirSync(dir).filter((n) => n.endsWith('.pid')).sort()[0];
    return f && join(dir, f);
  } catch {
    return undefined;
  }
}

/** Removes a pidfile naming one of pids, or a process no longer running; never someone else's live one. */
function removePidfile(path: string, pids: Array<number | undefined>): void {
  const pid = readPidfile(path);
  if (pid === undefined && !existsSync(path)) return;
  if (pid !== undefined && !pids.includes(pid) && procStat(pid) && procStat(pid)!.state !== 'Z') return;
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

function describeExit(e: { code: number | null; signal: string | null }): string {
  return e.signal ? `killed by ${e.signal}` : `exit ${e.code}`;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}

// ---------------------------------------------------------------------------
// Reading the result back over netlink

async function linkIndex(sock: import('../netlink/socket').RtnlSocket, ifname: string): Promise<number> {
  const { getLinkByName, parseLink }: typeof import('../netlink/link') = require('../netlink/link');
  return parseLink((await sock.request(getLinkByName(ifname)))[0]).index;
}

/** The link's IPv4 addresses (and with v6, its global IPv6 ones) as CIDR strings. */
async function addresses(sock: import('../netlink/socket').RtnlSocket, index: number, v6: boolean): Promise<string[]> {
  const { readAddresses }: typeof import('../netlink/address') = require('../netlink/address');
  const { formatIp }: typeof import('../addressing') = require('../addressing');
  const C: typeof import('../netlink/constants') = require('../netlink/constants');
  return (await readAddresses(sock, v6 ? 0 : C.AF_INET))
    .filter((a) => a.index === index && (a.family === C.AF_INET || (a.family === C.AF_INET6 && a.scope === C.RT_SCOPE_UNIVERSE)))
    .map((a) => `${formatIp(a.address)}/${a.prefixLen}`);
}
