// `npm run demo` as a newcomer runs it, on a host with only Node: a PATH
// holding node, npm, sh and what scripts/in-netns.js starts (unshare, mount,
// mkdir), without ping, ip or Docker. It makes its own throwaway namespaces.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/package/demo.test.ts runs the demo in namespaces: only inside scripts/in-netns.js');
}

const ROOT = resolve(__dirname, '../..');
const bin = mkdtempSync(join(tmpdir(), 'pipework-demo-path-'));
afterAll(() => rmSync(bin, { recursive: true, force: true }));

const which = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();

it('npm run demo passes with only Node: connectivity proven over UDP, no ping', () => {
  for (const name of ['node', 'npm', 'sh', 'unshare', 'mount', 'mkdir']) symlinkSync(which(name), join(bin, name));
  const env: NodeJS.ProcessEnv = { PATH: bin, HOME: process.env.HOME };
  for (const name of ['ping', 'ip', 'nsenter', 'docker']) {
    expect(spawnSync('sh', ['-c', `command -v ${name}`], { env }).status).not.toBe(0);
  }
  const r = spawnSync('npm', ['run', 'demo'], { cwd: ROOT, env, encoding: 'utf8' });
  expect(r.stderr).not.toMatch(/demo failed/);
  expect(r.status).toBe(0);
  const checks = r.stdout.split('\n').filter((l) => / -> 10\.77\.0\.\d+: /.test(l));
  expect(checks).toHaveLength(8); // 4 containers, each to the next and to the gateway
  for (const l of checks) expect(l).toMatch(/^ {2}10\.77\.0\.1[0-3] -> 10\.77\.0\.(1|1[0-3]): ok \([\d.]+ ms\)$/);
  expect(r.stdout).toMatch(/Detached all 4 in/);
  // The demo made its own namespaces: nothing of it is left in this one.
  expect(spawnSync('ip', ['link', 'show', 'br0']).status).not.toBe(0);
}, 120_000);
