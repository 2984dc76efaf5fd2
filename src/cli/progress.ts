/**
 * The `--batch` progress bar on a terminal: `[#####-----] 512/1000 51%
 * 210/s 2s left, 3 failed`, redrawn in place at most every 100 ms, with no
 * timer of its own (it draws when work finishes, so it never keeps the
 * process alive). Without a total (a batch read from standard input) it
 * shows the count and the rate. A few lines of ours rather than
 * cli-progress: requiring that package took 36-70 ms here, as much again as
 * the whole start of a `pipework` process.
 */
const REDRAW_NS = 100_000_000n;
const BAR_MAX = 40;

export interface Progress {
  /** Counts so far; redraws if the last drawing is old enough. */
  update(done: number, failed: number): void;
  /** Wipes the bar, so a line can be written where it was (redrawn at the next update). */
  clear(): void;
  /** Draws the final state and ends its line. */
  end(): void;
}

/** Seconds as `42s`, `3m07s` or `1h02m`. */
export function formatDuration(s: number): string {
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor(t / 60) % 60).padStart(2, '0')}m`;
}

/** The bar's text for a terminal `columns` wide; total undefined when not known. */
export function renderProgress(finished: number, failed: number, total: number | undefined, seconds: number, columns: number): string {
  const rate = seconds > 0 ? finished / seconds : 0;
  const failures = failed ? `, ${failed} failed` : '';
  if (total === undefined) return `${finished} done${failures}, ${rate.toFixed(0)}/s`;
  const shown = Math.min(finished, total);
  const left = rate > 0 ? formatDuration((total - shown) / rate) : '?';
  const text = ` ${shown}/${total} ${total ? Math.floor((100 * shown) / total) : 100}% ${rate.toFixed(0)}/s ${left} left${failures}`;
  const width = Math.max(0, Math.min(BAR_MAX, columns - text.length - 3));
  const filled = total ? Math.round((width * shown) / total) : width;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${text}`;
}

/** A bar on stream (a terminal) for `total` items (undefined: unknown). */
export function progressBar(stream: NodeJS.WriteStream, total: number | undefined): Progress {
  const started = process.hrtime.bigint();
  let drawn = 0n;
  let done = 0;
  let failed = 0;
  const draw = (now: bigint) => {
    drawn = now;
    const seconds = Number(now - started) / 1e9;
    stream.write(`\r${renderProgress(done + failed, failed, total, seconds, stream.columns || 80)}\x1b[K`);
  };
  return {
    update(d, f) {
      done = d;
      failed = f;
      const now = process.hrtime.bigint();
      if (now - drawn >= REDRAW_NS) draw(now);
    },
    clear() {
      stream.write('\r\x1b[K');
      drawn = 0n;
    },
    end() {
      draw(process.hrtime.bigint());
      stream.write('\n');
    },
  };
}
