/**
 * The Docker Engine API's event stream (`GET /events`) over its unix socket
 * (DOCKER_HOST when it is unix://, else /var/run/docker.sock): one JSON
 * object per line for as long as the daemon runs.
 */
import { request } from 'node:http';
import { dockerSocket } from '../guest/docker';

/** The parts of an event we use (Docker >= 1.10 field names, older ones as fallback). */
export interface DockerEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
}

export interface EventStream {
  /** Settles when the stream ends, with why (daemon gone, connection reset, ...). */
  done: Promise<string>;
  close(): void;
}

/**
 * Connects and resolves once Docker has answered 200 (events from then on
 * reach onEvent, in order); rejects when it cannot connect or refuses.
 */
export function openEvents(filters: Record<string, string[]>, onEvent: (e: DockerEvent) => void): Promise<EventStream> {
  const path = `/events?filters=${encodeURIComponent(JSON.stringify(filters))}`;
  return new Promise((resolve, reject) => {
    let endStream: (why: string) => void = () => undefined;
    const done = new Promise<string>((r) => { endStream = r; });
    let settled = false;
    const req = request({ socketPath: dockerSocket(), method: 'GET', path }, (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => { settled = true; reject(new Error(`Docker answered ${res.statusCode} to GET /events: ${text.trim()}`)); });
        return;
      }
      settled = true;
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let ev: DockerEvent;
          try {
            ev = JSON.parse(line);
          } catch {
            continue; // not an event: skip it, keep the stream
          }
          onEvent(ev);
        }
      });
      res.on('end', () => endStream('the event stream ended'));
      res.on('close', () => endStream('the connection closed'));
      res.on('error', (e) => endStream(e.message));
      resolve({ done, close: () => req.destroy() });
    });
    req.on('error', (e) => {
      if (!settled) {
        settled = true;
        reject(e);
      } else {
        endStream(e.message);
      }
    });
    req.end();
  });
}
