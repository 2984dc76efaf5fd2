// runBounded: bounded concurrency and bounded memory, whatever the pace of the consumer.
// Sequencer and FirstAlone: the order the front ends run work in (--batch, watch).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { FirstAlone, Sequencer, runBounded } from '../../src/bulk';

describe('runBounded', () => {
  it('never holds more than `concurrency` items pulled but not yet handed out, even with a slow consumer', async () => {
    let pulled = 0;
    function* items() {
      for (let i = 0; i < 200; i++) {
        pulled++;
        yield i;
      }
    }
    let handed = 0;
    let most = 0;
    const seen: number[] = [];
    for await (const r of runBounded(items(), async (i: number) => i * 2, { concurrency: 8 })) {
      handed++;
      most = Math.max(most, pulled - handed + 1);
      expect(r.ok).toBe(true);
      if (r.ok) seen.push(r.result / 2);
      await new Promise((resume) => setTimeout(resume, 0)); // a consumer slower than the work
    }
    expect(most).toBeLessThanOrEqual(8);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('with a stop signal, pulling from an async input leaves no listener behind per item (memory stays flat)', async () => {
    const { getEventListeners } = (await import('node:events')).EventEmitter;
    const stop = new AbortController();
    async function* items() {
      for (let i = 0; i < 2000; i++) yield i;
    }
    let most = 0;
    let n = 0;
    for await (const r of runBounded(items(), async (i: number) => i, { concurrency: 4, signal: stop.signal })) {
      expect(r.ok).toBe(true);
      most = Math.max(most, getEventListeners(stop.signal, 'abort').length);
      n++;
    }
    expect(n).toBe(2000);
    expect(most).toBeLessThanOrEqual(1);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
  });

  it('a failed item is reported alone; stopOnError starts no new item after it', async () => {
    const work = async (i: number) => { if (i === 3) throw new Error('bad 3'); return i; };
    const all = [];
    for await (const r of runBounded([0, 1, 2, 3, 4, 5], work, { concurrency: 2 })) all.push(r);
    expect(all.filter((r) => !r.ok)).toEqual([{ index: 3, ok: false, error: new Error('bad 3') }]);
    expect(all).toHaveLength(6);
    const stopped = [];
    for await (const r of runBounded([0, 1, 2, 3, 4, 5, 6, 7], work, { concurrency: 1, stopOnError: true })) stopped.push(r.index);
    expect(stopped).toEqual([0, 1, 2, 3]);
  });
});

describe('defaultConcurrency', () => {
  // In a child: Node reads its open-file limit at start (and raises the soft one to the hard one).
  const inChild = (...prefix: string[]) => {
    const script = `process.stdout.write(String(require(${JSON.stringify(resolve(__dirname, '../../dist/bulk/index.js'))}).defaultConcurrency()))`;
    const argv = [...prefix, process.execPath, '-e', script];
    return spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' }).stdout;
  };
  it('is 1024 where open files allow, and fewer under a low open-file limit (3 descriptors per item, 64 to spare)', () => {
    expect(inChild('prlimit', '--nofile=4000:4000')).toBe('1024');
    expect(inChild('prlimit', '--nofile=256:256')).toBe('64');
  });
});

/** A promise settled from outside, and a log of what started and ended when. */
function deferred<T = void>() {
  let settle!: { resolve: (v: T) => void; reject: (e: Error) => void };
  const promise = new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
  return { promise, ...settle };
}
const turns = () => new Promise((resume) => setImmediate(resume));

describe('Sequencer', () => {
  it('runs work under one key one after another, after a failure too; other keys meanwhile; idle() waits for all', async () => {
    const seq = new Sequencer();
    const log: string[] = [];
    const gates = { a1: deferred(), a2: deferred(), b1: deferred() };
    const job = (name: keyof typeof gates) => async () => {
      log.push(`start ${name}`);
      await gates[name].promise;
      log.push(`end ${name}`);
      return name;
    };
    const a1 = seq.run('a', job('a1'));
    const a2 = seq.run('a', job('a2'));
    const b1 = seq.run('b', job('b1'));
    let idle = false;
    const idling = seq.idle().then(() => { idle = true; });
    await turns();
    expect(log).toEqual(['start a1', 'start b1']); // a2 waits for a1; b1 does not
    gates.a1.reject(new Error('a1 failed'));
    await expect(a1).rejects.toThrow('a1 failed');
    await turns();
    expect(log).toEqual(['start a1', 'start b1', 'start a2']); // a failure releases the next one too
    gates.a2.resolve();
    expect(await a2).toBe('a2');
    // Queued while idle() waits: waited for as well.
    const a3 = seq.run('a', async () => 'a3');
    await turns();
    expect(idle).toBe(false);
    gates.b1.resolve();
    expect(await Promise.all([b1, a3])).toEqual(['b1', 'a3']);
    await idling;
    expect(idle).toBe(true);
  });
});

describe('FirstAlone', () => {
  it('the first work on a key runs alone; the later ones start when it settled (failed or not), all at once; other keys are not held', async () => {
    const gate = new FirstAlone();
    const log: string[] = [];
    const first = deferred();
    const later = deferred();
    const run = (key: string, name: string, until: Promise<void>) => gate.run(key, async (isFirst) => {
      log.push(`${name}${isFirst ? ' (first)' : ''}`);
      await until;
      return name;
    });
    const x1 = run('br0', 'x1', first.promise);
    const x2 = run('br0', 'x2', later.promise);
    const x3 = run('br0', 'x3', later.promise);
    const y1 = run('br1', 'y1', Promise.resolve());
    await turns();
    expect(log).toEqual(['x1 (first)', 'y1 (first)']);
    first.reject(new Error('x1 failed'));
    await expect(x1).rejects.toThrow('x1 failed');
    await turns();
    expect(log).toEqual(['x1 (first)', 'y1 (first)', 'x2', 'x3']); // together, neither waits for the other
    later.resolve();
    expect(await Promise.all([x2, x3, y1])).toEqual(['x2', 'x3', 'y1']);
    // Long after: not first any more, and not held.
    expect(await run('br0', 'x4', Promise.resolve())).toBe('x4');
    expect(log.at(-1)).toBe('x4');
  });
});
