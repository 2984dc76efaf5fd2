#!/usr/bin/env node
// What a container runtime does with the network configuration beside this
// file (10-pipework.conflist): for one new container netns, it runs the
// plugin named by "type" with ADD, CHECK and DEL, the CNI_* environment, and
// the plugin's configuration (plus the list's name and cniVersion) on stdin.
// Here "pipework" is this package's pipework-cni. It makes a bridge and
// writes host-local's leases under /run: run it in throwaway namespaces,
//   node scripts/in-netns.js node examples/cni/run.js
// or install it for your runtime: ln -s "$(command -v pipework-cni)" /opt/cni/bin/pipework
'use strict';
const { spawnSync } = require('node:child_process');
const { closeSync, readFileSync } = require('node:fs');
const path = require('node:path');
const { createNetns } = require('pipework');

const pkgDir = path.dirname(require.resolve('pipework/package.json'));
const plugin = path.join(pkgDir, require('pipework/package.json').bin['pipework-cni']);
const list = JSON.parse(readFileSync(path.join(__dirname, '10-pipework.conflist'), 'utf8'));

const netns = createNetns();
const env = {
  ...process.env,
  CNI_CONTAINERID: 'example-container-1',
  CNI_NETNS: `/proc/${process.pid}/fd/${netns}`,
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
};

/** One plugin call: the result JSON, or an error naming the CNI error. */
function call(command, prevResult) {
  const config = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0], ...(prevResult ? { prevResult } : {}) };
  const r = spawnSync(plugin, [], { env: { ...env, CNI_COMMAND: command }, input: JSON.stringify(config), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command}: exit ${r.status}: ${r.stdout || r.stderr}`);
  return r.stdout ? JSON.parse(r.stdout) : undefined;
}

const result = call('ADD');
console.log(`ADD: ${result.interfaces.map((i) => i.name).join(', ')}; ips ${result.ips.map((i) => `${i.address} via ${i.gateway}`).join(', ')}`);
call('CHECK', result);
console.log('CHECK: ok');
call('DEL', result);
console.log('DEL: ok');
closeSync(netns);
