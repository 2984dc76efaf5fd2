/**
 * `pipework gc`'s part for the Docker plugin: endpoints of containers that
 * went while Docker could not tell the plugin (the plugin was down, so Leave
 * and DeleteEndpoint failed; or Docker died with its containers). What is
 * left: the endpoint's record in the state file, and the links Docker gave
 * back to the host netns when it tore the sandbox down (`pwtmp<id>`, with its
 * veth peer `vpw<id>` still a port of the bridge).
 *
 * An endpoint is left over when all of these hold:
 * - it was joined to a sandbox (the record has the SandboxKey of Join);
 * - that sandbox is no longer a network namespace (its file is gone, or
 *   Docker unmounted it), while the directory it was in is there to look at;
 * - Docker, when it answers (DOCKER_HOST, else /var/run/docker.sock), no
 *   longer lists the endpoint on its network. This covers a container being
 *   started: Docker joins the endpoint before the sandbox becomes a netns.
 * Its links are deleted only when they are of the kind the plugin made.
 *
 * The state file has one writer at a time: a running plugin holds
 * `<state>.lock` (flock) for its life and writes its socket in it. gc takes
 * the lock when it is free and works on the file itself; otherwise it asks
 * the plugin (`POST /Pipework.Gc`), which does the work between two Docker
 * requests, so no Join or Leave runs meanwhile and nothing it saves is lost.
 */
import { closeSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { dirname } from 'node:path';
import { PipeworkError } from '../errors';
import { dockerApi, dockerAvailable } from '../guest/docker';
import { native } from '../native';
import { type Link, dumpLinks, parseLink } from '../netlink/link';
import { RtnlSocket } from '../netlink/socket';
import { Driver, type EndpointRecord, type NetworkRecord, linkNames } from './driver';
import { StateLock } from './state';

/** What gc did (or, dry, would do): one line per endpoint, as the commands that do the same. */
export interface PluginGcReport {
  removed: string[];
  failed: { command: string; error: string }[];
}

const DOCKER_TIMEOUT_MS = 10_000;

interface Leftover {
  net: NetworkRecord;
  ep: EndpointRecord;
  command: string;
  /** Why its links are not ours to delete (then it is reported, not removed). */
  refused?: string;
}

/**
 * The left-over endpoints of driver's state, removed unless dryRun (each
 * as Docker's own DeleteEndpoint would: links, then the record).
 */
export async function collectGarbage(driver: Driver, dryRun: boolean): Promise<PluginGcReport> {
  const report: PluginGcReport = { removed: [], failed: [] };
  for (const l of await leftovers(driver)) {
    if (l.refused) report.failed.push({ command: l.command, error: l.refused });
    else if (dryRun) report.removed.push(l.command);
    else {
      try {
        await driver.deleteEndpoint({ NetworkID: l.net.id, EndpointID: l.ep.id });
        report.removed.push(l.command);
      } catch (e) {
        report.failed.push({ command: l.command, error: (e as Error).message });
      }
    }
  }
  return report;
}

async function leftovers(driver: Driver): Promise<Leftover[]> {
  const state = driver.snapshot();
  const joined = Object.values(state.endpoints).filter((ep) => ep.sandboxKey && state.networks[ep.networkId] && sandboxGone(ep.sandboxKey));
  if (!joined.length) return [];
  const listed = await endpointsDockerLists(new Set(joined.map((ep) => ep.networkId)));
  const gone = joined.filter((ep) => !listed.has(ep.id));
  if (!gone.length) return [];
  const sock = RtnlSocket.open();
  let hostLinks: Link[];
  try {
    hostLinks = (await sock.request(dumpLinks())).map(parseLink);
  } finally {
    sock.close();
  }
  return gone.map((ep) => describe(state.networks[ep.networkId], ep, hostLinks));
}

/** True when the sandbox's file is not a network namespace any more; false when it is, or when we cannot tell. */
function sandboxGone(sandboxKey: string): boolean {
  if (!existsSync(dirname(sandboxKey))) return false; // Docker's netns directory is not visible from here
  try {
    closeSync(native.openNetnsPath(sandboxKey));
    return false;
  } catch (e) {
    // ENOENT: removed; ENOTTY/EINVAL: a plain file (unmounted, not yet removed) or another namespace.
    return ['ENOENT', 'ENOTTY', 'EINVAL'].includes((e as NodeJS.ErrnoException).code ?? '');
  }
}

/**
 * The endpoint ids Docker lists on these networks (those of its sandboxes,
 * running or being set up). None when no Docker answers: then none can be
 * setting a container up either.
 */
async function endpointsDockerLists(networkIds: Set<string>): Promise<Set<string>> {
  const listed = new Set<string>();
  if (!dockerAvailable()) return listed;
  for (const id of networkIds) {
    let res: { status: number; body: any };
    try {
      res = await withTimeout(dockerApi('GET', `/networks/${encodeURIComponent(id)}`), DOCKER_TIMEOUT_MS, 'Docker did not answer');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ECONNREFUSED') return listed; // a socket file with no daemon behind it
      throw e;
    }
    if (res.status === 404) continue;
    if (res.status !== 200) throw new PipeworkError(`Docker answered ${res.status} for network ${id}: ${res.body?.message ?? res.body}`);
    for (const c of Object.values<any>(res.body?.Containers ?? {})) if (typeof c?.EndpointID === 'string') listed.add(c.EndpointID);
  }
  return listed;
}

/** The endpoint's links in the host netns, as the commands that delete them. */
function describe(net: NetworkRecord, ep: EndpointRecord, hostLinks: Link[]): Leftover {
  const names = linkNames(ep.id);
  const byName = (name: string) => hostLinks.find((l) => l.name === name);
  const src = byName(ep.srcName ?? names.srcName);
  const host = net.mode === 'macvlan' ? undefined : byName(ep.hostName ?? names.hostName);
  const commands: string[] = [];
  let refused: string | undefined;
  const wantSrc = net.mode === 'macvlan' ? 'macvlan' : 'veth';
  if (src && src.kind !== wantSrc) refused = `${src.name} is a ${src.kind ?? 'link without a kind'}, not the ${wantSrc} the plugin made: left alone`;
  else if (host && host.kind !== 'veth') refused = `${host.name} is a ${host.kind ?? 'link without a kind'}, not the veth the plugin made: left alone`;
  if (src) commands.push(`ip link del dev ${src.name}`);
  // Deleting a veth end takes its peer: the host end needs its own command only when it is not src's peer.
  if (host && !(src && src.linkNetnsid === undefined && src.parent === host.index)) commands.push(`ip link del dev ${host.name}`);
  if (host && net.mode === 'ovs') commands.push(`ovs-vsctl --if-exists del-port ${net.parent} ${host.name}`);
  const why = `# Docker endpoint ${ep.id.slice(0, 12)} on network ${net.id.slice(0, 12)}: sandbox ${ep.sandboxKey} gone; the plugin forgets it`;
  return { net, ep, command: commands.length ? `${commands.join('; ')}  ${why}` : why, refused };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new PipeworkError(`${what} within ${ms / 1000} s`)), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * `pipework gc` on the plugin state in statePath: by itself when no plugin
 * holds the state, else through the plugin that does. Nothing to do when
 * the file does not exist.
 */
export async function gcPluginState(statePath: string, dryRun: boolean): Promise<PluginGcReport> {
  if (!existsSync(statePath)) return { removed: [], failed: [] };
  // A plugin that is starting or stopping has the lock but no socket to be asked on: try again for a while.
  for (let tries = 1; ; tries++) {
    const lock = await StateLock.take(statePath, 0);
    if (lock) {
      try {
        const driver = Driver.open(statePath);
        try {
          return await collectGarbage(driver, dryRun);
        } finally {
          driver.close();
        }
      } finally {
        lock.release();
      }
    }
    const socket = StateLock.holder(statePath);
    if (socket) {
      try {
        return await askPlugin(socket, dryRun);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || tries >= 50) throw e;
      }
    } else if (tries >= 50) {
      throw new PipeworkError(`${statePath}.lock is held by a process that says no socket to ask it on`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** POST /Pipework.Gc to the plugin serving on socket. */
function askPlugin(socket: string, dryRun: boolean): Promise<PluginGcReport> {
  const body = JSON.stringify({ DryRun: dryRun });
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath: socket, path: '/Pipework.Gc', method: 'POST', agent: false, timeout: 120_000,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        let reply: any;
        try {
          reply = JSON.parse(text);
        } catch {
          reject(new PipeworkError(`the Docker plugin on ${socket} answered ${res.statusCode} with no JSON: ${text.slice(0, 200)}`));
          return;
        }
        if (res.statusCode !== 200) reject(new PipeworkError(`the Docker plugin on ${socket}: ${reply?.Err ?? text}`));
        else resolve({ removed: reply.Removed ?? [], failed: (reply.Failed ?? []).map((f: any) => ({ command: f.Command, error: f.Err })) });
      });
    });
    req.on('timeout', () => req.destroy(new PipeworkError(`the Docker plugin on ${socket} did not answer within 120 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The plugin's side of POST /Pipework.Gc: `{ DryRun }` in, `{ Removed, Failed: [{ Command, Err }] }` out. */
export async function servePluginGc(driver: Driver, req: Record<string, unknown>): Promise<unknown> {
  const { removed, failed } = await collectGarbage(driver, req.DryRun === true);
  return { Removed: removed, Failed: failed.map((f) => ({ Command: f.command, Err: f.error })) };
}
