#!/usr/bin/env node
// Attach/undo cycles in one process: open fds, netlink sockets and RSS must
// stay flat and no link may be left. `npm run soak` (20,000 cycles by
// default, SOAK_CYCLES to change); the test suite runs a short version.
'use strict';
const { readdirSync, readlinkSync, closeSync } = require('node:fs');
const { Session, createNetns } = require('../dist/index.js');

function fds() {
  const all = readdirSync('/proc/self/fd');
  const sockets = all.filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
    } catch {
      return false;
    }
  });
  return { fds: all.length, sockets: sockets.length };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * fds() once nothing is in flight: a detach is done when the kernel announces
 * the link gone, and its socket stays open ~20 ms longer, until the kernel's
 * RCU barrier returns. Three equal readings 50 ms apart (at most 5 s).
 */
async function quietFds() {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let seen = [];
  for (let t = 0; t < 100; t++) {
    seen = [...seen.slice(-2), JSON.stringify(fds())];
    if (seen.length === 3 && seen.every((x) => x === seen[0])) break;
    await sleep(50);
  }
  return /** @type {ReturnType<typeof fds>} */ (JSON.parse(seen[seen.length - 1]));
}

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
  /** @type {ReturnType<typeof fds> | undefined} */
  let start;
  try {
    for (let i = 0; i < cycles; i++) {
      if (i === warmup) {
        gc();
        start = await quietFds();
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
    const end = await quietFds();
    const first = median(rss.slice(0, 5));
    const last = median(rss.slice(-5));
    // Taken at the end of the warm-up, which the check above makes sure comes.
    return { cycles, start: /** @type {ReturnType<typeof fds>} */ (start), end, rssMB: { first: +(first / 1e6).toFixed(1), last: +(last / 1e6).toFixed(1) }, rssGrowth: +((last - first) / first).toFixed(3), hostLinksLeft: (await session.bridge('br0'))?.ports ?? 0 };
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
