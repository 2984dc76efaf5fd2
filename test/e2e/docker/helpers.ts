// Helpers for the Docker plugin and watcher tests: long-running `pipework`
// processes we start and end by PID, kernel state read with `ip -j`, and
// raw HTTP to a unix socket. Only inside scripts/in-netns.js.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { sleep, waitFor } from '../../support/daemons/helpers';
import type { Dockerd } from '../../support/daemons/dockerd';

export const BIN = resolve(__dirname, '../../../bin/pipework.js');

/** A `node bin/pipework.js ARGS` we started: output to a log file, ended by its PID. */
export class PipeworkProcess {
  readonly child: ChildProcess;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<void>;

  constructor(args: string[], readonly log: string, env: NodeJS.ProcessEnv = process.env) {
    const fd = openSync(log, 'a');
    try {
      this.child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', fd, fd], env });
    } finally {
      closeSync(fd);
    }
    this.exited = new Promise((r) => this.child.on('exit', (code, signal) => { this.exit = { code, signal }; r(); }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  output(): string {
    try { return readFileSync(this.log, 'utf8'); } catch { return ''; }
  }

  /** Throws with the log when the process has exited: for waitFor predicates. */
  check(): void {
    if (this.exit) throw new Error(`pipework exited (${this.exit.signal ?? `exit ${this.exit.code}`}):\n${this.output()}`);
  }

  /** Sends `signal` to our PID and waits for the exit (KILL after graceMs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (this.exit) return;
    process.kill(this.pid, signal);
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done && !this.exit) {
      process.kill(this.pid, 'SIGKILL');
      await this.exited;
    }
  }

  wait(): Promise<void> {
    return this.exited;
  }
}

/** Waits until a line matching re shows up in the process's log; returns the log. */
export async function waitForLog(p: PipeworkProcess, re: RegExp, timeoutMs = 20_000): Promise<string> {
  await waitFor(() => { if (!re.test(p.output())) { p.check(); return false; } return true; }, timeoutMs, `log line ${re}`, 50);
  return p.output();
}

/** `CMD ARGS` (no shell); stdout. */
export const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** `ip -j ARGS` in our netns, or in the netns of PID; parsed. */
export function ipj<T = any>(pid: number | undefined, ...args: string[]): T {
  const out = (pid === undefined ? sh('ip', '-j', ...args) : sh('nsenter', `--net=/proc/${pid}/ns/net`, '--', 'ip', '-j', ...args)).trim();
  return (out ? JSON.parse(out) : []) as T;
}

export interface LinkJson { ifname: string; ifindex: number; master?: string; flags: string[]; address?: string; mtu: number; link_index?: number; linkinfo?: { info_kind?: string } }

export const links = (pid?: number): LinkJson[] => ipj(pid, '-d', 'link', 'show');
export const linkNamed = (name: string, pid?: number) => links(pid).find((l) => l.ifname === name);
export const portsOf = (bridge: string): LinkJson[] => (linkNamed(bridge) ? ipj<LinkJson[]>(undefined, '-d', 'link', 'show', 'master', bridge) : []);
export const ipv4Of = (pid: number, dev: string): string[] =>
  (ipj<any[]>(pid, '-4', 'addr', 'show', 'dev', dev)[0]?.addr_info ?? []).map((a: any) => `${a.local}/${a.prefixlen}`);

/** Deletes a link in our netns if it is there (test cleanup). */
export function deleteLinkIfPresent(name: string): void {
  if (linkNamed(name)) sh('ip', 'link', 'del', name);
}

/** POST to a unix-socket HTTP server, on a connection of its own (as a CNI shim or Docker makes it): status and raw body. */
export function post(socketPath: string, path: string, body?: string, method = 'POST'): Promise<{ status: number; text: string; json: any }> {
  return new Promise((done, fail) => {
    const headers = body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
    const req = request({ socketPath, path, method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json: any;
        try { json = JSON.parse(text); } catch { json = undefined; }
        done({ status: res.statusCode ?? 0, text, json });
      });
    });
    req.on('error', fail);
    req.end(body);
  });
}

export const socketUp = (path: string) => existsSync(path);

/** The PID of a container's first process. */
export async function containerPid(docker: (a: string[]) => Promise<string>, name: string): Promise<number> {
  return Number((await docker(['inspect', '-f', '{{.State.Pid}}', name])).trim());
}

/** `pipework docker-plugin --socket SOCKET --state STATE`, once it answers Plugin.Activate. */
export async function startPluginProcess(socket: string, state: string, log: string, env?: NodeJS.ProcessEnv): Promise<PipeworkProcess> {
  const p = new PipeworkProcess(['docker-plugin', '--socket', socket, '--state', state], log, env);
  await waitFor(async () => { p.check(); return socketUp(socket) && (await post(socket, '/Plugin.Activate').catch(() => undefined))?.status === 200; }, 10_000, 'the plugin socket');
  return p;
}

/** A plugin test file's end: dockerd and the plugin stopped, the links it made and its scratch dir removed. */
export async function stopDockerAndPlugin(d: Dockerd | undefined, plugin: PipeworkProcess | undefined, linkNames: string[], dir: string): Promise<void> {
  try {
    await d?.stop();
  } finally {
    await plugin?.stop();
    if (process.env.PW_SHOW_LOG) console.log(plugin?.output());
    for (const l of linkNames) deleteLinkIfPresent(l);
    rmSync(dir, { recursive: true, force: true });
  }
}
