// readOptions and optionsOrExit: the options of `pipework daemon`,
// `docker-plugin` and `watch`, read one way for all three.
import { describe, expect, it } from 'vitest';
import { optionsOrExit, readOptions } from '../../src/cli/options';

const spec = { flags: { '-q': 'quiet', '--quiet': 'quiet', '--watch': 'watch' }, values: { '--socket': 'socket' } } as const;

describe('readOptions', () => {
  it('flags by any of their names, values after their option, help wherever it comes', () => {
    expect(readOptions(['-q', '--socket', '/run/x.sock', '--quiet'], 'daemon', spec))
      .toEqual({ flags: new Set(['quiet']), values: { socket: '/run/x.sock' } });
    expect(readOptions([], 'daemon', spec)).toEqual({ flags: new Set(), values: {} });
    expect(readOptions(['--watch', '-h', '--bogus'], 'daemon', spec)).toBe('help');
  });

  it('refuses, naming it, an unknown argument (inherited property names too) and an option without its value', () => {
    for (const a of ['--bogus', 'constructor', '__proto__', 'toString'])
      expect(() => readOptions([a], 'watch', spec)).toThrow(`Unexpected argument: ${a} (see pipework watch --help)`);
    expect(() => readOptions(['--socket'], 'daemon', spec)).toThrow('--socket needs a value.');
    expect(() => readOptions(['--socket', '', '-q'], 'daemon', spec)).toThrow('--socket needs a value.');
  });
});

describe('optionsOrExit', () => {
  const io = () => {
    const lines: string[] = [];
    return { lines, out: (l: string) => lines.push(`out: ${l}`), err: (l: string) => lines.push(`err: ${l}`) };
  };
  it('the options; or usage on stdout and 0; or the error on stderr and 1', () => {
    const a = io();
    expect(optionsOrExit(() => readOptions(['-q'], 'watch', spec), 'Usage: ...', a)).toEqual({ flags: new Set(['quiet']), values: {} });
    expect(a.lines).toEqual([]);
    const b = io();
    expect(optionsOrExit(() => readOptions(['--help'], 'watch', spec), 'Usage: ...', b)).toBe(0);
    expect(b.lines).toEqual(['out: Usage: ...']);
    const c = io();
    expect(optionsOrExit(() => readOptions(['-x'], 'watch', spec), 'Usage: ...', c)).toBe(1);
    expect(c.lines).toEqual(['err: Unexpected argument: -x (see pipework watch --help)']);
  });
});
