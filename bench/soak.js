#!/usr/bin/env node
// Attach/undo cycles in one process: open fds, netlink sockets and RSS must
// stay flat and no link may be left. `npm run soak` (20,000 cycles by
// default, SOAK_CYCLES to change); the test suite runs a short version.
'use strict';
const { closeSync } = require('node:fs');
const { Session, createNetns } = require('../dist/index.js');
const { quietFdCount } = require('./lib/common');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Runs `cycles` attach+detach cycles over a pool of namespaces. RSS is
 * sampled 20 times after the warm-up; growth compares the median of the last
 * five samples with the first five (one sample alone moves with the allocator).
 */
async function soak(cycles, { warmup = Math.floor(cycles / 4) } = {}) {
  // The fds are counted at the end of the warm-up: without one, nothing to compare with.
  if (!(warmup < cycles)) throw new RangeError(`soak: ${cycles} cycles leave nothing after a warm-up of ${warmup}`);
  const host = createNetns();
  const pool = Array.from({ length: 16 }, () => createNetns());
  const session = new Session({ hostNetns: host });
  const gc = globalThis.gc ?? (() => {});
  const every = Math.max(1, Math.floor((cycles - warmup) / 20));
  const rss = [];
  /** @type {Awaited<ReturnType<typeof quietFdCount>> | undefined} */
  let start;
  try {
    for (let i = 0; i < cycles; i++) {
      if (i === warmup) {
        gc();
        start = await quietFdCount(process.pid);
      }
      if (i >= warmup && (i - warmup) % every === 0) {
        gc();
        rss.push(process.memoryUsage().rss);
      }
      const guest = { fd: pool[i % pool.length] };
      await session.attach(guest, { hostInterface: 'br0', addresses: [`10.1.${(i >> 8) & 255}.${(i & 255) || 1}/16`], gateway: '10.1.255.254' });
      const d = await session.detach(guest);
      if (d.action !== 'deleted') throw new Error(`cycle ${i}: detach ${d.action}`);
    }
    gc();
    rss.push(process.memoryUsage().rss);
    const end = await quietFdCount(process.pid);
    const first = median(rss.slice(0, 5));
    const last = median(rss.slice(-5));
    // Taken at the end of the warm-up, which the check above makes sure comes.
    return { cycles, start: /** @type {Awaited<ReturnType<typeof quietFdCount>>} */ (start), end, rssMB: { first: +(first / 1e6).toFixed(1), last: +(last / 1e6).toFixed(1) }, rssGrowth: +((last - first) / first).toFixed(3), hostLinksLeft: (await session.bridge('br0'))?.ports ?? 0 };
  } finally {
    session.close();
    [host, ...pool].forEach((fd) => closeSync(fd));
  }
}

module.exports = { soak };

if (require.main === module) {
  const cycles = Number(process.env.SOAK_CYCLES ?? 20000);
  const t0 = Date.now();
  soak(cycles).then((r) => {
    console.log(JSON.stringify({ ...r, seconds: (Date.now() - t0) / 1000 }));
    const ok = r.end.fds === r.start.fds && r.end.sockets === r.start.sockets && r.rssGrowth < 0.1 && r.hostLinksLeft === 0;
    console.log(ok ? 'PASS: fds, sockets and RSS flat, no link left' : 'FAIL');
    process.exit(ok ? 0 : 1);
  }, (e) => {
    console.error(e);
    process.exit(1);
  });
}
