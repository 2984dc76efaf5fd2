// Eight pipework processes attach 100 containers each, at once, to one bridge
// that does not exist yet: all succeed, one bridge, 800 ports.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

const PROCS = 8;
const PER = 100;
const bin = path.join(__dirname, '../../bin/pipework.js');
const dir = mkdtempSync(path.join(tmpdir(), 'pipework-conc-'));
const names = Array.from({ length: PROCS * PER }, (_, i) => `conc${i}`);

afterAll(() => {
  // Named netns live in the run's private /run; deleting them also removes their veths.
  for (const n of names) execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
  execFileSync('ip', ['link', 'del', 'brconc'], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
});

it(`${PROCS} processes x ${PER} containers onto one new bridge`, async () => {
  for (const n of names) execFileSync('ip', ['netns', 'add', n]);
  const files = Array.from({ length: PROCS }, (_, p) => {
    const f = path.join(dir, `batch${p}`);
    writeFileSync(f, names.slice(p * PER, (p + 1) * PER).map((n, i) => `brconc ${n} 10.200.${p}.${i + 1}/16`).join('\n'));
    return f;
  });
  const codes = await Promise.all(files.map((f) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, '--no-arp', '--batch', f], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stderr }));
  })));
  for (const c of codes) expect(c).toMatchObject({ code: 0, stderr: expect.stringMatching(/^100 done, 0 failed/) });
  const bridges = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'type', 'bridge'], { encoding: 'utf8' }));
  expect(bridges.filter((b: { ifname: string }) => b.ifname === 'brconc')).toHaveLength(1);
  const ports = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'master', 'brconc'], { encoding: 'utf8' }));
  expect(ports).toHaveLength(PROCS * PER);
}, 120_000);
