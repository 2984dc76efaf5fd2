/**
 * `pipework-cni`: a CNI plugin (spec 1.0.0 and 1.1.0) over the pipework
 * library. The runtime starts it once per container and command, so it loads
 * only what the command needs: VERSION and refused input touch neither the
 * netlink library nor the native addon.
 *
 * Environment: CNI_COMMAND (ADD, DEL, CHECK, STATUS, GC, VERSION),
 * CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH; the network
 * configuration on stdin; the result (ADD) or an error result on stdout.
 */
import { readSync, statSync, writeSync } from 'node:fs';
import { CniError, ErrorCode, toErrorResult } from './errors';
import { LATEST_VERSION, SUPPORTED_VERSIONS, isSemver } from './version';
import { type Attachment, checkVersion, decodeJson, ifnameProblem, parseConfig } from './config';
import type { CniCall, CniEnv } from './delegate';
import type { Session } from '../session';

export type { CniEnv };

type Command = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

/** Environment variables each command needs (the spec's "required environment parameters"). */
const REQUIRED: Record<Command, string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** What one plugin run prints and how it exits. */
export interface CniOutcome {
  exitCode: number;
  /** Exactly what the plugin prints on stdout (each line ending in a newline). */
  stdout: string;
  stderr: string;
}

/**
 * The network configuration: the bytes, or a reader called only when the
 * command needs them (the plugin does not wait on a stdin that VERSION
 * ignores or a refused call never reads).
 */
export type CniStdin = string | Buffer | (() => Promise<Buffer>);

interface Io {
  env: CniEnv;
  readStdin(): Promise<Buffer>;
  out(s: string): void;
  /** Raw text for stderr (lines end in their newline). */
  err(s: string): void;
  session?: Session;
}

/**
 * One CNI call, as the plugin binary would run it for this environment and
 * stdin, touching nothing of the process it runs in (the plugin and the
 * daemon both call it; the daemon hands over its session).
 */
export async function handleCniCall(env: CniEnv, stdin: CniStdin, opts: { session?: Session } = {}): Promise<CniOutcome> {
  let stdout = '';
  let stderr = '';
  const readStdin = typeof stdin === 'function' ? stdin : async () => (typeof stdin === 'string' ? Buffer.from(stdin) : stdin);
  const exitCode = await runCommand({
    env,
    readStdin,
    out: (s) => { stdout += `${s}\n`; },
    err: (s) => { stderr += s; },
    session: opts.session,
  }).catch((e: unknown) => {
    stdout += `${JSON.stringify(toErrorResult(e, LATEST_VERSION))}\n`;
    return 1;
  });
  return { exitCode, stdout, stderr };
}

/**
 * With PIPEWORK_CNI_LOG=FILE in the plugin's environment, one JSON line per
 * run is appended to FILE: command, container, netns, interface, outcome (0 or
 * the error code, with its message), the milliseconds the command took and
 * since the process started.
 */
function logCall(logFile: string, env: CniEnv, outcome: CniOutcome, t0: number): string | undefined {
  const status = outcome.exitCode;
  let code = 0;
  let msg: string | undefined;
  let ips: string[] | undefined;
  try {
    const lines = outcome.stdout.trimEnd().split('\n');
    const last = JSON.parse(lines[lines.length - 1] || '{}') as { code?: number; msg?: string; ips?: { address: string }[] };
    code = status === 0 ? 0 : last.code ?? 999;
    msg = status === 0 ? undefined : last.msg;
    ips = last.ips?.map((ip) => ip.address);
  } catch {
    code = status === 0 ? 0 : 999;
  }
  const line = {
    time: new Date().toISOString(), pid: process.pid, command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID,
    netns: env.CNI_NETNS, ifname: env.CNI_IFNAME, code, ...(msg ? { msg } : {}), ...(ips ? { ips } : {}),
    ms: Math.round((performance.now() - t0) * 10) / 10, processMs: Math.round(performance.now() * 10) / 10,
  };
  try {
    require('node:fs').appendFileSync(logFile, `${JSON.stringify(line)}\n`);
    return undefined;
  } catch (e) {
    return `pipework-cni: cannot append to PIPEWORK_CNI_LOG ${logFile}: ${(e as Error).message}\n`;
  }
}

async function runCommand(io: Io): Promise<number> {
  let version: string = LATEST_VERSION;
  try {
    const command = io.env.CNI_COMMAND ?? '';
    if (!command) {
      io.err(`pipework-cni: CNI plugin "pipework"; CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
      throw new CniError(ErrorCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
    }
    if (!COMMANDS.includes(command as Command))
      throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`, `CNI_COMMAND is one of ${COMMANDS.join(', ')}`);
    const cmd = command as Command;

    if (cmd === 'VERSION') {
      // The answer names the version the input gave; the input matters for nothing else.
      let asked: unknown;
      try {
        asked = JSON.parse((await io.readStdin()).toString('utf8'))?.cniVersion;
      } catch {
        asked = undefined;
      }
      io.out(JSON.stringify({ cniVersion: isSemver(asked) ? asked : LATEST_VERSION, supportedVersions: SUPPORTED_VERSIONS }));
      return 0;
    }

    const attachment = checkEnv(io.env, cmd);
    let stdin: Buffer;
    try {
      stdin = await io.readStdin();
    } catch (e) {
      throw new CniError(ErrorCode.IoFailure, 'error reading the network config from stdin', (e as Error).message);
    }
    const raw = decodeJson(stdin);
    const call: CniCall = { stdin, env: io.env, stderr: io.err, session: io.session };
    if (typeof raw.cniVersion === 'string') version = raw.cniVersion;
    const minimum = cmd === 'STATUS' || cmd === 'GC' ? { version: '1.1.0', command: cmd } : undefined;
    // CNI_ARGS matter to ADD only: a DEL or CHECK must not fail on them.
    const conf = parseConfig(raw, checkVersion(raw, minimum), cmd === 'ADD' ? io.env.CNI_ARGS : undefined);

    switch (cmd) {
      case 'ADD': {
        const { add }: typeof import('./attachment') = require('./attachment');
        io.out(JSON.stringify(await add(conf, attachment!, call)));
        return 0;
      }
      case 'DEL': {
        const { del }: typeof import('./attachment') = require('./attachment');
        await del(conf, attachment!, call);
        return 0;
      }
      case 'CHECK': {
        const { check }: typeof import('./attachment') = require('./attachment');
        await check(conf, attachment!, call);
        return 0;
      }
      case 'STATUS': {
        const { status }: typeof import('./maintenance') = require('./maintenance');
        await status(conf, call);
        return 0;
      }
      case 'GC': {
        const { gc }: typeof import('./maintenance') = require('./maintenance');
        await gc(conf, call);
        return 0;
      }
    }
  } catch (e) {
    io.out(JSON.stringify(toErrorResult(e, version)));
    return 1;
  }
}

/** The attachment parameters, refused with code 4 when missing or malformed (names of the variables in the message). */
function checkEnv(env: CniEnv, cmd: Command): Attachment | undefined {
  const missing = REQUIRED[cmd].filter((k) => !env[k]);
  if (missing.length) throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  if (cmd !== 'ADD' && cmd !== 'DEL' && cmd !== 'CHECK') return undefined;
  const containerId = env.CNI_CONTAINERID!;
  if (!CONTAINER_ID_RE.test(containerId))
    throw new CniError(ErrorCode.InvalidEnvironment, 'invalid characters in CNI_CONTAINERID', containerId);
  const ifname = env.CNI_IFNAME!;
  const problem = ifnameProblem(ifname);
  if (problem) throw new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_IFNAME: the interface name ${problem}`, ifname);
  const netns = env.CNI_NETNS ?? '';
  if (netns && !netns.startsWith('/')) throw new CniError(ErrorCode.InvalidEnvironment, 'invalid CNI_NETNS: not an absolute path', netns);
  if (netns && isOwnNetns(netns))
    throw new CniError(ErrorCode.InvalidEnvironment, "invalid CNI_NETNS: it is the plugin's own network namespace", netns);
  return { containerId, netns, ifname };
}

/** True when path names the netns this process runs in (the host side must never be the container). */
function isOwnNetns(path: string): boolean {
  try {
    const a = statSync(path);
    const b = statSync('/proc/thread-self/ns/net');
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** stdin to its end: synchronous reads, or the stream when fd 0 is non-blocking (EAGAIN). */
async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EOF') break;
      if (code !== 'EAGAIN') throw e;
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      break;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

function writeAll(fd: number, s: string): void {
  let b = Buffer.from(s);
  while (b.length) {
    try {
      b = b.subarray(writeSync(fd, b));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

/**
 * Entry point of bin/pipework-cni.js: the call for this process's
 * environment and stdin (not read for VERSION from a terminal), its output
 * written synchronously to fd 1 and 2.
 */
export function run(): void {
  const t0 = performance.now();
  const env = process.env;
  const stdin = env.CNI_COMMAND === 'VERSION' && require('node:tty').isatty(0) ? Buffer.alloc(0) : readStdin;
  void handleCniCall(env, stdin).then((outcome) => {
    const logFailure = env.PIPEWORK_CNI_LOG ? logCall(env.PIPEWORK_CNI_LOG, env, outcome, t0) : undefined;
    writeAll(1, outcome.stdout);
    writeAll(2, outcome.stderr + (logFailure ?? ''));
    process.exit(outcome.exitCode);
  });
}
