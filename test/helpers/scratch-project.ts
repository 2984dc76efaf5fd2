// A scratch project that installs a packed pipework tarball as a user would,
// but offline (tests run in a netns without network): its package-lock.json
// pins pipework's dependencies (and typescript, @types/node for a type check)
// to the versions, tarball URLs and integrity hashes of this repository's
// lock, whose tarballs `npm ci` has put in npm's cache.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');

type LockEntry = { version: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; dev?: boolean; peer?: boolean };

/** Where npm would find `name` from the package at lock key `from`: its own node_modules, then each parent's. */
function resolveInLock(lock: Record<string, LockEntry>, from: string, name: string): string {
  for (let at = from; ; at = at.includes('node_modules/') ? at.slice(0, at.lastIndexOf('node_modules/')).replace(/\/$/, '') : '') {
    const key = `${at ? `${at}/` : ''}node_modules/${name}`;
    if (lock[key]) return key;
    if (!at) throw new Error(`${name} is not in package-lock.json`);
  }
}

/** Writes package.json and package-lock.json of a project depending on the tarball (in dir) and `extra` packages of our lock. */
export function writeScratchProject(dir: string, tarball: string, extra: string[]): void {
  const lock: Record<string, LockEntry> = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')).packages;
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const packages: Record<string, unknown> = {};
  const walk = (key: string) => {
    if (packages[key]) return;
    const { dev: _dev, peer: _peer, ...entry } = lock[key];
    packages[key] = entry;
    for (const d of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) walk(resolveInLock(lock, key, d));
  };
  const file = `file:${basename(tarball)}`;
  const deps: Record<string, string> = { pipework: file };
  for (const d of Object.keys(pkg.dependencies)) walk(resolveInLock(lock, '', d));
  for (const d of extra) {
    walk(resolveInLock(lock, '', d));
    deps[d] = lock[`node_modules/${d}`].version;
  }
  const self = {
    version: pkg.version, resolved: file, license: pkg.license, hasInstallScript: true,
    dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines, os: pkg.os,
  };
  const manifest = { name: 'scratch', private: true, dependencies: deps };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({
    name: 'scratch', lockfileVersion: 3, requires: true,
    packages: { '': { name: 'scratch', dependencies: deps }, 'node_modules/pipework': self, ...packages },
  }, null, 2));
}

/** Programs that compile: hidden from a PATH made by pathWithout. */
const COMPILERS = /^(cc|c\+\+|cpp|gcc|g\+\+|clang|clang\+\+|make|gmake|python[0-9.]*)(-[0-9.]+)?$|^[a-z0-9_]+-linux-gnu[a-z]*-(gcc|g\+\+|cpp|c\+\+)(-[0-9.]+)?$/;

/** A directory of links to every program on PATH except compilers, make and python: a PATH for "a host without a compiler". */
export function pathWithout(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const d of (process.env.PATH ?? '').split(':')) {
    if (!d || !existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      if (COMPILERS.test(name) || existsSync(join(dir, name))) continue;
      symlinkSync(join(d, name), join(dir, name));
    }
  }
  for (const tool of ['g++', 'gcc', 'cc', 'make', 'python3']) {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`], { env: { PATH: dir } });
    if (r.status === 0) throw new Error(`${tool} is still on the compiler-free PATH`);
  }
  return dir;
}
