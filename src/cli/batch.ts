import { type Command, type GlobalOptions, parseArgs } from './args';
import { readLines } from './lines';
import { describeError, runOne } from './commands';
import { PipeworkError } from '../errors';
import { type Stopping, stopOnSignals } from './signals';
import type { Out } from '../run/out';

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

/** Line numbers as ranges: lines finish nearly in order, so a long batch makes few. */
export class LineSet {
  private readonly ranges: [number, number][] = [];
  size = 0;

  add(n: number): void {
    const r = this.ranges;
    let i = r.length; // first range starting after n
    while (i > 0 && r[i - 1][0] > n) i--;
    const prev = r[i - 1];
    if (prev && n <= prev[1]) return;
    this.size++;
    const next = r[i];
    if (prev && prev[1] === n - 1) {
      prev[1] = n;
      if (next && next[0] === n + 1) prev[1] = r.splice(i, 1)[0][1];
    } else if (next && next[0] === n + 1) next[0] = n;
    else r.splice(i, 0, [n, n]);
  }

  /** `1-338, 340` */
  toString(): string {
    return this.ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ');
  }

  /** [[first, last], ...] */
  toJSON(): [number, number][] {
    return this.ranges;
  }
}

/** A line not started because the batch is stopping. */
class NotStarted extends Error {}

/**
 * `pipework [unplug] --batch FILE|-`: every line in one process and one
 * session, read as a stream (memory stays flat whatever the length), up to
 * up to 1024 lines in flight (defaultConcurrency); lines naming the same guest keep their order, and the
 * first attach to a host interface runs alone (it may create the bridge; a
 * Linux bridge is then looked up once for all the lines, see bulkAttacher). A
 * failed line is rolled back alone and reported as `line N: ...`; the others
 * go on. Unplugged veths are deleted by device group, hundreds at once. A
 * progress bar on stderr when it is a terminal (a file is counted first for
 * its total; standard input has none); exit status 1 if any line failed.
 * Stopped by a signal (see stopOnSignals: a second one rolls back the
 * attaches in flight): a summary of the lines done, failed, rolled back and
 * not started (with --json, also as a JSON line on stdout), and exit status
 * 128 + the signal's number.
 */
export async function runBatch(file: string, unplug: boolean, opts: GlobalOptions, io: Out): Promise<number> {
  const { Session }: typeof import('../session') = require('../session');
  const session = new Session();
  try {
    const progress = process.stderr.isTTY && !opts.json
      ? (require('./progress') as typeof import('./progress')).progressBar(process.stderr, file === '-' ? undefined : await countCommands(file))
      : undefined;
    const stopping = stopOnSignals((text) => { progress?.clear(); io.err(text); }, {
      stopping: 'starting no more lines, finishing those in flight (a second signal rolls them back)',
      rollingBack: 'rolling back the attaches in flight',
    });
    try {
      // On a terminal, the rest of standard input would be waited for: it is left unread.
      return await runBatchLines(readLines(file), unplug, opts, io, { session, progress, stopping, readRest: !(file === '-' && process.stdin.isTTY) });
    } finally {
      stopping.dispose();
    }
  } finally {
    session.close();
  }
}

/**
 * The lines of a batch, run as --batch runs them, in the caller's session
 * (the daemon's /v1/batch); progress: the bar on a terminal; stopping: a
 * graceful stop (see stopOnSignals), after which the rest of the lines are
 * read only to be named as not started (unless readRest is false).
 */
export async function runBatchLines(lines: AsyncIterable<string> | Iterable<string>, unplug: boolean, opts: GlobalOptions, io: Out,
  { session, progress, stopping, readRest = true }: {
    session: import('../session').Session; progress?: import('./progress').Progress; stopping?: Stopping; readRest?: boolean;
  }): Promise<number> {
  const { runBounded, bulkAttacher, GroupDeleter, Sequencer }: typeof import('../bulk') = require('../bulk');
  const { resolveGuest }: typeof import('../guest/resolve') = require('../guest/resolve');
  const { AttachAborted }: typeof import('../exec/context') = require('../exec/context');
  const started = process.hrtime.bigint();
  const attachWith = bulkAttacher(session, { abort: stopping?.rollback });
  const inOrder = new Sequencer();
  const deleter = new GroupDeleter<number>(session); // marks: line numbers whose veth awaits the group deletion
  const done = new LineSet();
  const failed = new LineSet();
  const rolledBack = new LineSet();
  const notStarted = new LineSet();
  const report = (no: number, e: unknown) => {
    if (e instanceof NotStarted) return notStarted.add(no);
    (e instanceof AttachAborted ? rolledBack : failed).add(no);
    progress?.clear();
    io.err(`line ${no}: ${describeError(e, opts.verbose)}`);
  };

  /** Deletes the marked veths at once; their lines count as done only then. */
  const flush = async () => {
    const { marked, error } = await deleter.flush();
    for (const no of marked) {
      if (error) report(no, error);
      else done.add(no);
    }
  };

  const work = async (line: Line): Promise<boolean> => {
    if (line.error) throw line.error;
    const cmd = line.cmd!;
    if (cmd.kind === 'unplug' && !cmd.opts.dryRun) {
      const named = await resolveGuest(cmd.guest);
      try {
        const r = await session.detachOrGroup(named.guest, cmd.containerInterface, deleter.group, { unplug: true });
        if (r.grouped) deleter.mark(line.no);
        if (cmd.opts.json) io.out(JSON.stringify({ guest: named.name, containerInterface: cmd.containerInterface, ...r.outcome }));
        return !r.grouped;
      } finally {
        named.guest.close();
      }
    }
    const key = 'guest' in cmd ? cmd.guest : '';
    return inOrder.run(key, async () => {
      // Queued behind an earlier line for the same guest when the stop came.
      if (stopping?.signal) throw new NotStarted();
      await runOne(session, cmd, io, attachWith);
      return true;
    });
  };

  const lineOf = new Map<number, number>(); // item index -> line number, for lines in flight
  let index = 0;
  const items = (async function* () {
    for await (const l of parsedLines(lines, unplug, opts)) {
      // Stopping: the rest is only counted.
      if (stopping?.signal) notStarted.add(l.no);
      else {
        lineOf.set(index++, l.no);
        yield l;
      }
    }
  })();
  for await (const r of runBounded(items, work, { concurrency: opts.concurrency, signal: stopping?.stop })) {
    const no = lineOf.get(r.index)!;
    lineOf.delete(r.index);
    if (!r.ok) report(no, r.error);
    else if (r.result) done.add(no);
    if (deleter.full) await flush();
    progress?.update(done.size, failed.size + rolledBack.size);
  }
  await flush();
  if (stopping?.signal) {
    // Read but never started (the stop came as the line was handed over).
    for (const no of lineOf.values()) notStarted.add(no);
    if (readRest) await items.next();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  progress?.end();
  if (stopping?.signal) {
    const part = (what: string, set: LineSet) => `${set.size} ${what}${set.size ? ` (lines ${set})` : ''}`;
    io.err(`stopped by ${stopping.signal}: ${part('done', done)}, ${part('failed', failed)}, ` +
      `${part('rolled back', rolledBack)}, ${part('not started', notStarted)}, in ${seconds.toFixed(2)} s`);
    if (opts.json) io.out(JSON.stringify({ stopped: stopping.signal, done, failed, rolledBack, notStarted }));
    return stopping.exitStatus();
  }
  const nFailed = failed.size + rolledBack.size;
  if (!opts.json || nFailed) io.err(`${done.size} done, ${nFailed} failed, in ${seconds.toFixed(2)} s`);
  return nFailed ? 1 : 0;
}
