import { type Command, type GlobalOptions, parseArgs } from './args';
import { readLines } from './lines';
import { describeError, runOne } from './commands';
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
  cmd.opts = {
    ...cmd.opts, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined && v !== false)),
    arp: opts.arp && cmd.opts.arp, ipv6: opts.ipv6 && cmd.opts.ipv6,
  };
  return cmd;
}

/** A parsed batch line, or why it could not be parsed. */
interface Line {
  no: number;
  cmd?: Command;
  error?: Error;
}

/** How many lines of the file are commands (each yields one result): the progress bar's total. */
async function countCommands(file: string): Promise<number> {
  let n = 0;
  for await (const text of readLines(file)) {
    try {
      if (splitLine(text).length) n++;
    } catch {
      n++; // reported as a failed line
    }
  }
  return n;
}

async function* parsedLines(lines: AsyncIterable<string> | Iterable<string>, unplug: boolean, opts: GlobalOptions): AsyncGenerator<Line> {
  let no = 0;
  for await (const text of lines) {
    no++;
    try {
      const words = splitLine(text);
      if (words.length) yield { no, cmd: lineCommand(words, unplug, opts) };
    } catch (e) {
      yield { no, error: e as Error };
    }
  }
}

/** Runs work after the previous work with the same key has settled (per-guest order is kept). */
function sequencer(): <T>(key: string, work: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return (key, work) => {
    const run = (tails.get(key) ?? Promise.resolve()).then(work);
    const tail: Promise<unknown> = run.catch(() => undefined).then(() => { if (tails.get(key) === tail) tails.delete(key); });
    tails.set(key, tail);
    return run;
  };
}

/**
 * `pipework [unplug] --batch FILE|-`: every line in one process and one
 * session, read as a stream (memory stays flat whatever the length), up to
 * 32 lines in flight; lines naming the same guest keep their order, and the
 * first attach to a host interface runs alone (it may create the bridge; a
 * Linux bridge is then looked up once for all the lines, see bulkAttacher). A
 * failed line is rolled back alone and reported as `line N: ...`; the others
 * go on. Unplugged veths are deleted by device group, hundreds at once. A
 * progress bar on stderr when it is a terminal (a file is counted first for
 * its total; standard input has none); exit status 1 if any line failed.
 */
export async function runBatch(file: string, unplug: boolean, opts: GlobalOptions, io: Out): Promise<number> {
  const { Session }: typeof import('../session') = require('../session');
  const session = new Session();
  try {
    const progress = process.stderr.isTTY && !opts.json
      ? (require('./progress') as typeof import('./progress')).progressBar(process.stderr, file === '-' ? undefined : await countCommands(file))
      : undefined;
    return await runBatchLines(readLines(file), unplug, opts, io, { session, progress });
  } finally {
    session.close();
  }
}

/**
 * The lines of a batch, run as --batch runs them, in the caller's session
 * (the daemon's /v1/batch); progress: the bar on a terminal.
 */
export async function runBatchLines(lines: AsyncIterable<string> | Iterable<string>, unplug: boolean, opts: GlobalOptions, io: Out,
  { session, progress }: { session: import('../session').Session; progress?: import('./progress').Progress }): Promise<number> {
  const { runBounded, bulkAttacher, deviceGroup }: typeof import('../bulk') = require('../bulk');
  const { resolveGuest }: typeof import('../guest/resolve') = require('../guest/resolve');
  const started = process.hrtime.bigint();
  const attachWith = bulkAttacher(session);
  const inOrder = sequencer();
  const group = deviceGroup();
  let grouped: number[] = []; // line numbers whose veth awaits the group deletion
  let done = 0;
  let failed = 0;
  const report = (no: number, e: unknown) => {
    failed++;
    progress?.clear();
    io.err(`line ${no}: ${describeError(e, opts.verbose)}`);
  };

  /** Deletes the marked veths at once; their lines count as done only then. */
  const flush = async () => {
    const lines = grouped;
    grouped = [];
    if (!lines.length) return;
    try {
      await session.deleteLinkGroup(group);
      done += lines.length;
    } catch (e) {
      for (const no of lines) report(no, e);
    }
  };

  const work = async (line: Line): Promise<boolean> => {
    if (line.error) throw line.error;
    const cmd = line.cmd!;
    if (cmd.kind === 'unplug' && !cmd.opts.dryRun) {
      const named = await resolveGuest(cmd.guest);
      try {
        const r = await session.detachOrGroup(named.guest, cmd.containerInterface, group, { unplug: true });
        if (r.grouped) grouped.push(line.no);
        if (cmd.opts.json) io.out(JSON.stringify({ guest: named.name, containerInterface: cmd.containerInterface, ...r.outcome }));
        return !r.grouped;
      } finally {
        named.guest.close();
      }
    }
    const key = 'guest' in cmd ? cmd.guest : '';
    return inOrder(key, async () => { await runOne(session, cmd, io, attachWith); return true; });
  };

  const lineOf = new Map<number, number>(); // item index -> line number, for lines in flight
  let index = 0;
  const items = (async function* () {
    for await (const l of parsedLines(lines, unplug, opts)) {
      lineOf.set(index++, l.no);
      yield l;
    }
  })();
  for await (const r of runBounded(items, work, { concurrency: 32 })) {
    const no = lineOf.get(r.index)!;
    lineOf.delete(r.index);
    if (!r.ok) report(no, r.error);
    else if (r.result) done++;
    if (grouped.length >= 512) await flush();
    progress?.update(done, failed);
  }
  await flush();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  progress?.end();
  if (!opts.json || failed) io.err(`${done} done, ${failed} failed, in ${seconds.toFixed(2)} s`);
  return failed ? 1 : 0;
}
