#!/usr/bin/env node
// Bulk attach with progress: N containers (new network namespaces) onto one
// bridge with the library's attachMany, a progress line as they complete,
// then every one detached at once (the line only on a terminal). A private netns plays "host", so this
// changes nothing of the machine's own network. Needs root (or run it in
// a user namespace: unshare --user --map-root-user --net node ...).
//
//   node examples/bulk-attach.js [N]      (default 200)
'use strict';
const { closeSync } = require('node:fs');
const { Session, createNetns } = require('pipework');

async function main() {
  const count = Number(process.argv[2] ?? 200);
  const host = createNetns();
  const session = new Session({ hostNetns: host });
  const guests = Array.from({ length: count }, () => createNetns());
  const started = Date.now();
  const progress = process.stderr.isTTY && ((done, failed) => {
    const rate = (done + failed) / ((Date.now() - started) / 1000 || 1);
    process.stderr.write(`\rattached ${done}/${count}, ${failed} failed, ${rate.toFixed(0)}/s `);
  });
  const items = guests.map((fd, i) => ({
    guest: { fd },
    request: { hostInterface: 'br-example', addresses: [`10.60.${i >> 8}.${(i & 255) + 1}/16`], gateway: '10.60.255.254' },
  }));
  let failed = 0;
  for await (const r of session.attachMany(items, { concurrency: 32, onProgress: progress || undefined })) {
    if (!r.ok) {
      failed++;
      console.error(`\ncontainer ${r.index}: ${r.error.message}`);
    }
  }
  if (progress) process.stderr.write('\n');
  const ports = (await session.bridge('br-example'))?.ports;
  console.log(`${count - failed} attached, ${failed} failed; br-example has ${ports} ports`);

  let detached = 0;
  for await (const r of session.detachMany(guests.map((fd) => ({ guest: { fd } })))) if (r.ok) detached++;
  console.log(`${detached} detached`);
  session.close();
  for (const fd of [...guests, host]) closeSync(fd);
  if (failed) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
