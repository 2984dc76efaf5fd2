/**
 * `pipework daemon`: one long-lived process, one Session, serving the API of
 * ./server.ts on a unix socket; optionally the Docker network plugin and the
 * Docker events watcher in the same process, so one daemon serves every
 * engine. SIGTERM (or SIGINT, SIGHUP): work in flight finishes, new work is
 * refused (CNI calls with code 11, which runtimes retry), then the socket
 * goes and the process exits with 128 + the signal's number (143 for
 * SIGTERM), as the other long-running commands do.
 */
import { rmSync } from 'node:fs';
import { constants } from 'node:os';
import { PipeworkError } from '../errors';
import { Metrics } from './metrics';
import { createDaemonServer, type DaemonState, type Handlers } from './server';
import { optionsOrExit, readOptions } from '../cli/options';
import type { Out } from '../run/out';

type Session = import('../session').Session;

export const DEFAULT_SOCKET = '/run/pipework/pipework.sock';

/** The other front ends a daemon can host, handed over by the entry (a front end imports none of its peers). */
export interface Hosted {
  batch: Handlers['batch'];
  dockerPlugin: {
    defaultSocket: string;
    defaultState: string;
    start(socket: string, state: string, log?: (line: string) => void): Promise<{ stop(opts: { graceful: boolean }): Promise<void> }>;
  };
  watch(session: Session, cleanup: boolean, log: (line: string) => void): { run(): Promise<void>; stop(): void };
}

export const usage = (h: Hosted) => `Usage: pipework daemon [--socket PATH] [--docker-plugin [--docker-socket PATH] [--docker-state FILE]]
                       [--watch [--cleanup]] [-q]
Serves pipework on a unix socket (HTTP/1.1, JSON; only root and the socket's owner may connect):
the CNI shim's calls, the library's operations, /v1/health and Prometheus /metrics.
  --socket PATH         the daemon's socket (default ${DEFAULT_SOCKET}, mode 0600)
  --docker-plugin       also serve the Docker network plugin (as pipework docker-plugin)
  --docker-socket PATH  its socket (default ${h.dockerPlugin.defaultSocket})
  --docker-state FILE   its networks and endpoints (default ${h.dockerPlugin.defaultState})
  --watch               also plumb Docker containers as their labels ask (as pipework watch)
  --cleanup             with --watch: unplug what was plumbed when a container dies
  -q, --quiet           log only start, stop and failures
SIGTERM: requests in flight finish, new ones are refused (CNI: error 11, try again), exit 143.`;

interface Options {
  socket: string;
  dockerPlugin?: { socket: string; state: string };
  watch?: { cleanup: boolean };
  quiet: boolean;
}

function parseOptions(argv: string[], h: Hosted): Options | 'help' {
  const given = readOptions(argv, 'daemon', {
    flags: { '--docker-plugin': 'docker', '--watch': 'watch', '--cleanup': 'cleanup', '-q': 'quiet', '--quiet': 'quiet' },
    values: { '--socket': 'socket', '--docker-socket': 'dockerSocket', '--docker-state': 'dockerState' },
  });
  if (given === 'help') return 'help';
  const { flags, values: { socket = DEFAULT_SOCKET, dockerSocket, dockerState } } = given;
  const [docker, watch, cleanup, quiet] = (['docker', 'watch', 'cleanup', 'quiet'] as const).map((f) => flags.has(f));
  if (!docker && (dockerSocket || dockerState)) throw new PipeworkError('--docker-socket and --docker-state go with --docker-plugin');
  if (!watch && cleanup) throw new PipeworkError('--cleanup goes with --watch');
  return {
    socket,
    quiet,
    dockerPlugin: docker ? { socket: dockerSocket ?? h.dockerPlugin.defaultSocket, state: dockerState ?? h.dockerPlugin.defaultState } : undefined,
    watch: watch ? { cleanup } : undefined,
  };
}

/** The CNI side of the daemon: the plugin's own call, and the answer while stopping. */
function cniHandlers(): Pick<Handlers, 'cni' | 'cniTryAgain'> {
  const { handleCniCall }: typeof import('../cni/main') = require('../cni/main');
  const { CniError, ErrorCode, toErrorResult }: typeof import('../cni/errors') = require('../cni/errors');
  const { LATEST_VERSION }: typeof import('../cni/version') = require('../cni/version');
  return {
    cni: (env, stdin, session) => handleCniCall(env, stdin, { session }),
    cniTryAgain: (stdin) => {
      let version: unknown;
      try {
        version = (JSON.parse(stdin) as { cniVersion?: unknown })?.cniVersion;
      } catch {
        version = undefined;
      }
      const e = new CniError(ErrorCode.TryAgainLater, 'the pipework daemon is stopping', 'try again: a new daemon or the pipework-cni plugin will answer');
      return `${JSON.stringify(toErrorResult(e, typeof version === 'string' ? version : LATEST_VERSION))}\n`;
    },
  };
}

/** Runs the daemon until a stop signal; resolves with the exit status (128 + the signal's number). */
export async function main(argv: string[], hosted: Hosted, io: Out): Promise<number> {
  const opts = optionsOrExit(() => parseOptions(argv, hosted), usage(hosted), io);
  if (typeof opts === 'number') return opts;
  const stamp = (line: string) => io.err(`${new Date().toISOString()} pipework daemon: ${line}`);
  const { Session }: typeof import('../session') = require('../session');
  const { listenUnix }: typeof import('../run/listen') = require('../run/listen');
  const session = new Session();
  const state: DaemonState = {
    session,
    metrics: new Metrics(),
    handlers: { ...cniHandlers(), batch: hosted.batch },
    ownerUid: process.geteuid!(),
    stopping: false,
    active: 0,
    log: stamp,
  };
  // Taken from here on: a stop signal while starting up stops the daemon as soon as it has started.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    const stop = (s: NodeJS.Signals) => {
      if (state.stopping) {
        stamp(`${s} again: still finishing ${state.active} request(s)`);
        return;
      }
      state.stopping = true;
      resolve(s);
    };
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, stop);
  });
  const server = createDaemonServer(state);
  let plugin: Awaited<ReturnType<Hosted['dockerPlugin']['start']>> | undefined;
  let watcher: ReturnType<Hosted['watch']> | undefined;
  let watching: Promise<void> | undefined;
  try {
    await listenUnix(server, opts.socket, { mode: 0o600, what: 'another pipework daemon' });
  } catch (e) {
    session.close();
    io.err(`pipework daemon: cannot listen on ${opts.socket}: ${(e as Error).message}`);
    return 1;
  }
  try {
    if (opts.dockerPlugin) plugin = await hosted.dockerPlugin.start(opts.dockerPlugin.socket, opts.dockerPlugin.state, opts.quiet ? undefined : io.err);
  } catch (e) {
    await closeServer(server);
    rmSync(opts.socket, { force: true });
    session.close();
    io.err(`pipework daemon: ${(e as Error).message}`);
    return 1;
  }
  if (opts.watch) {
    watcher = hosted.watch(session, opts.watch.cleanup, opts.quiet ? () => undefined : io.err);
    watching = watcher.run();
  }
  stamp(`listening on ${opts.socket} (pid ${process.pid})${plugin ? `, Docker plugin on ${opts.dockerPlugin!.socket}` : ''}${watcher ? ', watching Docker' : ''}`);

  const signal = await stopSignal;
  stamp(`${signal}: finishing ${state.active} request(s) in flight, refusing new ones`);
  // New CNI calls are answered (code 11) until the last request received has been answered.
  await new Promise<void>((resolve) => {
    state.onIdle = () => { if (state.active === 0) resolve(); };
    state.onIdle();
  });
  await closeServer(server);
  rmSync(opts.socket, { force: true });
  watcher?.stop();
  await Promise.all([watching, plugin?.stop({ graceful: true })]);
  session.close();
  stamp('stopped');
  return 128 + constants.signals[signal];
}

/** Stops listening; connections kept alive by clients are closed (nothing is in flight on them any more). */
function closeServer(server: import('node:http').Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
