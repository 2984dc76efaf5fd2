#!/usr/bin/env node
// Runs a command inside throwaway network and mount namespaces, so nothing
// it does can touch this machine's network or /run/netns, and nothing it
// creates outlives it. Root: `unshare --net --mount`; others add a user ns.
'use strict';
const { spawnSync } = require('node:child_process');
const { statSync } = require('node:fs');

const nsIds = () => `${statSync('/proc/self/ns/net').ino}:${statSync('/proc/self/ns/mnt').ino}`;
const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error('usage: in-netns.js COMMAND [ARGS...]');
  process.exit(2);
}

const outer = process.env.PIPEWORK_OUTER_NS;
if (outer === undefined) {
  const root = process.getuid?.() === 0;
  const unshare = ['--net', '--mount', '--propagation', 'private', ...(root ? [] : ['--user', '--map-root-user'])];
  const r = spawnSync('unshare', [...unshare, process.execPath, __filename, cmd, ...args], {
    stdio: 'inherit',
    env: { ...process.env, PIPEWORK_OUTER_NS: nsIds() },
  });
  if (r.error) {
    console.error(`cannot create throwaway namespaces: ${r.error.message}`);
    process.exit(1);
  }
  process.exit(r.status ?? 1);
}

// Inside: refuse to go on unless both namespaces really are new ones.
const [outerNet, outerMnt] = outer.split(':');
const [net, mnt] = nsIds().split(':');
if (net === outerNet || mnt === outerMnt) {
  console.error('in-netns.js: not inside private namespaces; refusing to run');
  process.exit(1);
}
/** @type {Array<[string, string[]]>} */
const setup = [
  ['ip', ['link', 'set', 'lo', 'up']],
  ['mount', ['-t', 'tmpfs', 'pipework-run', '/run']],
  ['mkdir', ['-p', '/run/netns']],
];
for (const [c, a] of setup) {
  const r = spawnSync(c, a, { stdio: 'inherit' });
  // Without iproute2 (a host with only Node: `npm run demo` needs no more) the loopback stays down.
  if (c === 'ip' && /** @type {NodeJS.ErrnoException | undefined} */ (r.error)?.code === 'ENOENT') continue;
  if (r.status !== 0) {
    console.error(`in-netns.js: ${c} ${a.join(' ')} failed`);
    process.exit(1);
  }
}
const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, PIPEWORK_IN_NETNS: '1' } });
if (r.error) console.error(`${cmd}: ${r.error.message}`);
process.exit(r.status ?? 1);
