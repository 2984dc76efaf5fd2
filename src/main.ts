/**
 * The `pipework` command's entry: hands the subcommands of the Docker front
 * end and the daemon to them and everything else to the CLI. Each is loaded only when asked
 * for: a single call has to start faster than the shell original runs.
 */
import type { Out } from './run/out';

// Here rather than in run/out.ts: a module more to load would cost every call at start-up.
const stdio: Out = { out: (line) => process.stdout.write(`${line}\n`), err: (line) => process.stderr.write(`${line}\n`) };

/** Runs one command line; resolves with the exit status. io: default the process's stdout and stderr. */
export function main(argv: string[], io: Out = stdio): Promise<number> {
  if (argv[0] === 'docker-plugin') return (require('./docker/plugin') as typeof import('./docker/plugin')).main(argv.slice(1), io);
  if (argv[0] === 'watch') return (require('./docker/watch') as typeof import('./docker/watch')).main(argv.slice(1), io);
  if (argv[0] === 'daemon') return (require('./daemon/main') as typeof import('./daemon/main')).main(argv.slice(1), daemonHosts(), io);
  return (require('./cli/main') as typeof import('./cli/main')).main(argv, io, cliHooks);
}

/** The Docker plugin's part of `pipework gc`, loaded only when gc runs. */
const cliHooks: import('./cli/main').CliHooks = {
  dockerPluginGc: (statePath, dryRun) => {
    const plugin: typeof import('./docker/plugin') = require('./docker/plugin');
    const { gcPluginState }: typeof import('./docker/gc') = require('./docker/gc');
    return gcPluginState(statePath ?? plugin.DEFAULT_STATE, dryRun);
  },
};

/** What `pipework daemon` hosts besides its own API: batches as --batch runs them, the Docker plugin, the watcher. */
function daemonHosts(): import('./daemon/main').Hosted {
  const plugin: typeof import('./docker/plugin') = require('./docker/plugin');
  return {
    batch: (lines, unplug, json, io, session) => {
      const { runBatchLines }: typeof import('./cli/batch') = require('./cli/batch');
      const { defaultOptions }: typeof import('./cli/args') = require('./cli/args');
      return runBatchLines(lines, unplug, { ...defaultOptions(), json }, io, { session });
    },
    dockerPlugin: { defaultSocket: plugin.DEFAULT_SOCKET, defaultState: plugin.DEFAULT_STATE, start: plugin.startPlugin },
    watch: (session, cleanup, log) => {
      const { Watcher }: typeof import('./docker/watch') = require('./docker/watch');
      return new Watcher(session, { cleanup }, log);
    },
  };
}
