import { existsSync } from 'node:fs';
import { PipeworkError } from '../errors';

/** A container as the Docker Engine API describes it (the parts we use). */
export interface DockerContainer {
  id: string;
  name: string;
  pid: number;
}

/** The Engine API socket: DOCKER_HOST when it is unix://, else the default. */
export function dockerSocket(): string {
  const host = process.env.DOCKER_HOST;
  if (host?.startsWith('unix://')) return host.slice('unix://'.length);
  return '/var/run/docker.sock';
}

export const dockerAvailable = () => existsSync(dockerSocket());

/** One Engine API call over the unix socket: status and parsed JSON body. */
export function dockerApi(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  // Loaded only when Docker is asked: a plain attach never needs HTTP.
  const { request }: typeof import('node:http') = require('node:http');
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request({
      socketPath: dockerSocket(), method, path,
      headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {},
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let parsed: any = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON: keep the text (Docker's plain-text errors)
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    // A socket file with no daemon behind it (ECONNREFUSED), or no permission: one line naming the socket.
    // The errno's code stays on it: a socket with no daemon behind it (ECONNREFUSED) is "no Docker" to some callers.
    req.on('error', (e: NodeJS.ErrnoException) => reject(Object.assign(new PipeworkError(`Cannot reach Docker at ${dockerSocket()}: ${e.message}`), { code: e.code })));
    req.end(payload);
  });
}

/**
 * `docker inspect` of one container: undefined when Docker does not know it.
 * Like the original, a PID of 0 (still starting) is retried, 3 tries 1 s apart.
 */
export async function inspectContainer(name: string, tries = 3): Promise<DockerContainer | undefined> {
  for (let attempt = 1; ; attempt++) {
    const res = await dockerApi('GET', `/containers/${encodeURIComponent(name)}/json`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new PipeworkError(`Docker answered ${res.status} for ${name}: ${res.body?.message ?? res.body}`);
    const pid = Number(res.body?.State?.Pid ?? 0);
    if (pid > 0 || attempt >= tries) return { id: res.body.Id, name: String(res.body.Name ?? '').replace(/^\//, ''), pid };
    await new Promise((r) => setTimeout(r, 1000));
  }
}
