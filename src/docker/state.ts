/**
 * A JSON document on disk that survives a crash at any instant: each save
 * writes a temp file next to it, fsyncs it, renames it over the old one and
 * fsyncs the directory. A reader sees the old state or the new, never half.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PipeworkError } from '../errors';

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
