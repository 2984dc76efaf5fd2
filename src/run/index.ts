import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { PipeworkError } from '../errors';
import { native } from '../native';

export interface RunOptions {
  /** Start the program inside this netns (the fork inherits the spawning thread's netns). */
  netnsFd?: number;
  /** Keep it running; resolve once spawned. */
  detached?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  pid?: number;
}

/**
 * The one place a program is started (tc, ovs-vsctl, DHCP clients): an argv
 * array, never a shell. A non-zero exit becomes a PipeworkError with the
 * program's own message.
 */
export function runProgram(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const spawnOpts: SpawnOptions = { stdio: opts.detached ? 'ignore' : ['ignore', 'pipe', 'pipe'], detached: opts.detached };
  // Loaded here, not at start-up: most commands start no program.
  const { spawn }: typeof import('node:child_process') = require('node:child_process');
  const start = () => spawn(file, args, spawnOpts);
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = opts.netnsFd === undefined ? start() : native.withNetns(opts.netnsFd, start);
    } catch (e) {
      reject(e);
      return;
    }
    if (opts.detached) {
      child.once('error', (e) => reject(notFound(file, e)));
      child.once('spawn', () => { child.unref(); resolve({ stdout: '', stderr: '', pid: child.pid }); });
      return;
    }
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.once('error', (e) => reject(notFound(file, e)));
    child.once('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr, pid: child.pid });
      else reject(new PipeworkError(`${file} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || stdout.trim()}`));
    });
  });
}

function notFound(file: string, e: Error & { code?: string }): Error {
  return e.code === 'ENOENT' ? new PipeworkError(`${file} not found: is it installed?`) : e;
}

/** True when ovs-vsctl is installed and an ovsdb-server answers on its socket. */
export function ovsRunning(): boolean {
  const dir = process.env.OVS_RUNDIR ?? '/var/run/openvswitch';
  return hasProgram('ovs-vsctl') && existsSync(`${dir}/db.sock`);
}

/** Programs found on PATH, per PATH (bulk runs ask once per container); a miss is looked for again next time. */
const found = new Set<string>();

/** True if the program is on PATH (checked without running it). */
export function hasProgram(file: string): boolean {
  const path = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  const key = `${path}\0${file}`;
  if (found.has(key)) return true;
  const yes = path.split(':').some((dir) => {
    try {
      accessSync(`${dir}/${file}`, constants.X_OK);
      return true;
    } catch {
      return false; // not in this directory
    }
  });
  if (yes) found.add(key);
  return yes;
}
