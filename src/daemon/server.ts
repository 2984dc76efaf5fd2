/**
 * The daemon's HTTP API (HTTP/1.1 on a unix socket, JSON bodies), served
 * from one Session; requests run concurrently.
 *
 *   POST /v1/cni      {env: {CNI_*}, stdin: "<config>"} -> {exitCode, stdout, stderr},
 *                     exactly what the pipework-cni binary would give
 *   POST /v1/attach   {guest, request}                  -> the attach result
 *   POST /v1/detach   {guest, containerInterface?, unplug?} -> {action, ...}
 *   POST /v1/route    {guest, args: [...]}              -> {}
 *   POST /v1/rule     {guest, args: [...]}              -> {}
 *   POST /v1/plan     {guest, request} or {guest, containerInterface?, unplug: true} -> {commands: [...]}
 *   POST /v1/batch    {lines: [...] | "text", unplug?, json?} -> {exitCode, stdout, stderr}, as `pipework --batch`
 *   GET  /v1/health   -> {status: "ok" | "stopping", ...} (503 while stopping)
 *   GET  /metrics     Prometheus text
 *
 * `guest` is {pid}, {netns: NAME} or {path}. Errors: a JSON body
 * {error: "...", code?}; 400 for a request that is not valid (bad JSON,
 * missing fields, refused by pipework's own checks), 403 for a peer that is
 * neither root nor the socket's owner, 404/405 for a wrong URL or method,
 * 413 over 1 MiB, 415 for a body that is not JSON, 500 when the kernel or a
 * program refused the operation, 503 while stopping. A CNI call always
 * answers 200 with the plugin's outcome: while stopping, CNI error 11 (try
 * again later), which runtimes retry.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Session } from '../session';
import type { GuestSpec } from '../guest';
import type { AttachRequest } from '../plan/attach';
import { PipeworkError } from '../errors';
import { native } from '../native';
import type { Metrics } from './metrics';
import type { Out } from '../run/out';

const MAX_BODY = 1 << 20;

/** What the daemon runs that other front ends own, handed over by the entry that starts it. */
export interface Handlers {
  /** One CNI call: the CNI plugin's own (src/cni/main.ts). */
  cni(env: Record<string, string>, stdin: string, session: Session): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** The CNI error result a runtime retries (code 11), for calls that come while stopping. */
  cniTryAgain(stdin: string): string;
  /** Lines as `pipework [unplug] --batch` runs them, in this session. */
  batch(lines: string[], unplug: boolean, json: boolean, io: Out, session: Session): Promise<number>;
}

export interface DaemonState {
  session: Session;
  metrics: Metrics;
  handlers: Handlers;
  /** The uid besides root whose processes may connect: the socket's owner. */
  ownerUid: number;
  /** Set on SIGTERM: new work is refused (CNI with code 11), work in flight finishes. */
  stopping: boolean;
  /** Requests received and not yet answered (a body still coming in counts: it may be a CNI call). */
  active: number;
  /** Called whenever a request has been answered (the daemon exits once none is left while stopping). */
  onIdle?: () => void;
  log?: (line: string) => void;
}

/** An error answer with its HTTP status. */
class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly code?: string) {
    super(message);
  }
}

const invalid = (message: string) => new HttpError(400, message);

function guestOf(body: Record<string, unknown>): GuestSpec {
  const g = body.guest as Record<string, unknown> | undefined;
  if (g && typeof g === 'object' && !Array.isArray(g)) {
    const keys = Object.keys(g);
    if (keys.length === 1) {
      if (keys[0] === 'pid' && Number.isInteger(g.pid) && (g.pid as number) > 0) return { pid: g.pid as number };
      if (keys[0] === 'netns' && typeof g.netns === 'string' && g.netns) return { netns: g.netns };
      if (keys[0] === 'path' && typeof g.path === 'string' && g.path.startsWith('/')) return { path: g.path };
    }
  }
  throw invalid('guest must be one of {"pid": N}, {"netns": "NAME"}, {"path": "/absolute/path"}');
}

function objectField<T>(body: Record<string, unknown>, key: string): T {
  const v = body[key];
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid(`${key} must be a JSON object`);
  return v as T;
}

function stringsField(body: Record<string, unknown>, key: string): string[] {
  const v = body[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw invalid(`${key} must be a list of strings`);
  return v;
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v !== undefined && typeof v !== 'string') throw invalid(`${key} must be a string`);
  return v;
}

/** The library's operations, by path: each takes the parsed body and answers JSON. */
const OPERATIONS: Record<string, { op: string; run: (s: DaemonState, body: Record<string, unknown>) => Promise<unknown> }> = {
  '/v1/attach': {
    op: 'attach',
    run: (s, b) => s.session.attach(guestOf(b), objectField<AttachRequest>(b, 'request')),
  },
  '/v1/detach': {
    op: 'detach',
    run: (s, b) => {
      const cif = optionalString(b, 'containerInterface');
      return b.unplug === true ? s.session.unplug(guestOf(b), cif) : s.session.detach(guestOf(b), cif);
    },
  },
  '/v1/route': { op: 'route', run: async (s, b) => { await s.session.route(guestOf(b), stringsField(b, 'args')); return {}; } },
  '/v1/rule': { op: 'rule', run: async (s, b) => { await s.session.rule(guestOf(b), stringsField(b, 'args')); return {}; } },
  '/v1/plan': {
    op: 'plan',
    run: async (s, b) => {
      const { renderPlan }: typeof import('../session') = require('../session');
      const plan = b.unplug === true
        ? await s.session.planUnplug(guestOf(b), optionalString(b, 'containerInterface'))
        : await s.session.plan(guestOf(b), objectField<AttachRequest>(b, 'request'));
      const text = renderPlan(plan);
      return { commands: text ? text.split('\n') : [] };
    },
  },
  '/v1/batch': {
    op: 'batch',
    run: async (s, b) => {
      const lines = typeof b.lines === 'string' ? b.lines.split(/\r?\n/) : stringsField(b, 'lines');
      let stdout = '';
      let stderr = '';
      const io: Out = { out: (t) => { stdout += `${t}\n`; }, err: (t) => { stderr += `${t}\n`; } };
      const exitCode = await s.handlers.batch(lines, b.unplug === true, b.json === true, io, s.session);
      return { exitCode, stdout, stderr };
    },
  },
};

/** The metrics code of a failed library operation: the errno name, "refused" for pipework's own checks, else "internal". */
function errorCode(e: unknown): string {
  const err = e as { name?: string; code?: unknown };
  if (err?.name === 'NetlinkError' && typeof err.code === 'string') return err.code;
  if (e instanceof PipeworkError) return 'refused';
  if (e instanceof HttpError) return String(e.status);
  return 'internal';
}

/** The CNI error code in a plugin's stdout (its last line), for the metrics. */
function cniErrorCode(stdout: string): string {
  try {
    const lines = stdout.trimEnd().split('\n');
    const code = (JSON.parse(lines[lines.length - 1]) as { code?: unknown }).code;
    return typeof code === 'number' ? String(code) : 'unknown';
  } catch {
    return 'unknown';
  }
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'Content-Type': typeof body === 'string' ? 'text/plain; version=0.0.4; charset=utf-8' : 'application/json',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** The whole body, at most MAX_BODY bytes (413 beyond, the connection then closed). */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY) {
      reject(new HttpError(413, `request body over ${MAX_BODY} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.removeAllListeners('data');
        reject(new HttpError(413, `request body over ${MAX_BODY} bytes`));
      } else chunks.push(c);
    });
    req.once('error', reject);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type && type !== 'application/json') {
    req.resume();
    throw new HttpError(415, `Content-Type must be application/json, not ${type}`);
  }
  const text = await readBody(req);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw invalid(`invalid JSON: ${(e as Error).message}`);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('the request body must be a JSON object');
  return body as Record<string, unknown>;
}

/**
 * The CNI call's environment: the CNI_* string variables of the request
 * (anything else ignored: the delegated IPAM plugin runs as root with it),
 * and the daemon's PATH.
 */
function cniEnv(body: Record<string, unknown>): Record<string, string> {
  const env = objectField<Record<string, unknown>>(body, 'env');
  const out: Record<string, string> = {};
  if (process.env.PATH) out.PATH = process.env.PATH;
  for (const [k, v] of Object.entries(env)) {
    if (!k.startsWith('CNI_')) continue;
    if (typeof v !== 'string') throw invalid(`env.${k} must be a string`);
    out[k] = v;
  }
  return out;
}

/** The commands a metric is kept for (anything else counts as cni_other: labels stay few). */
const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

async function handleCni(s: DaemonState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await jsonBody(req);
  const env = cniEnv(body);
  const stdin = body.stdin ?? '';
  if (typeof stdin !== 'string') throw invalid('stdin must be a string (the network configuration)');
  const op = CNI_COMMANDS.includes(env.CNI_COMMAND) ? `cni_${env.CNI_COMMAND.toLowerCase()}` : 'cni_other';
  const end = s.metrics.start(op);
  let outcome;
  try {
    outcome = s.stopping
      ? { exitCode: 1, stdout: s.handlers.cniTryAgain(stdin), stderr: '' }
      : await s.handlers.cni(env, stdin, s.session);
  } catch (e) {
    end('internal');
    throw e;
  }
  end(outcome.exitCode === 0 ? undefined : cniErrorCode(outcome.stdout));
  reply(res, 200, outcome);
}

async function route(s: DaemonState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  const method = req.method ?? '';
  const only = (allowed: string) => {
    if (method === allowed) return true;
    req.resume();
    reply(res, 405, { error: `${method} ${path}: use ${allowed}` }, { Allow: allowed });
    return false;
  };
  if (path === '/v1/health') {
    if (!only('GET')) return;
    reply(res, s.stopping ? 503 : 200, {
      status: s.stopping ? 'stopping' : 'ok',
      pid: process.pid,
      uptimeSeconds: Math.round(process.uptime()),
      inFlight: s.active - 1,
    });
    return;
  }
  if (path === '/metrics') {
    if (only('GET')) reply(res, 200, s.metrics.render());
    return;
  }
  if (path === '/v1/cni') {
    if (only('POST')) await handleCni(s, req, res);
    return;
  }
  const operation = OPERATIONS[path];
  if (!operation) {
    req.resume();
    throw new HttpError(404, `no such endpoint: ${path}`);
  }
  if (!only('POST')) return;
  const body = await jsonBody(req);
  // Checked once the body is in: nothing starts after the daemon began to stop.
  if (s.stopping) throw new HttpError(503, 'the daemon is stopping');
  const end = s.metrics.start(operation.op);
  try {
    const result = await operation.run(s, body);
    end();
    reply(res, 200, result);
  } catch (e) {
    end(errorCode(e));
    throw e;
  }
}

/** Root and the socket's owner may talk to the daemon; anyone else gets 403 and a closed connection. */
function peerAllowed(socket: Socket, ownerUid: number): boolean {
  // Node gives no public way to an accepted socket's fd: its handle has it (a unix socket's always does).
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return false;
  const { uid } = native.peerCredentials(fd);
  return uid === 0 || uid === ownerUid;
}

export function createDaemonServer(s: DaemonState): Server {
  const allowed = new WeakMap<Socket, boolean>();
  const server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    if (!allowed.get(req.socket)) {
      req.resume();
      reply(res, 403, { error: 'only root and the socket\'s owner may use the pipework daemon' }, { Connection: 'close' });
      res.once('finish', () => req.socket.destroySoon());
      return;
    }
    s.active++;
    res.once('close', () => {
      s.active--;
      s.onIdle?.();
    });
    route(s, req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : e instanceof PipeworkError ? 400 : 500;
      const err = e as Error & { code?: unknown };
      if (status === 500) s.log?.(`${req.method} ${req.url}: ${err?.stack ?? err}`);
      const body = { error: err?.message ?? String(e), ...(err?.name === 'NetlinkError' ? { code: err.code } : {}) };
      // After a refused body the rest of it may still be coming: answer and close.
      reply(res, status, body, status === 413 ? { Connection: 'close' } : {});
      if (status === 413) res.once('finish', () => req.socket.destroy());
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    try {
      allowed.set(socket, peerAllowed(socket, s.ownerUid));
    } catch (e) {
      s.log?.(`cannot read the peer's credentials: ${(e as Error).message}`);
      allowed.set(socket, false);
    }
  });
  // Requests HTTP cannot parse (garbage, headers too large, too slow): a JSON error, then the connection closes.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const [status, text] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout']
      : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : [400, 'Bad Request'];
    const body = `${JSON.stringify({ error: `${text}: ${err.message}` })}\n`;
    socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  return server;
}
