// `pipework gc` on the Docker plugin's endpoints, against a real dockerd:
// containers removed while the plugin was down (Docker's Leave and
// DeleteEndpoint failed, and Docker gave the container ends back to the host
// netns) leave their links and records; gc finds exactly those, --dry-run
// changes nothing, and gc removes their links and records and nothing else
// (the host's link/address/route/rule dumps and the state file compared with
// those before the dead containers ran). Once with the plugin down (gc works
// on the state file under its lock), once with it running (gc asks it over
// its socket). An endpoint Docker still lists is kept even when its sandbox
// looks gone (a container being started). Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/docker-gc.test.ts
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settle, snapshot, withoutKernelNoise } from '../helpers/kernel';
import { type Dockerd, startDockerd } from '../support/daemons/dockerd';
import { BIN, PipeworkProcess, linkNamed, sh, startPluginProcess, stopDockerAndPlugin } from './docker/helpers';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/docker-gc.test.ts starts dockerd and changes links: only inside scripts/in-netns.js');
}

// A driver name of its own (Docker finds plugins by socket name), so as not to meet docker-plugin.test.ts's.
const DRIVER = 'pwgc';
const SOCKET = `/run/docker/plugins/${DRIVER}.sock`;
const dir = mkdtempSync(join(tmpdir(), 'pw-dgc-'));
const STATE = join(dir, 'state.json');
let d: Dockerd | undefined;
let plugin: PipeworkProcess | undefined;
let starts = 0;

// With DOCKER_HOST: the plugin asks this dockerd which endpoints it still has.
const startPlugin = () => startPluginProcess(SOCKET, STATE, join(dir, `plugin-${++starts}.log`), d!.env);

/** `pipework gc ARGS --docker-state STATE` in this netns (the plugin's host), with this dockerd. */
function gc(...args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = sh('env', `DOCKER_HOST=${d!.host}`, process.execPath, BIN, 'gc', ...args, '--docker-state', STATE);
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { code: err.status, stdout: err.stdout, stderr: err.stderr };
  }
}
const lines = (s: string) => s.split('\n').filter(Boolean);

const state = () => JSON.parse(readFileSync(STATE, 'utf8'));

/** The host's dumps and the plugin's state file, once the kernel has finished. */
async function observed() {
  const fd = openSync('/proc/self/ns/net', 'r');
  try {
    return { host: await settle(() => withoutKernelNoise(snapshot(fd)), 'the host netns'), state: state() };
  } finally {
    closeSync(fd);
  }
}

const inspect = async (name: string, format: string) => (await d!.docker(['inspect', '-f', format, name])).trim();
const endpointOf = (name: string, net: string) => inspect(name, `{{(index .NetworkSettings.Networks "${net}").EndpointID}}`);

beforeAll(async () => {
  d = await startDockerd();
  // What earlier test files may have left in this netns is not this file's to judge.
  gc();
  sh('ip', 'link', 'add', 'gcphys0', 'type', 'veth', 'peer', 'name', 'gcphys1');
  sh('ip', 'link', 'set', 'gcphys0', 'up');
  plugin = await startPlugin();
  await d.docker(['network', 'create', '-d', DRIVER, '-o', 'parent=brgc', '--subnet', '10.87.0.0/24', 'gcbr']);
  await d.docker(['network', 'create', '-d', DRIVER, '-o', 'parent=gcphys0', '-o', 'mode=macvlan', '--subnet', '10.88.0.0/24', 'gcmv']);
  await d.docker(['run', '-d', '--name', 'alive', '--network', 'gcbr', 'busybox', 'sleep', '1000']);
  await d.docker(['network', 'connect', 'gcmv', 'alive']);
}, 180_000);

afterAll(() => stopDockerAndPlugin(d, plugin, ['brgc', 'gcphys0'], dir), 120_000);

/**
 * Runs a container on net, then removes it while the plugin is down: Docker's Leave and DeleteEndpoint
 * fail (after its ~30 s of retries each) and it gives the container end back to the host netns.
 * Returns the line gc must print for it and the state before the container ran.
 */
async function removedWhilePluginDown(name: string, net: string): Promise<{ want: Awaited<ReturnType<typeof observed>>; line: string }> {
  const want = await observed();
  await d!.docker(['run', '-d', '--name', name, '--network', net, 'busybox', 'sleep', '1000']);
  const ep = await endpointOf(name, net);
  const sandbox = await inspect(name, '{{.NetworkSettings.SandboxKey}}');
  const netId = await inspect(net, '{{.Id}}');
  expect(state().endpoints[ep]).toMatchObject({ networkId: netId, sandboxKey: sandbox });
  await plugin!.stop('SIGKILL');
  await d!.docker(['rm', '-f', name]);
  const src = `pwtmp${ep.slice(0, 10)}`;
  expect(linkNamed(src)).toBeDefined(); // given back by Docker, under the name Join gave it
  expect(state().endpoints[ep]).toBeDefined();
  return { want, line: `ip link del dev ${src}  # Docker endpoint ${ep.slice(0, 12)} on network ${netId.slice(0, 12)}: sandbox ${sandbox} gone; the plugin forgets it` };
}

/** gc --dry-run lists exactly `expected` and changes nothing; gc removes exactly that, leaving `want`; again: nothing. */
async function gcFinds(expected: string[], want: unknown): Promise<void> {
  const before = await observed();
  const dry = gc('--dry-run');
  expect(dry.code, dry.stderr).toBe(0);
  expect(lines(dry.stdout)).toEqual(expected);
  expect(await observed()).toEqual(before);
  const done = gc();
  expect(done.code, done.stderr).toBe(0);
  expect(lines(done.stdout)).toEqual(expected);
  expect(await observed()).toEqual(want);
  expect(gc()).toEqual({ code: 0, stdout: '', stderr: '' });
}

describe('pipework gc: Docker plugin endpoints', () => {
  it('with the plugin down: gc takes the state file lock and removes the endpoint of a container that went meanwhile', async () => {
    const { want, line } = await removedWhilePluginDown('deadb', 'gcbr');
    await gcFinds([line], want);
    // The plugin picks up the state gc left, and serves on.
    plugin = await startPlugin();
    await d!.docker(['run', '-d', '--name', 'later', '--network', 'gcbr', 'busybox', 'sleep', '1000']);
    await d!.docker(['rm', '-f', 'later']);
    expect(await observed()).toEqual(want);
  }, 300_000);

  it('with the plugin running: gc asks it over its socket (macvlan endpoint)', async () => {
    const { want, line } = await removedWhilePluginDown('deadm', 'gcmv');
    const running = await startPlugin();
    plugin = running;
    await gcFinds([line], want);
    expect(running.output()).toMatch(/Pipework\.Gc : ok/);
    running.check();
  }, 300_000);

  it('keeps an endpoint Docker still lists, even when its sandbox looks gone (a container being started)', async () => {
    const ep = await endpointOf('alive', 'gcbr');
    await plugin!.stop('SIGTERM');
    const saved = readFileSync(STATE, 'utf8');
    const doc = JSON.parse(saved);
    doc.endpoints[ep].sandboxKey = join(dir, 'not-yet-a-netns');
    writeFileSync(STATE, JSON.stringify(doc));
    try {
      expect(gc('--dry-run')).toEqual({ code: 0, stdout: '', stderr: '' });
      // With no Docker to ask, the same endpoint is a leftover.
      const blind = sh('env', 'DOCKER_HOST=unix:///nonexistent.sock', process.execPath, BIN, 'gc', '--dry-run', '--docker-state', STATE);
      expect(lines(blind)).toEqual([expect.stringMatching(new RegExp(`^ip link del dev vpw${ep.slice(0, 12)}  # Docker endpoint ${ep.slice(0, 12)} on network `))]);
      plugin = await startPlugin();
      expect(gc('--dry-run')).toEqual({ code: 0, stdout: '', stderr: '' });
    } finally {
      await plugin!.stop('SIGTERM');
      writeFileSync(STATE, saved);
      plugin = await startPlugin();
    }
  }, 120_000);

  it('one writer per state file: a second plugin on it is refused while the first runs', async () => {
    const second = new PipeworkProcess(['docker-plugin', '--socket', '/run/docker/plugins/pwgc2.sock', '--state', STATE], join(dir, 'second.log'));
    await second.wait();
    expect(second.exit).toEqual({ code: 1, signal: null });
    expect(second.output()).toContain(`the state file ${STATE} is in use by another process (a plugin serving ${SOCKET})`);
    plugin!.check();
  }, 60_000);
});
