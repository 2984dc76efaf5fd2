/**
 * The `pipework` command. Loads only what the command at hand needs: a
 * single call has to start faster than the shell original runs.
 */
import { type Command, type GlobalOptions, HELP, USAGE, parseArgs } from './args';
import type { Out } from '../run/out';

/** The commands on one guest, and error messages: loaded when a command gets that far (not for --version, --help). */
const commands = (): typeof import('./commands') => require('./commands');

/**
 * What other front ends add to a CLI command, passed in by src/main.ts (a
 * front end imports no other): the Docker plugin's part of `pipework gc`.
 */
export interface CliHooks {
  dockerPluginGc?(statePath: string | undefined, dryRun: boolean): Promise<{ removed: string[]; failed: { command: string; error: string }[] }>;
}

/** Runs one command line; resolves with the exit status. */
export async function main(argv: string[], io: Out, hooks: CliHooks = {}): Promise<number> {
  let cmd: Command;
  try {
    cmd = parseArgs(argv);
  } catch (e) {
    io.err((e as Error).message);
    return 1;
  }
  try {
    return await run(cmd, io, hooks);
  } catch (e) {
    io.err(commands().describeError(e, 'opts' in cmd && cmd.opts.verbose));
    return 1;
  }
}

async function run(cmd: Command, io: Out, hooks: CliHooks): Promise<number> {
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
    case 'gc': {
      const { Session }: typeof import('../session') = require('../session');
      const { renderGcStep }: typeof import('../plan/gc') = require('../plan/gc');
      const session = new Session();
      try {
        const gc = await session.gc({ bridges: cmd.bridges, dryRun: cmd.opts.dryRun });
        const removed = gc.removed.map(renderGcStep);
        const failed = gc.failed.map((f) => ({ command: renderGcStep(f.step), error: commands().describeError(f.error, cmd.opts.verbose) }));
        if (hooks.dockerPluginGc) {
          const docker = await hooks.dockerPluginGc(cmd.dockerState, !!cmd.opts.dryRun).catch((e: unknown) => ({
            removed: [], failed: [{ command: `Docker plugin state ${cmd.dockerState ?? ''}`.trimEnd(), error: commands().describeError(e, cmd.opts.verbose) }],
          }));
          removed.push(...docker.removed);
          failed.push(...docker.failed);
        }
        if (cmd.opts.json) io.out(JSON.stringify({ removed, failed }));
        else for (const line of removed) io.out(line);
        for (const f of failed) io.err(`${f.command}: ${f.error}`);
        return failed.length ? 1 : 0;
      } finally {
        session.close();
      }
    }
    default: {
      const { Session }: typeof import('../session') = require('../session');
      const session = new Session();
      // An attach stopped by a signal is rolled back, not left half-made (a DHCP client's wait ends at its timeout).
      const stopping = cmd.kind === 'attach' && !cmd.opts.dryRun
        ? (require('./signals') as typeof import('./signals')).stopOnSignals(io.err, { stopping: 'rolling back the attach' })
        : undefined;
      try {
        const status = await commands().runOne(session, cmd, io,
          stopping && ((g, r, o) => session.attach(g, r, { ...o, abort: stopping.stop })));
        return stopping?.signal ? stopping.exitStatus() : status;
      } catch (e) {
        if (!stopping?.signal) throw e;
        io.err(commands().describeError(e, cmd.opts.verbose));
        return stopping.exitStatus();
      } finally {
        stopping?.dispose();
        session.close();
      }
    }
  }
}

export type { GlobalOptions };
