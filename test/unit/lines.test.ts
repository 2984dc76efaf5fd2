// The batch file reader: lines as readline gives them, across 64 KiB chunks.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readLines } from '../../src/cli/lines';

const dir = mkdtempSync(join(tmpdir(), 'pw-lines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function linesOf(content: string | Buffer): Promise<string[]> {
  const file = join(dir, 'f');
  writeFileSync(file, content);
  const out: string[] = [];
  for await (const l of readLines(file)) out.push(l);
  return out;
}

describe('readLines', () => {
  it('ends lines at \\n, \\r\\n and a lone \\r; keeps empty lines (line numbers count them); a last line without newline', async () => {
    expect(await linesOf('a\nb\r\nc\rd\n\n e \n')).toEqual(['a', 'b', 'c', 'd', '', ' e ']);
    expect(await linesOf('x\ny')).toEqual(['x', 'y']);
    expect(await linesOf('x\r')).toEqual(['x']);
    expect(await linesOf('')).toEqual([]);
  });

  it('across chunk boundaries: a \\r\\n split in two, a UTF-8 character split in two, a line longer than a chunk', async () => {
    const chunk = 1 << 16;
    const crlf = `${'a'.repeat(chunk - 1)}\r\nb\n`; // \r is the chunk's last byte
    expect(await linesOf(crlf)).toEqual(['a'.repeat(chunk - 1), 'b']);
    const utf8 = Buffer.concat([Buffer.from('x'.repeat(chunk - 1)), Buffer.from('é\nü\n')]); // é straddles the boundary
    expect(await linesOf(utf8)).toEqual([`${'x'.repeat(chunk - 1)}é`, 'ü']);
    const long = 'l'.repeat(3 * chunk + 5);
    expect(await linesOf(`${long}\nend`)).toEqual([long, 'end']);
  });

  it('a file that cannot be opened: a PipeworkError naming it', async () => {
    const gen = readLines(join(dir, 'missing'));
    await expect(gen.next()).rejects.toThrow(/^cannot read .*missing: ENOENT/);
  });
});
