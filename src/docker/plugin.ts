/**
 * `pipework docker-plugin [--socket PATH] [--state FILE]`: a Docker network
 * plugin (libnetwork's remote driver protocol: JSON over HTTP POSTs) on a
 * unix socket. Docker finds it as the driver named after the socket file
 * (`/run/docker/plugins/pipework.sock` -> `docker network create -d pipework`).
 *
 * Replies: 200 with the method's JSON; a request Docker cannot have meant
 * (bad JSON, missing fields, unknown network or endpoint) or an operation that
 * failed: 500 with `{"Err": "..."}`; an unknown method: 404 with `{"Err"}`
 * (Docker reads 404 as "not implemented"). Requests run one at a time, each
 * ending with the state saved, so the plugin can be killed at any moment.
 * The plugin holds the state file's lock for its life (src/docker/gc.ts says
 * how `pipework gc` works on a state file a plugin holds).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rmSync } from 'node:fs';
import { PipeworkError, RollbackError } from '../errors';
import { Driver, DriverError } from './driver';
import { servePluginGc } from './gc';
import { StateLock } from './state';
import { listenUnix } from '../run/listen';
import { optionsOrExit, readOptions } from '../cli/options';
import type { Out } from '../run/out';

export const DEFAULT_SOCKET = '/run/docker/plugins/pipework.sock';
export const DEFAULT_STATE = '/var/lib/pipework/docker-plugin.json';
const MAX_BODY = 1 << 20;
/** How long a starting plugin waits for the state file's lock (a `pipework gc` holds it for a moment). */
const LOCK_WAIT_MS = 10_000;
const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

export const USAGE = `Usage: pipework docker-plugin [--socket PATH] [--state FILE] [-q]
  --socket PATH   where Docker finds the plugin (default ${DEFAULT_SOCKET});
                  the driver is named after the file: pipework.sock -> -d pipework
  --state FILE    networks and endpoints, kept across restarts (default ${DEFAULT_STATE})
  -q, --quiet     do not log each request
Then: docker network create -d pipework -o parent=br0 [-o mode=bridge|macvlan] [-o vlan=N] [-o mtu=N] [-o macvlan_mode=M] --subnet ... NAME`;

type Handler = (d: Driver, req: Record<string, unknown>) => unknown;

/** Methods by URL; `log: false` for the chatty read-only ones. */
const METHODS: Record<string, { fn: Handler; log?: boolean }> = {
  '/Plugin.Activate': { fn: (d) => d.activate() },
  '/NetworkDriver.GetCapabilities': { fn: (d) => d.getCapabilities() },
  '/NetworkDriver.CreateNetwork': { fn: (d, r) => d.createNetwork(r), log: true },
  '/NetworkDriver.DeleteNetwork': { fn: (d, r) => d.deleteNetwork(r), log: true },
  '/NetworkDriver.CreateEndpoint': { fn: (d, r) => d.createEndpoint(r), log: true },
  '/NetworkDriver.DeleteEndpoint': { fn: (d, r) => d.deleteEndpoint(r), log: true },
  '/NetworkDriver.EndpointOperInfo': { fn: (d, r) => d.endpointOperInfo(r) },
  '/NetworkDriver.Join': { fn: (d, r) => d.join(r), log: true },
  '/NetworkDriver.Leave': { fn: (d, r) => d.leave(r), log: true },
  // Nothing to do for a local-scope driver without external connectivity of its own.
  '/NetworkDriver.DiscoverNew': { fn: () => ({}) },
  '/NetworkDriver.DiscoverDelete': { fn: () => ({}) },
  '/NetworkDriver.ProgramExternalConnectivity': { fn: () => ({}) },
  '/NetworkDriver.RevokeExternalConnectivity': { fn: () => ({}) },
  '/NetworkDriver.AllocateNetwork': { fn: () => ({ Options: {} }) },
  '/NetworkDriver.FreeNetwork': { fn: () => ({}) },
  // Ours, not Docker's: `pipework gc` asks the plugin that holds the state file (src/docker/gc.ts).
  '/Pipework.Gc': { fn: servePluginGc, log: true },
};

/**
 * The HTTP side: parses, serializes, answers; never throws. Requests run one at a time, in arrival order;
 * once `stop` is aborted, those not started are answered with an error
 * (Docker retries or reports it) and `idle()` resolves when the one running is done.
 */
export function createPluginServer(driver: Driver, log?: (line: string) => void, stop?: AbortSignal): Server & { idle(): Promise<void> } {
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    const method = METHODS[path];
    if (req.method !== 'POST') {
      req.resume();
      reply(res, 405, { Err: `${req.method} ${path}: the plugin API takes POST` });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) tooBig = true;
      else chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (!method) {
        reply(res, 404, { Err: `pipework docker-plugin does not implement ${path}` });
        return;
      }
      if (tooBig) {
        reply(res, 500, { Err: `request body over ${MAX_BODY} bytes` });
        return;
      }
      let body: unknown;
      const text = Buffer.concat(chunks).toString('utf8').trim();
      try {
        body = text ? JSON.parse(text) : {};
      } catch (e) {
        reply(res, 500, { Err: `invalid JSON: ${(e as Error).message}` });
        return;
      }
      if (body === null) body = {};
      if (typeof body !== 'object' || Array.isArray(body)) {
        reply(res, 500, { Err: 'the request body must be a JSON object' });
        return;
      }
      const r = body as Record<string, unknown>;
      const what = [r.NetworkID, r.EndpointID].filter((x) => typeof x === 'string').map((x) => (x).slice(0, 12)).join('/');
      serial(async () => {
        if (stop?.aborted) throw new PipeworkError('pipework docker-plugin is stopping: request not started');
        return method.fn(driver, r);
      }).then(
        (out) => {
          if (method.log) log?.(`${new Date().toISOString()} ${path.slice(1)} ${what}: ok`);
          reply(res, 200, out ?? {});
        },
        (e) => {
          const err = e as Error;
          // A RollbackError's message says what failed and which undo steps failed too (what may be left).
          const known = err instanceof DriverError || err instanceof PipeworkError || err instanceof RollbackError || err?.name === 'NetlinkError';
          const message = known ? err.message : `internal error: ${err?.message ?? err}`;
          log?.(`${new Date().toISOString()} ${path.slice(1)} ${what}: ${message.replace(/\n/g, ' ')}`);
          reply(res, err instanceof DriverError ? err.status : 500, { Err: message });
        },
      );
    });
  };

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      reply(res, 500, { Err: `internal error: ${(e as Error).message}` });
    }
  });
  return Object.assign(server, {
    async idle() {
      for (let q = queue; ; q = queue) {
        await q;
        if (q === queue) return;
      }
    },
  });
}

function parseOptions(argv: string[]): { socket: string; state: string; quiet: boolean } | 'help' {
  const given = readOptions(argv, 'docker-plugin', { flags: { '-q': 'quiet', '--quiet': 'quiet' }, values: { '--socket': 'socket', '--state': 'state' } });
  if (given === 'help') return 'help';
  const { socket = DEFAULT_SOCKET, state = DEFAULT_STATE } = given.values;
  return { socket, state, quiet: given.flags.has('quiet') };
}

/**
 * Resolves with the exit status (128 + the signal's number) once SIGTERM,
 * SIGINT or SIGHUP stops the plugin: no request starts after the signal,
 * the one running finishes.
 */
export async function main(argv: string[], io: Out): Promise<number> {
  const opts = optionsOrExit(() => parseOptions(argv), USAGE, io);
  if (typeof opts === 'number') return opts;
  const log = opts.quiet ? undefined : (line: string) => io.err(line);
  let plugin: RunningPlugin;
  try {
    plugin = await startPlugin(opts.socket, opts.state, log);
  } catch (e) {
    io.err((e as Error).message);
    return 1;
  }
  const { stopOnSignals }: typeof import('../cli/signals') = require('../cli/signals');
  const stopping = stopOnSignals((text) => log?.(`${new Date().toISOString()} ${text}`), {
    stopping: 'stopping: no new requests, finishing the one in progress',
  });
  await new Promise((resolve) => stopping.stop.addEventListener('abort', resolve, { once: true }));
  await plugin.stop({ graceful: true });
  stopping.dispose();
  log?.(`${new Date().toISOString()} pipework docker-plugin: stopped`);
  return stopping.exitStatus();
}

export interface RunningPlugin {
  /**
   * Stops listening and removes the socket; no request starts any more (those
   * waiting are answered with an error). graceful: the one running finishes
   * first; otherwise connections are cut.
   */
  stop(opts: { graceful: boolean }): Promise<void>;
}

/** The plugin serving on socket, its networks and endpoints in the state file (those of an earlier run picked up). */
export async function startPlugin(socket: string, state: string, log?: (line: string) => void): Promise<RunningPlugin> {
  // One writer per state file: a `pipework gc` holds the lock for a moment, another plugin for good.
  const lock = await StateLock.take(state, LOCK_WAIT_MS);
  if (!lock) {
    const holder = StateLock.holder(state);
    throw new PipeworkError(`the state file ${state} is in use by another process${holder ? ` (a plugin serving ${holder})` : ''}`);
  }
  let driver: Driver;
  try {
    driver = Driver.open(state);
  } catch (e) {
    lock.release();
    throw e;
  }
  const stopping = new AbortController();
  const server = createPluginServer(driver, log, stopping.signal);
  try {
    await listenUnix(server, socket, { what: 'another plugin' });
  } catch (e) {
    driver.close();
    lock.release();
    throw new PipeworkError(`cannot listen on ${socket}: ${(e as Error).message}`);
  }
  lock.announce(socket);
  log?.(`${new Date().toISOString()} pipework docker-plugin: listening on ${socket}, state in ${state}`);
  return {
    async stop({ graceful }) {
      stopping.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (graceful) {
        // Connections Docker keeps alive: the idle ones now and once the request running is answered;
        // one that never finishes sending its request is cut after a while.
        server.closeIdleConnections();
        await server.idle();
        server.closeIdleConnections();
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
      }
      server.closeAllConnections();
      await closed;
      rmSync(socket, { force: true });
      driver.close();
      lock.release();
    },
  };
}
