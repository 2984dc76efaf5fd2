import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Command, GlobalOptions, parseArgs } from './args';
import { describeError, runOne } from './main';
import { PipeworkError } from '../errors';

type Out = { out: (s: string) => void; err: (s: string) => void };

/**
 * One batch line as a shell would split it, without any expansion: words,
 * 'single' and "double" quotes, backslash escapes, and # comments. Returns
 * no words for a blank or comment-only line.
 */
export function splitLine(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === ' ' || c === '\t' || c === '\r') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new PipeworkError('unterminated single quote');
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      word ??= '';
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) i++;
        word += line[i];
      }
      if (i >= line.length) throw new PipeworkError('unterminated double quote');
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new PipeworkError('backslash at end of line');
      word = (word ?? '') + line[++i];
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** Each line's command: the batch's own options apply to every line. */
function lineCommand(words: string[], unplug: boolean, opts: GlobalOptions): Command {
  const cmd = parseArgs(unplug ? ['unplug', ...words] : words);
  if (cmd.kind === 'usage') throw new PipeworkError('not a pipework command (too few arguments)');
  if (!('opts' in cmd) || cmd.kind === 'batch') throw new PipeworkError(`--${cmd.kind} cannot be used in a batch`);
  cmd.opts = { ...cmd.opts, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined && v !== false)), arp: opts.arp && cmd.opts.arp };
  return cmd;
}

/**
 * `pipework [unplug] --batch FILE|-`: every line in one process and one
 * session, read as a stream (memory stays flat whatever the length). A failed
 * line is rolled back alone and reported as `line N: ...`; the others go on.
 * A progress line on stderr when it is a terminal; exit status 1 if any line failed.
 */
export async function runBatch(file: string, unplug: boolean, opts: GlobalOptions, io: Out): Promise<number> {
  const { Session }: typeof import('../index') = require('../index');
  const input = file === '-' ? process.stdin : createReadStream(file);
  const readFailure = new Promise<never>((_, reject) => input.once('error', (e: Error) => reject(new PipeworkError(`cannot read ${file}: ${e.message}`))));
  readFailure.catch(() => undefined);
  const lines = createInterface({ input, crlfDelay: Infinity });
  const session = new Session();
  const progress = process.stderr.isTTY && !opts.json;
  const started = process.hrtime.bigint();
  let lineNo = 0;
  let done = 0;
  let failed = 0;
  try {
    const iterate = (async () => {
      for await (const line of lines) {
        lineNo++;
        let words: string[];
        try {
          words = splitLine(line);
          if (words.length === 0) continue;
          await runOne(session, lineCommand(words, unplug, opts), io);
          done++;
        } catch (e) {
          failed++;
          io.err(`line ${lineNo}: ${describeError(e, opts.verbose)}`);
        }
        if (progress && (done + failed) % 50 === 0) process.stderr.write(`\r${done} done, ${failed} failed`);
      }
    })();
    await Promise.race([iterate, readFailure]);
  } finally {
    session.close();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (progress) process.stderr.write('\r');
  if (!opts.json || failed) io.err(`${done} done, ${failed} failed, in ${seconds.toFixed(2)} s`);
  return failed ? 1 : 0;
}
