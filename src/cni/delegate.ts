/**
 * Delegated plugins (CNI spec, section 4): IPAM plugins found on CNI_PATH,
 * run with the call's environment and stdin configuration, their stderr
 * passed on as the call's. Started with an argv (none) and never through a shell.
 */
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { CniError, ErrorCode } from './errors';
import { LATEST_VERSION, compareVersions } from './version';
import { checkResult, type Result } from './config';
import type { Session } from '../session';

/** The environment of one CNI call (CNI_* and whatever else the runtime gave the plugin). */
export type CniEnv = Record<string, string | undefined>;

/** One CNI call's input, and where what delegated plugins print on stderr goes. */
export interface CniCall {
  stdin: Buffer;
  env: CniEnv;
  stderr(chunk: string): void;
  /** A long-lived caller's session (the daemon's, shared by its calls); without it a call opens its own. */
  session?: Session;
}

export interface DelegateOutcome {
  /** Exit status 0. */
  ok: boolean;
  stdout: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The directories of CNI_PATH, in order (empty entries dropped). */
export const cniPath = (env: CniEnv) => (env.CNI_PATH ?? '').split(':').filter(Boolean);

/** The plugin's executable: the first `<dir>/<type>` on CNI_PATH that is an executable file. */
export function findPlugin(type: string, env: CniEnv): string {
  const dirs = cniPath(env);
  if (dirs.length === 0) throw new CniError(ErrorCode.InvalidEnvironment, 'required env variables [CNI_PATH] missing',
    `CNI_PATH names the directories to search for the IPAM plugin "${type}"`);
  for (const dir of dirs) {
    const file = `${dir}/${type}`;
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not in this directory
    }
  }
  throw new CniError(ErrorCode.Internal, `failed to find IPAM plugin "${type}" in CNI_PATH`,
    `searched ${dirs.map((d) => `${d}/${type}`).join(', ')}: no executable file there`);
}

/** Runs `file` with `input` on stdin and env; stdout collected, stderr handed to `stderr` as it comes. */
export function runPlugin(file: string, input: Buffer | string, env: CniEnv, stderr: (chunk: string) => void): Promise<DelegateOutcome> {
  const { spawn }: typeof import('node:child_process') = require('node:child_process');
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(file, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      reject(new CniError(ErrorCode.Internal, `cannot run ${file}: ${(e as Error).message}`));
      return;
    }
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => chunks.push(d));
    child.stderr!.setEncoding('utf8').on('data', stderr);
    child.once('error', (e) => reject(new CniError(ErrorCode.Internal, `cannot run ${file}: ${e.message}`)));
    child.once('close', (code, signal) => resolve({ ok: code === 0, stdout: Buffer.concat(chunks).toString('utf8'), code, signal }));
    // A plugin that exits without reading its stdin must not crash us with EPIPE.
    child.stdin!.on('error', () => {});
    child.stdin!.end(input);
  });
}

/** A delegated plugin's error result as ours (its code, its text, its name in front). */
function delegateError(type: string, command: string, out: DelegateOutcome): CniError {
  try {
    const e = JSON.parse(out.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === 'number' && typeof e.msg === 'string')
      return new CniError(e.code, `${type} (${command}): ${e.msg}`, typeof e.details === 'string' ? e.details : '');
  } catch {
    // not a CNI error result
  }
  const how = out.signal ? `killed by ${out.signal}` : `exit ${out.code}`;
  return new CniError(ErrorCode.Internal, `${type} (${command}) failed (${how})`, out.stdout.trim());
}

/** The config with another cniVersion (same keys otherwise). */
function withVersion(stdin: Buffer, version: string): string {
  return JSON.stringify({ ...JSON.parse(stdin.toString('utf8')), cniVersion: version });
}

export interface Delegation {
  /** The IPAM plugin's type (its file name). */
  type: string;
  file: string;
  /** The call: its configuration exactly as we received it, its environment. */
  call: CniCall;
  cniVersion: string;
}

/**
 * Runs the delegated plugin for `command` with the call's environment and stdin.
 * Results of 1.0.0 and 1.1.0 are the same: a plugin that knows only 1.0.0
 * (Debian's containernetworking-plugins 1.1.1) and refuses 1.1.0 with code 1
 * before doing anything is asked again with cniVersion 1.0.0.
 */
export async function delegate(d: Delegation, command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS'): Promise<string> {
  const env = { ...d.call.env, CNI_COMMAND: command };
  let out = await runPlugin(d.file, d.call.stdin, env, d.call.stderr);
  if (!out.ok && d.cniVersion === '1.1.0' && (command === 'ADD' || command === 'DEL' || command === 'CHECK') && errorCode(out) === ErrorCode.IncompatibleVersion) {
    out = await runPlugin(d.file, withVersion(d.call.stdin, '1.0.0'), env, d.call.stderr);
  }
  if (!out.ok) throw delegateError(d.type, command, out);
  return out.stdout;
}

function errorCode(out: DelegateOutcome): number | undefined {
  try {
    return (JSON.parse(out.stdout) as { code?: number }).code;
  } catch {
    return undefined;
  }
}

/** IPAM ADD: the plugin's result (ips, routes, dns), checked for shape. */
export async function ipamAdd(d: Delegation): Promise<Result> {
  const stdout = await delegate(d, 'ADD');
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `${d.type} (ADD) returned a result that is not JSON`, `${(e as Error).message}: ${stdout.slice(0, 200)}`);
  }
  return checkResult(parsed, `${d.type} result`);
}

/** The versions a plugin implements (`CNI_COMMAND=VERSION`). */
export async function pluginVersions(file: string, type: string, call: CniCall): Promise<string[]> {
  const env = { ...call.env, CNI_COMMAND: 'VERSION' };
  const out = await runPlugin(file, JSON.stringify({ cniVersion: LATEST_VERSION }), env, call.stderr);
  if (!out.ok) throw delegateError(type, 'VERSION', out);
  try {
    const v = JSON.parse(out.stdout) as { supportedVersions?: unknown };
    if (Array.isArray(v.supportedVersions)) return v.supportedVersions.filter((x): x is string => typeof x === 'string');
  } catch {
    // fall through
  }
  throw new CniError(ErrorCode.DecodingFailure, `${type} (VERSION) returned no supportedVersions`, out.stdout.trim());
}

/** True when the plugin knows commands of `version` (STATUS and GC are 1.1.0's). */
export const supportsAtLeast = (versions: string[], version: string) => versions.some((v) => compareVersions(v, version) >= 0);
