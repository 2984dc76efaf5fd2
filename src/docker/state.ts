/**
 * A JSON document on disk that survives a crash at any instant: each save
 * writes a temp file next to it, fsyncs it, renames it over the old one and
 * fsyncs the directory. A reader sees the old state or the new, never half.
 */
import { closeSync, constants as fsc, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PipeworkError } from '../errors';
import { native } from '../native';

export class JsonStateFile<T> {
  constructor(readonly path: string, private readonly empty: () => T) {}

  /** The saved document; a fresh empty one when the file does not exist yet. A damaged file is refused, not overwritten. */
  load(): T {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return this.empty();
      throw new PipeworkError(`cannot read the state file ${this.path}: ${(e as Error).message}`);
    }
    try {
      const doc = JSON.parse(text);
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not a JSON object');
      return { ...this.empty(), ...doc };
    } catch (e) {
      throw new PipeworkError(`the state file ${this.path} is damaged (${(e as Error).message}): fix or remove it`);
    }
  }

  /** Replaces the file atomically with `doc`. */
  save(doc: T): void {
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(doc, null, 2)}\n`);
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw e;
    }
    closeSync(fd);
    renameSync(tmp, this.path);
    try {
      const dfd = openSync(dir, 'r');
      try { fsyncSync(dfd); } finally { closeSync(dfd); }
    } catch { /* a directory fsync is best effort (some filesystems refuse it) */ }
  }
}

/**
 * The flock on `<state file>.lock`, held by the process that owns the state
 * file: a running plugin for its whole life, `pipework gc` for a moment when
 * no plugin runs. The holder that serves requests writes its socket path in
 * the file, so another process wanting a change asks it there instead.
 */
export class StateLock {
  private constructor(private readonly fd: number, readonly path: string) {}

  /**
   * Takes the lock, waiting up to waitMs for a holder to let go; undefined
   * when it stayed taken (then `holder(path)` says who serves it).
   */
  static async take(statePath: string, waitMs: number): Promise<StateLock | undefined> {
    const path = `${statePath}.lock`;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(path, fsc.O_RDWR | fsc.O_CREAT, 0o600);
    const t0 = Date.now();
    for (let wait = 1; !native.tryLock(fd, true); wait = Math.min(wait * 2, 64)) {
      if (Date.now() - t0 >= waitMs) {
        closeSync(fd);
        return undefined;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
    return new StateLock(fd, path);
  }

  /** The socket of the plugin holding the lock on statePath's file, as it wrote it (undefined before it listens). */
  static holder(statePath: string): string | undefined {
    try {
      return readFileSync(`${statePath}.lock`, 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** Says where the holder answers (empty: nowhere). */
  announce(socket: string): void {
    ftruncateSync(this.fd, 0);
    writeSync(this.fd, socket ? `${socket}\n` : '', 0);
  }

  release(): void {
    this.announce('');
    closeSync(this.fd); // closing drops the flock
  }
}
