// Attaching over a bridge and a macvlan, adding a route and a rule: no
// program is started (only node itself shows up as an execve).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';

it('runs no other program', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pipework-strace-'));
  try {
    const log = path.join(dir, 'trace');
    const child = path.join(__dirname, '../helpers/no-exec-child.js');
    const out = execFileSync('strace', ['-f', '-qq', '-e', 'trace=execve,execveat,fork,vfork', '-o', log, process.execPath, child], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ bridge: 'eth1', macvlan: 'eth1' });
    const calls = readFileSync(log, 'utf8').split('\n').filter((l) => /\b(execve|execveat|fork|vfork)\(/.test(l));
    expect(calls).toHaveLength(1);
    expect(calls[0]).toContain(`execve("${process.execPath}"`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
