// The pipework command end to end inside the guest: unplug, route, rule and tc,
// --wait. Each test runs `node bin/pipework.js ...` in throwaway namespaces and
// reads the kernel state back (test/e2e/cli/harness.ts). Only inside
// scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cli-guest.test.ts
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { USAGE } from '../../src/cli/args';
import {
  BIN, HOST, cli, inNs, ip, ipj, link, routes, snapshot, settled, hasQdisc, expectError, expectOk, children, setup, exited, cleanUp,
} from './cli/harness';

const HAS_NETEM = hasQdisc('netem', 'delay', '10ms');

afterEach(cleanUp);

describe('unplug', () => {
  it('removes the veth (both ends); a second unplug, or one for an interface never made, exits 0', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.50.0.2/24']));
    expectOk(await cli(['br0', '-i', 'eth2', c1, '10.50.1.2/24']));
    expectOk(await cli(['unplug', c1]));
    expect(link(c1, 'eth1')).toBeUndefined();
    expect(link(HOST, `veth1pl${c1}`)).toBeUndefined();
    expect(link(c1, 'eth2')).toBeDefined(); // only the one named
    expectOk(await cli(['unplug', c1]));
    expectOk(await cli(['unplug', c1, '-i', 'eth2']));
    expect(link(HOST, `veth2pl${c1}`)).toBeUndefined();
    expectOk(await cli(['unplug', c1, '-i', 'eth7']));
    expect(link(HOST, 'br0')).toBeDefined(); // the bridge stays
  });

  it('--json reports what happened', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '0/0']));
    const r1 = await cli(['--json', 'unplug', c1]);
    expectOk(r1);
    expect(JSON.parse(r1.stdout)).toEqual({ guest: c1, containerInterface: 'eth1', action: 'deleted', kind: 'veth' });
    const r2 = await cli(['--json', 'unplug', c1]);
    expect(JSON.parse(r2.stdout)).toEqual({ guest: c1, containerInterface: 'eth1', action: 'absent' });
  });

  it('of a guest that does not exist: exit 1, named', async () => {
    setup(0);
    expectError(await cli(['unplug', '/run/netns/pwnothere']), 'Container /run/netns/pwnothere not found.');
  });
});

describe('route, rule and tc inside the guest', () => {
  it('route add/replace/del, with via, metric, table, src, read back', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.60.0.2/24']));
    expectOk(await cli(['route', c1, 'add', '10.61.0.0/16', 'via', '10.60.0.1', 'metric', '5']));
    expect(routes(c1, '-4', '10.61.0.0/16')).toEqual([expect.objectContaining({ dst: '10.61.0.0/16', gateway: '10.60.0.1', dev: 'eth1', metric: 5 })]);
    expectOk(await cli(['route', c1, 'add', 'default', 'via', '10.60.0.1', 'table', '100']));
    expect(routes(c1, '-4', 'table', '100')).toEqual([expect.objectContaining({ dst: 'default', gateway: '10.60.0.1', dev: 'eth1' })]);
    expectOk(await cli(['route', c1, 'replace', '10.62.0.0/16', 'dev', 'eth1', 'src', '10.60.0.2', 'scope', 'link']));
    expect(routes(c1, '-4', '10.62.0.0/16')).toEqual([expect.objectContaining({ dev: 'eth1', prefsrc: '10.60.0.2', scope: 'link' })]);
    expectOk(await cli(['route', c1, 'del', '10.61.0.0/16', 'via', '10.60.0.1', 'metric', '5']));
    expect(routes(c1, '-4', '10.61.0.0/16')).toEqual([]);
    expectOk(await cli(['route', c1, 'del', 'default', 'table', '100']));
    expect(routes(c1, '-4', 'table', '100')).toEqual([]);
  });

  it('route: a bad word, a missing device, an existing route: clear errors, nothing changed', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.60.0.2/24']));
    expectOk(await cli(['route', c1, 'add', '10.61.0.0/16', 'via', '10.60.0.1']));
    const [before] = await settled(c1);
    expectError(await cli(['route', c1, 'add', '10.63.0.0/16', 'bogus', '1']), 'route: unsupported word "bogus".');
    expectError(await cli(['route', c1, 'frobnicate', '10.63.0.0/16']), 'route: unsupported command "frobnicate" (add, del, replace, change or append).');
    expectError(await cli(['route', c1, 'add', '10.63.0.0/16', 'dev', 'eth9']), 'Cannot find device "eth9"');
    expectError(await cli(['route', c1, 'add', '10.61.0.0/16', 'via', '10.60.0.1']), /exists/i);
    expect(snapshot(c1)).toEqual(before);
  });

  it('rule add/del with from, to, fwmark, table, pref, read back; a bad word names it', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['rule', c1, 'add', 'from', '10.64.0.0/24', 'table', '100', 'pref', '1000']));
    expectOk(await cli(['rule', c1, 'add', 'to', '10.65.0.0/16', 'fwmark', '0x10/0xff', 'lookup', '101', 'priority', '1001']));
    const rules = ipj<any[]>(c1, 'rule', 'show');
    expect(rules).toEqual(expect.arrayContaining([
      expect.objectContaining({ priority: 1000, src: '10.64.0.0', srclen: 24, table: '100' }),
      expect.objectContaining({ priority: 1001, dst: '10.65.0.0', dstlen: 16, fwmark: '0x10', fwmask: '0xff', table: '101' }),
    ]));
    const [before] = await settled(c1);
    expectError(await cli(['rule', c1, 'add', 'frm', '10.64.0.0/24']), 'rule: unsupported word "frm".');
    expectError(await cli(['rule', c1, 'flush']), 'rule: unsupported command "flush" (add or del).');
    expect(snapshot(c1)).toEqual(before);
    expectOk(await cli(['rule', c1, 'del', 'from', '10.64.0.0/24', 'table', '100', 'pref', '1000']));
    expect(ipj<any[]>(c1, 'rule', 'show').find((r) => r.priority === 1000)).toBeUndefined();
  });

  it(`tc: ${HAS_NETEM ? 'netem delay 10ms' : 'tbf (this kernel has no netem)'} on eth1, read back with tc -j; tc's own error when it refuses`, async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.66.0.2/24']));
    const qdisc = HAS_NETEM ? ['netem', 'delay', '10ms'] : ['tbf', 'rate', '1mbit', 'burst', '32kbit', 'latency', '400ms'];
    const r = await cli(['tc', c1, 'qdisc', 'add', 'dev', 'eth1', 'root', ...qdisc]);
    expectOk(r);
    const shown = JSON.parse(inNs(c1, 'tc', '-j', 'qdisc', 'show', 'dev', 'eth1'));
    expect(shown).toEqual([expect.objectContaining({ kind: qdisc[0], root: true })]);
    const out = await cli(['tc', c1, 'qdisc', 'show', 'dev', 'eth1']);
    expectOk(out);
    expect(out.stdout).toContain(`qdisc ${qdisc[0]}`);
    const [before] = await settled(c1);
    const bad = await cli(['tc', c1, 'qdisc', 'add', 'dev', 'eth9', 'root', 'pfifo']);
    expectError(bad, /^tc qdisc add dev eth9 root pfifo failed \(exit \d+\): .+/);
    expect(snapshot(c1)).toEqual(before);
  });

  it('route/rule/tc with too few arguments: the usage block', async () => {
    setup(1);
    for (const w of ['route', 'rule', 'tc']) {
      const r = await cli([w, 'pwc1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`${USAGE}\n`);
    }
  });
});

describe('--wait (inside the container)', () => {
  it('blocks until eth1 exists, is up and has carrier, then exits 0', async () => {
    const [c1] = setup(1);
    const w = spawn('ip', ['netns', 'exec', c1, process.execPath, BIN, '--wait', '-i', 'eth1', '--timeout', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(w);
    let err = '';
    w.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    await new Promise((r) => setTimeout(r, 400));
    expect(w.exitCode).toBeNull(); // still waiting
    const t0 = performance.now();
    expectOk(await cli(['br0', c1, '10.70.0.2/24']));
    expect(await exited(w)).toBe(0);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(err).toBe('');
  });

  it('an interface that exists but is down is not ready (upstream 243): exits only once it is up', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '0/0']));
    ip(c1, 'link', 'set', 'eth1', 'down');
    const w = spawn('ip', ['netns', 'exec', c1, process.execPath, BIN, '--wait', '--timeout', '5'], { stdio: 'ignore' });
    children.push(w);
    await new Promise((r) => setTimeout(r, 400));
    expect(w.exitCode).toBeNull();
    ip(c1, 'link', 'set', 'eth1', 'up');
    expect(await exited(w)).toBe(0);
  });

  it('--timeout: exit 1 with a message when nothing comes', async () => {
    const [c1] = setup(1);
    const t0 = performance.now();
    const r = await cli(['--wait', '-i', 'eth1', '--timeout', '0.3'], { host: c1 });
    const ms = performance.now() - t0;
    expectError(r, 'eth1 did not come up with carrier within 0.3 s');
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(ms).toBeLessThan(3000);
  });

  it('an already ready interface: exits 0 at once', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', '-i', 'eth3', c1, '0/0']));
    const r = await cli(['--wait', '-i', 'eth3', '--timeout', '2'], { host: c1 });
    expectOk(r);
  });
});
