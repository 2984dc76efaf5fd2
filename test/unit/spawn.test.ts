// spawnIsolated (native/spawn.cc). These tests create namespaces and mounts:
// run them only through scripts/in-netns.js (npm test does).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { native, type SpawnIsolatedOptions } from '../../src/native';
import { spawnIsolated } from '../../src/native/spawn';

if (!process.env.PIPEWORK_IN_NETNS) {
  throw new Error('test/unit/spawn.test.ts must run inside scripts/in-netns.js (it mounts over /etc/resolv.conf)');
}

let dir: string;
const openFds: number[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pipework-spawn-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  for (const fd of openFds.splice(0)) fs.closeSync(fd);
});

function track(fd: number): number {
  openFds.push(fd);
  return fd;
}

/** Runs a child with stdout and stderr captured in files; returns its exit and output. */
async function run(opts: Omit<SpawnIsolatedOptions, 'stdoutFd' | 'stderrFd'>) {
  const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const err = `${out}.err`;
  const child = spawnIsolated({ ...opts, stdoutFd: track(fs.openSync(out, 'w')), stderrFd: track(fs.openSync(err, 'w')) });
  const exit = await child.exited;
  return { pid: child.pid, exit, stdout: fs.readFileSync(out, 'utf8'), stderr: fs.readFileSync(err, 'utf8') };
}

/** Children of this process that have exited but were never waited for. */
function zombieChildren(): number[] {
  const zombies: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid ...; comm may contain spaces and parentheses.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state === 'Z' && Number(ppid) === process.pid) zombies.push(Number(entry));
  }
  return zombies;
}

const nsInode = (link: string) => Number(/^net:\[(\d+)\]$/.exec(link.trim())?.[1]);

describe('spawnIsolated', () => {
  it('runs the child in the given network namespace, and leaves ours alone', async () => {
    const ours = fs.readlinkSync('/proc/self/ns/net');
    const netns = track(native.newNetns());
    const r = await run({ file: 'readlink', args: ['/proc/self/ns/net'], netnsFd: netns });
    expect(r.exit).toEqual({ code: 0, signal: null });
    expect(nsInode(r.stdout)).toBe(fs.fstatSync(netns).ino);
    expect(nsInode(r.stdout)).not.toBe(nsInode(ours));
    expect(fs.readlinkSync('/proc/self/ns/net')).toBe(ours);

    // The new netns has only a loopback, which is down.
    const links = await run({ file: 'ip', args: ['-o', 'link'], netnsFd: netns });
    expect(links.exit.code).toBe(0);
    expect(links.stdout.trim().split('\n')).toHaveLength(1);
    expect(links.stdout).toMatch(/^1: lo: /);
  });

  it('without netnsFd, the child stays in our network namespace', async () => {
    const r = await run({ file: 'readlink', args: ['/proc/self/ns/net'] });
    expect(r.stdout.trim()).toBe(fs.readlinkSync('/proc/self/ns/net'));
  });

  it('redirects /etc/resolv.conf into a scratch file; the real one is untouched', async () => {
    const before = fs.readFileSync('/etc/resolv.conf');
    const mntBefore = fs.readlinkSync('/proc/self/ns/mnt');
    const mountsBefore = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const scratch = path.join(dir, 'resolv.conf');
    fs.writeFileSync(scratch, '');
    const netns = track(native.newNetns());
    const r = await run({
      file: 'sh',
      args: ['-c', 'echo nameserver 192.0.2.1 > /etc/resolv.conf && cat /etc/resolv.conf && readlink /proc/self/ns/mnt'],
      netnsFd: netns,
      privateMounts: true,
      bindMounts: [[scratch, '/etc/resolv.conf']],
    });
    expect(r.stderr).toBe('');
    expect(r.exit).toEqual({ code: 0, signal: null });
    expect(fs.readFileSync(scratch, 'utf8')).toBe('nameserver 192.0.2.1\n');
    expect(Buffer.compare(fs.readFileSync('/etc/resolv.conf'), before)).toBe(0);
    const [written, childMnt] = r.stdout.trim().split('\n');
    expect(written).toBe('nameserver 192.0.2.1');
    expect(childMnt).not.toBe(mntBefore);
    expect(fs.readlinkSync('/proc/self/ns/mnt')).toBe(mntBefore);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toBe(mountsBefore);
  });

  it('passes args and env, and stderr to its fd', async () => {
    const r = await run({
      file: '/bin/sh',
      args: ['-c', 'echo "$0|$1|$FOO|${HOME-unset}"; echo oops >&2; exit 0', 'zero', 'one two'],
      env: { FOO: 'bar baz', PATH: '/usr/bin:/bin' },
    });
    expect(r.stdout).toBe('zero|one two|bar baz|unset\n');
    expect(r.stderr).toBe('oops\n');
  });

  it('reports the exit code', async () => {
    const r = await run({ file: 'sh', args: ['-c', 'exit 3'] });
    expect(r.exit).toEqual({ code: 3, signal: null });
  });

  it('reports the signal that killed the child, which the caller can kill by pid', async () => {
    const child = spawnIsolated({ file: 'sleep', args: ['30'] });
    expect(fs.existsSync(`/proc/${child.pid}`)).toBe(true);
    process.kill(child.pid, 'SIGTERM');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('does not block the event loop while the child runs', async () => {
    const child = spawnIsolated({ file: 'sleep', args: ['0.3'] });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    await child.exited;
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(5);
  });

  it('leaves no zombies, also next to child_process children', async () => {
    const ours = Array.from({ length: 5 }, (_, i) => spawnIsolated({ file: 'sh', args: ['-c', `exit ${i}`] }));
    const theirs = Array.from({ length: 5 }, () => promisify(execFile)('sh', ['-c', 'exit 0']));
    const exits = await Promise.all(ours.map((c) => c.exited));
    await Promise.all(theirs);
    expect(exits.map((e) => e.code)).toEqual([0, 1, 2, 3, 4]);
    for (const c of ours) expect(fs.existsSync(`/proc/${c.pid}`)).toBe(false);
    expect(zombieChildren()).toEqual([]);
  });

  describe('errors, thrown synchronously with the child reaped', () => {
    afterEach(() => {
      expect(zombieChildren()).toEqual([]);
    });

    it('a missing program: ENOENT from execvp', () => {
      for (const file of ['pipework-no-such-program', '/nonexistent/program']) {
        expect(() => spawnIsolated({ file, args: [] })).toThrow(
          expect.objectContaining({ code: 'ENOENT', errno: os.constants.errno.ENOENT, syscall: 'execvp' }),
        );
      }
    });

    it('a program that is not executable: EACCES from execvp', () => {
      const file = path.join(dir, 'not-executable');
      fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o644 });
      expect(() => spawnIsolated({ file, args: [] })).toThrow(expect.objectContaining({ code: 'EACCES', syscall: 'execvp' }));
    });

    it('a bad netns fd: EBADF or EINVAL from setns', () => {
      // Far above anything open (a just-closed fd number would be reused).
      expect(() => spawnIsolated({ file: 'true', args: [], netnsFd: 987654 })).toThrow(
        expect.objectContaining({ code: 'EBADF', syscall: 'setns' }),
      );
      const notNetns = track(fs.openSync('/dev/null', 'r'));
      expect(() => spawnIsolated({ file: 'true', args: [], netnsFd: notNetns })).toThrow(
        expect.objectContaining({ code: 'EINVAL', syscall: 'setns' }),
      );
    });

    it('a missing bind-mount source: ENOENT from mount', () => {
      const before = fs.readFileSync('/etc/resolv.conf');
      expect(() =>
        spawnIsolated({
          file: 'true',
          args: [],
          privateMounts: true,
          bindMounts: [[path.join(dir, 'missing'), '/etc/resolv.conf']],
        }),
      ).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'mount' }));
      expect(Buffer.compare(fs.readFileSync('/etc/resolv.conf'), before)).toBe(0);
    });

    it('bind mounts without privateMounts are refused before anything runs', () => {
      expect(() => spawnIsolated({ file: 'true', args: [], bindMounts: [['/dev/null', '/etc/resolv.conf']] })).toThrow(
        TypeError,
      );
    });

    it('a bad stdout fd: EBADF from dup2', () => {
      expect(() => spawnIsolated({ file: 'true', args: [], stdoutFd: 987654 })).toThrow(
        expect.objectContaining({ code: 'EBADF', syscall: 'dup2' }),
      );
    });
  });
});
