// `pipework --batch` progress: a bar with count, rate and time left on a
// real terminal (a tmux pane: run, then read the screen), and nothing of it
// when stderr is a pipe. Only inside scripts/in-netns.js.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { formatDuration, renderProgress } from '../../src/cli/progress';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/progress.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

const BIN = resolve(__dirname, '../../bin/pipework.js');
const COUNT = 120;
const dir = mkdtempSync(join(tmpdir(), 'pipework-progress-'));
const tmuxSocket = join(dir, 'tmux.sock');
const batch = join(dir, 'batch.txt');
const tmux = (...args: string[]) => execFileSync('tmux', ['-S', tmuxSocket, ...args], { encoding: 'utf8' });

/** The batch: COUNT attaches onto a new bridge, and line 3 a bad one. */
function writeBatch(): void {
  const lines = Array.from({ length: COUNT }, (_, i) => `brprog pwprog${i} 10.98.0.${i + 1}/24`);
  lines.splice(2, 0, 'brprog pwprog0 10.98.0.300/24', '# a comment, not counted', '');
  writeFileSync(batch, `${lines.join('\n')}\n`);
}

beforeAll(() => {
  for (let i = 0; i < COUNT; i++) execFileSync('ip', ['netns', 'add', `pwprog${i}`]);
});

afterEach(() => {
  spawnSync('tmux', ['-S', tmuxSocket, 'kill-server']);
  for (let i = 0; i < COUNT; i++) spawnSync('ip', ['-n', `pwprog${i}`, 'link', 'del', 'eth1']);
  spawnSync('ip', ['link', 'del', 'brprog']);
});

afterAll(() => {
  for (let i = 0; i < COUNT; i++) spawnSync('ip', ['netns', 'del', `pwprog${i}`]);
  rmSync(dir, { recursive: true, force: true });
});

it('draws a bar with count, rate and time left on a terminal, and ends on its full line', async () => {
  writeBatch();
  tmux('new-session', '-d', '-x', '100', '-y', '12', `${process.execPath} ${BIN} --batch ${batch}; echo "EXIT=$?"; sleep 600`);
  let screen = '';
  for (let t = 0; t < 600 && !/EXIT=\d/.test(screen); t++) {
    await new Promise((r) => setTimeout(r, 100));
    screen = tmux('capture-pane', '-p');
  }
  const rows = screen.split('\n').map((l) => l.trimEnd()).filter(Boolean);
  expect(rows).toContain('EXIT=1');
  // The failed line printed above the bar, the bar drawn in full, then the summary.
  const bar = rows.findIndex((l) => l.startsWith('['));
  expect(rows.slice(0, bar)).toEqual([expect.stringMatching(/^line 3: /)]);
  expect(rows[bar]).toMatch(new RegExp(`^\\[#{20,40}\\] ${COUNT + 1}/${COUNT + 1} 100% \\d+/s 0s left, 1 failed$`));
  expect(rows[bar + 1]).toMatch(new RegExp(`^${COUNT} done, 1 failed, in [\\d.]+ s$`));
  // Each line was really attached.
  const ports = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'master', 'brprog'], { encoding: 'utf8' }));
  expect(ports).toHaveLength(COUNT);
}, 120_000);

it('shows no bar when stderr is not a terminal, and --json output is unchanged', () => {
  writeBatch();
  const r = spawnSync(process.execPath, [BIN, '--batch', batch], { encoding: 'utf8' });
  expect(r.status).toBe(1);
  expect(r.stderr.split('\n')).toEqual([expect.stringMatching(/^line 3: /), expect.stringMatching(new RegExp(`^${COUNT} done, 1 failed, in [\\d.]+ s$`)), '']);
  spawnSync('ip', ['link', 'del', 'brprog']);
  for (let i = 0; i < COUNT; i++) spawnSync('ip', ['-n', `pwprog${i}`, 'link', 'del', 'eth1']);
  const j = spawnSync(process.execPath, [BIN, '--json', '--batch', batch], { encoding: 'utf8' });
  expect(j.stdout.trim().split('\n').map((l) => JSON.parse(l).containerInterface.name)).toEqual(Array(COUNT).fill('eth1'));
  expect(j.stderr).not.toMatch(/\r|\[#/);
}, 120_000);

it('renders rate and time left, and fits the terminal', () => {
  expect(renderProgress(50, 2, 200, 10, 80)).toBe('[##########------------------------------] 50/200 25% 5/s 30s left, 2 failed');
  expect(renderProgress(5, 0, undefined, 2, 80)).toBe('5 done, 3/s');
  expect(renderProgress(0, 0, 10, 0, 80)).toMatch(/ 0\/10 0% 0\/s \? left$/);
  expect(renderProgress(10, 0, 1000, 1, 30).length).toBeLessThanOrEqual(30);
  expect([59, 61, 3725].map(formatDuration)).toEqual(['59s', '1m01s', '1h02m']);
});
