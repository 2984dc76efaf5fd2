// Each program in examples/ runs as its header says (here already inside the
// throwaway namespaces of scripts/in-netns.js), and leaves what it says.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, it } from 'vitest';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/package/examples.test.ts makes bridges: only inside scripts/in-netns.js');
}

const EXAMPLES = resolve(__dirname, '../../examples');
const run = (file: string, ...args: string[]) => spawnSync(process.execPath, [resolve(EXAMPLES, file), ...args], { encoding: 'utf8' });
const linkExists = (name: string) => spawnSync('ip', ['link', 'show', name]).status === 0;

it('examples/ holds the programs tested here', () => {
  expect(readdirSync(EXAMPLES).sort()).toEqual(['README.md', 'bulk-attach.js', 'cni', 'docker-plugin.js']);
});

it('bulk-attach.js attaches and detaches N containers in a private host netns', () => {
  const r = run('bulk-attach.js', '40');
  expect(r.stderr).toBe(''); // the progress line only on a terminal
  expect(r.status).toBe(0);
  expect(r.stdout).toBe('40 attached, 0 failed; br-example has 40 ports\n40 detached\n');
  expect(linkExists('br-example')).toBe(false); // not in this netns: its host was a private one
}, 120_000);

it('cni/run.js: ADD, CHECK and DEL of pipework-cni with the example configuration', () => {
  const r = run('cni/run.js');
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^ADD: cni-example, veth\w+, eth0; ips 10\.61\.0\.\d+\/24 via 10\.61\.0\.1\nCHECK: ok\nDEL: ok\n$/);
  // The bridge stays (CNI bridges are never removed), without ports; host-local's lease is released.
  const ports = JSON.parse(spawnSync('ip', ['-j', 'link', 'show', 'master', 'cni-example'], { encoding: 'utf8' }).stdout);
  expect(ports).toEqual([]);
  const leases = readdirSync('/run/pipework-example/ipam/pwexample').filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
  expect(leases).toEqual([]);
  spawnSync('ip', ['link', 'del', 'cni-example']);
}, 120_000);

it('docker-plugin.js drives the plugin through a network and an endpoint', () => {
  const r = run('docker-plugin.js');
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines.map((l) => l.split(' ->')[0])).toEqual(['Plugin.Activate', 'NetworkDriver.GetCapabilities', 'NetworkDriver.CreateNetwork',
    'NetworkDriver.CreateEndpoint', 'NetworkDriver.Join', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.DeleteNetwork']);
  expect(lines[4]).toMatch(/"SrcName":"pwtmp\w+".*"Gateway":"10\.62\.0\.1"/);
  expect(linkExists('br-docker')).toBe(false); // the bridge the network made went with it
  expect(existsSync('/run/docker/plugins/pipework.sock')).toBe(false); // its own socket, not Docker's place
}, 120_000);
