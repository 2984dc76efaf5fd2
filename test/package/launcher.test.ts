// The `pipework` launcher (bin/pipework.js, a /bin/sh and Node polyglot):
// run through a link, as npm installs it, it starts Node and no other
// program, and Node starts without NODE_EXTRA_CA_CERTS.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'pipework-launcher-'));
const link = join(dir, 'pipework');
symlinkSync(resolve(__dirname, '../../bin/pipework.js'), link);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('finds itself through a link and starts only node', () => {
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=execve,fork,vfork,clone,clone3', '-e', 'signal=none', '-o', join(dir, 'trace'), link, '--version'], { encoding: 'utf8' });
  expect(r.stdout.trim()).toBe(require('../../package.json').version);
  const trace = require('node:fs').readFileSync(join(dir, 'trace'), 'utf8') as string;
  // Successful execs only (the shell's PATH search for node fails on other directories first).
  const execs = trace.split('\n').filter((l) => /execve\(/.test(l) && / = 0$/.test(l)).map((l) => l.match(/execve\("([^"]+)"/)![1]);
  expect(execs).toEqual([link, expect.stringMatching(/\/node$/)]);
  // No process made: the only clones are Node's threads.
  const spawns = trace.split('\n').filter((l) => /\b(v?fork|clone3?)\(/.test(l) && !/CLONE_THREAD/.test(l));
  expect(spawns).toEqual([]);
});

it('starts Node without NODE_EXTRA_CA_CERTS', () => {
  // Node warns on stderr when the bundle it names cannot be read: it is not read at all.
  const r = spawnSync(link, ['--version'], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem') } });
  expect(r.status).toBe(0);
  expect(r.stderr).toBe('');
  const control = spawnSync(process.execPath, ['-e', '0'], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem') } });
  expect(control.stderr).toMatch(/NODE_EXTRA_CA_CERTS|extra certs/i);
});
