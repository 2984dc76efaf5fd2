// The pipework command end to end: usage, help, options, and the original's
// error texts (exit 1, stderr, state unchanged). Each test runs `node
// bin/pipework.js ...` in throwaway namespaces and reads the kernel state back
// (test/e2e/cli/harness.ts). Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cli-usage.test.ts
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OVS_DB_SOCK } from '../support/daemons/ovs';
import { USAGE } from '../../src/cli/args';
import {
  HOST, cli, sh, snapshot, settled, hasBin, expectError, cleanups, setup, cleanUp,
} from './cli/harness';

afterEach(cleanUp);

describe('usage, help and options', () => {
  it('no arguments: the Syntax: block on stderr, exit 1', async () => {
    const r = await cli([], { host: '/proc/self/ns/net' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`${USAGE}\n`);
    expect(r.stderr.split('\n')[0]).toBe('Syntax:');
    for (const form of ['pipework route <guest>', 'pipework rule <guest>', 'pipework tc <guest>', 'pipework --wait', 'pipework mac:']) {
      expect(r.stderr).toContain(form);
    }
  });

  it('too few arguments (host interface and guest only): the usage block, exit 1', async () => {
    const r = await cli(['br0', 'pwc1'], { host: '/proc/self/ns/net' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${USAGE}\n`);
  });

  it('--help and -h: the usage block and our options on stdout, exit 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await cli([flag], { host: '/proc/self/ns/net' });
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout.startsWith('Syntax:\n')).toBe(true);
      for (const o of ['--dry-run', '--json', '--batch', '--direct-phys', '--macvlan-mode', '--timeout', '--no-ipv6', '--concurrency', 'unplug']) expect(r.stdout).toContain(o);
    }
  });

  it('--version prints the package version', async () => {
    const r = await cli(['--version'], { host: '/proc/self/ns/net' });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')).version);
  });

  it('an unknown option: named, exit 1', async () => {
    expectError(await cli(['--bogus', 'br0', 'pwc1', '10.0.0.2/24'], { host: '/proc/self/ns/net' }), 'Unknown option: --bogus (see pipework --help)');
    expectError(await cli(['-x', 'br0', 'pwc1', '10.0.0.2/24'], { host: '/proc/self/ns/net' }), 'Unknown option: -x (see pipework --help)');
  });

  it('-i/-l/-a out of the original order: says which order, exit 1', async () => {
    setup(1);
    const [before] = await settled(HOST);
    const r = await cli(['br0', '-l', 'vloc', '-i', 'eth2', 'pwc1', '0/0']);
    expectError(r, /^Options after the host interface go in this order: -i, -l, -a/);
    const r2 = await cli(['-a', '6', 'br0', 'pwc1', '2001:db8::2/64']);
    expectError(r2, /^Options after the host interface go in this order: -i, -l, -a|^Unknown option/);
    expect(snapshot(HOST)).toEqual(before);
  });

  it('an invalid --timeout is refused', async () => {
    expectError(await cli(['--wait', '--timeout', 'soon'], { host: '/proc/self/ns/net' }), 'Invalid --timeout: soon (seconds)');
  });
});

describe('error texts of the original (exit 1, stderr, state unchanged)', () => {
  it('IP without a netmask: both lines', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['br0', c1, '10.40.0.2']), 'The IP address should include a netmask.\nMaybe you meant 10.40.0.2/24 ?');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('an invalid address, an invalid prefix length: named', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['br0', c1, '10.40.0.300/24']), 'Invalid IP address: 10.40.0.300');
    expectError(await cli(['br0', c1, '10.40.0.2/33']), 'Invalid prefix length /33 for 10.40.0.2 (0-32)');
    expectError(await cli(['br0', c1, '10.40.0.2/24@10.40.0.x']), 'Invalid gateway: 10.40.0.x');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('an unknown host interface: "I do not know how to setup interface <name>."', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['foo0', c1, '10.40.0.2/24']), 'I do not know how to setup interface foo0.');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it.skipIf(existsSync(OVS_DB_SOCK))('ovs* without Open vSwitch running: "Need OVS installed on the system to create an ovs bridge"', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['ovsbr9', c1, '10.40.0.2/24']), 'Need OVS installed on the system to create an ovs bridge');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('a container that is nowhere (no Docker daemon here): "Container <name> not found, ..."', async () => {
    setup(0);
    const [before] = await settled(HOST);
    const r = await cli(['br0', 'nosuchguest', '10.40.0.2/24'], { env: { DOCKER_HOST: 'unix:///run/pw-no-docker.sock' } });
    expectError(r, hasBin('docker') || hasBin('dockerd')
      ? 'Container nosuchguest not found, and Docker is not running (no socket at /run/pw-no-docker.sock).'
      : 'Container nosuchguest not found, and Docker not installed.');
    expect(snapshot(HOST)).toEqual(before);
  });

  it.skipIf(!hasBin('python3'))('a Docker socket with no daemon behind it: one line naming the socket', async () => {
    setup(0);
    const sock = '/run/pw-stale-docker.sock';
    sh('python3', '-c', `import socket; socket.socket(socket.AF_UNIX).bind('${sock}')`);
    cleanups.push(() => rmSync(sock, { force: true }));
    const r = await cli(['br0', 'nosuchguest', '10.40.0.2/24'], { env: { DOCKER_HOST: `unix://${sock}` } });
    expectError(r, `Cannot reach Docker at ${sock}: connect ECONNREFUSED ${sock}`);
  });

  it("'dhcp' on a guest that is not a Docker container: the original's 4 lines", async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['br0', c1, 'dhcp']), [
      'You asked for a Docker-specific DHCP method.',
      `However, ${c1} doesn't seem to be a Docker container.`,
      "Try to replace 'dhcp' with another option?",
      'Aborting.',
    ].join('\n'));
    expectError(await cli(['br0', c1, 'dhcp:-t 1']), /^You asked for a Docker-specific DHCP method\.\n/);
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('an invalid netns name or path: named', async () => {
    setup(0);
    expectError(await cli(['br0', '/nonexistent/netns', '10.40.0.2/24']), 'Container /nonexistent/netns not found.');
    expectError(await cli(['br0', '/etc/hostname', '10.40.0.2/24']), '/etc/hostname is not a network namespace.');
  });
});
