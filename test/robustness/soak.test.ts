// A short run of bench/soak.js (npm run soak does 20,000 cycles and also
// holds RSS to 10%): fds and netlink sockets flat, no link left.
import { expect, it } from 'vitest';

it('attach/undo cycles leak no fd, socket or link', async () => {
  const { soak } = require('../../bench/soak.js');
  const r = await soak(Number(process.env.SOAK_CYCLES ?? 300), { warmup: 30 });
  expect(r.end.fds).toBe(r.start.fds);
  expect(r.end.sockets).toBe(r.start.sockets);
  expect(r.hostLinksLeft).toBe(0);
}, 120_000);
