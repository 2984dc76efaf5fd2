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
import { checkVersion, decodeJson, ifnameProblem, parseConfig } from './config';
import type { Attachment } from './attachment';

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

export interface Io {
  env: NodeJS.ProcessEnv;
  /** The whole of stdin. */
  readStdin(): Promise<Buffer>;
  /** True when stdin is a terminal (VERSION then reads nothing). */
  stdinIsTty(): boolean;
  out(s: string): void;
  err(s: string): void;
}

/**
 * One run of the plugin; resolves with the exit status. With
 * PIPEWORK_CNI_LOG=FILE, one JSON line per run is appended to FILE: command,
 * container, netns, interface, outcome (0 or the error code, with its
 * message), the milliseconds the command took and since the process started.
 */
export async function main(io: Io = processIo()): Promise<number> {
  const logFile = io.env.PIPEWORK_CNI_LOG;
  if (!logFile) return runCommand(io);
  const t0 = performance.now();
  const outputs: string[] = [];
  const status = await runCommand({ ...io, out: (s) => { outputs.push(s); io.out(s); } });
  let code = 0;
  let msg: string | undefined;
  let ips: string[] | undefined;
  try {
    const last = JSON.parse(outputs[outputs.length - 1] ?? '{}') as { code?: number; msg?: string; ips?: { address: string }[] };
    code = status === 0 ? 0 : last.code ?? 999;
    msg = status === 0 ? undefined : last.msg;
    ips = last.ips?.map((ip) => ip.address);
  } catch {
    code = status === 0 ? 0 : 999;
  }
  const line = {
    time: new Date().toISOString(), pid: process.pid, command: io.env.CNI_COMMAND, containerId: io.env.CNI_CONTAINERID,
    netns: io.env.CNI_NETNS, ifname: io.env.CNI_IFNAME, code, ...(msg ? { msg } : {}), ...(ips ? { ips } : {}),
    ms: Math.round((performance.now() - t0) * 10) / 10, processMs: Math.round(performance.now() * 10) / 10,
  };
  try {
    require('node:fs').appendFileSync(logFile, `${JSON.stringify(line)}\n`);
  } catch (e) {
    io.err(`pipework-cni: cannot append to PIPEWORK_CNI_LOG ${logFile}: ${(e as Error).message}`);
  }
  return status;
}

async function runCommand(io: Io): Promise<number> {
  let version: string = LATEST_VERSION;
  try {
    const command = io.env.CNI_COMMAND ?? '';
    if (!command) {
      io.err(`pipework-cni: CNI plugin "pipework"; CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}`);
      throw new CniError(ErrorCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
    }
    if (!COMMANDS.includes(command as Command))
      throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`, `CNI_COMMAND is one of ${COMMANDS.join(', ')}`);
    const cmd = command as Command;

    if (cmd === 'VERSION') {
      // The answer names the version the input gave; the input matters for nothing else.
      let asked: unknown;
      if (!io.stdinIsTty()) {
        try {
          asked = JSON.parse((await io.readStdin()).toString('utf8'))?.cniVersion;
        } catch {
          asked = undefined;
        }
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
    if (typeof raw.cniVersion === 'string') version = raw.cniVersion;
    const minimum = cmd === 'STATUS' || cmd === 'GC' ? { version: '1.1.0', command: cmd } : undefined;
    // CNI_ARGS matter to ADD only: a DEL or CHECK must not fail on them.
    const conf = parseConfig(raw, checkVersion(raw, minimum), cmd === 'ADD' ? io.env.CNI_ARGS : undefined);

    switch (cmd) {
      case 'ADD': {
        const { add }: typeof import('./attachment') = require('./attachment');
        io.out(JSON.stringify(await add(conf, attachment!, stdin)));
        return 0;
      }
      case 'DEL': {
        const { del }: typeof import('./attachment') = require('./attachment');
        await del(conf, attachment!, stdin);
        return 0;
      }
      case 'CHECK': {
        const { check }: typeof import('./attachment') = require('./attachment');
        await check(conf, attachment!, stdin);
        return 0;
      }
      case 'STATUS': {
        const { status }: typeof import('./maintenance') = require('./maintenance');
        await status(conf, stdin);
        return 0;
      }
      case 'GC': {
        const { gc }: typeof import('./maintenance') = require('./maintenance');
        await gc(conf, stdin);
        return 0;
      }
    }
  } catch (e) {
    io.out(JSON.stringify(toErrorResult(e, version)));
    return 1;
  }
}

/** The attachment parameters, refused with code 4 when missing or malformed (names of the variables in the message). */
function checkEnv(env: NodeJS.ProcessEnv, cmd: Command): Attachment | undefined {
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

/** The real process: fd 0 read whole, results written synchronously to fd 1, logs to fd 2. */
export function processIo(): Io {
  return {
    env: process.env,
    readStdin,
    stdinIsTty: () => require('node:tty').isatty(0),
    out: (s) => writeAll(1, `${s}\n`),
    err: (s) => writeAll(2, `${s}\n`),
  };
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

/** Entry point of bin/pipework-cni.js. */
export function run(): void {
  main().then((status) => process.exit(status), (e) => {
    writeAll(1, `${JSON.stringify(toErrorResult(e, LATEST_VERSION))}\n`);
    process.exit(1);
  });
}
