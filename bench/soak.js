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

/** Runs `cycles` attach+detach cycles over a pool of namespaces; returns the measurements. */
async function soak(cycles, { warmup = Math.floor(cycles / 4) } = {}) {
  const host = createNetns();
  const pool = Array.from({ length: 16 }, () => createNetns());
  const session = new Session({ hostNetns: host });
  const gc = globalThis.gc ?? (() => {});
  let start;
  let hostLinksLeft;
  try {
    for (let i = 0; i < cycles; i++) {
      if (i === warmup) {
        gc();
        start = { ...fds(), rss: process.memoryUsage().rss };
      }
      const guest = { fd: pool[i % pool.length] };
      await session.attach(guest, { hostInterface: 'br0', addresses: [`10.1.${(i >> 8) & 255}.${(i & 255) || 1}/16`], gateway: '10.1.255.254' });
      const d = await session.detach(guest);
      if (d.action !== 'deleted') throw new Error(`cycle ${i}: detach ${d.action}`);
    }
    gc();
    const end = { ...fds(), rss: process.memoryUsage().rss };
    hostLinksLeft = await session.bridgePortCount('br0');
    return { cycles, start, end, hostLinksLeft };
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
    const growth = (r.end.rss - r.start.rss) / r.start.rss;
    console.log(JSON.stringify({ ...r, seconds: (Date.now() - t0) / 1000, rssGrowth: +growth.toFixed(3) }));
    const ok = r.end.fds === r.start.fds && r.end.sockets === r.start.sockets && growth < 0.1 && r.hostLinksLeft === 0;
    console.log(ok ? 'PASS: fds, sockets and RSS flat, no link left' : 'FAIL');
    process.exit(ok ? 0 : 1);
  }, (e) => {
    console.error(e);
    process.exit(1);
  });
}
