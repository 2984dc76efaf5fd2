// The pipework command end to end: --dry-run, --json and --batch. Each test
// runs `node bin/pipework.js ...` in throwaway namespaces and reads the kernel
// state back (test/e2e/cli/harness.ts). Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cli-output.test.ts
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  HOST, cli, ip, ipj, link, names, addrInfo, snapshot, settled, ping, expectError, expectOk, setup, fakeNic, cleanUp,
} from './cli/harness';

/** The original's U:<text> MAC: 02 + the first 5 bytes of md5("<text>\n"). */
const uMac = (text: string) => ['02', ...createHash('md5').update(`${text}\n`).digest().subarray(0, 5).toString('hex').match(/../g)!].join(':');

afterEach(cleanUp);

describe('--dry-run and --json', () => {
  it('--dry-run prints the equivalent commands and changes nothing', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    const r = await cli(['--dry-run', 'br0', c1, '10.80.0.2/24@10.99.0.1', 'U:myhost.foo.com']);
    expectOk(r);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual(expect.arrayContaining([
      'ip link add name br0 up type bridge && ip link set dev br0 alias pipework:bridge',
      `ip link add veth1pl${c1} master br0 up type veth peer name eth1 address 02:72:6c:cd:9b:8d netns /run/netns/${c1}`
        + ` && ip link set dev veth1pl${c1} addrgenmode none`,
      `nsenter --net=/run/netns/${c1} ip -4 addr add 10.80.0.2/24 brd 10.80.0.255 dev eth1`,
      `nsenter --net=/run/netns/${c1} ip link set dev eth1 up`,
      `nsenter --net=/run/netns/${c1} ip -4 route add 10.99.0.1/32 dev eth1`,
      `nsenter --net=/run/netns/${c1} ip -4 route replace default via 10.99.0.1 dev eth1`,
    ]));
    expect(lines.indexOf(`nsenter --net=/run/netns/${c1} ip -4 route add 10.99.0.1/32 dev eth1`))
      .toBeLessThan(lines.indexOf(`nsenter --net=/run/netns/${c1} ip -4 route replace default via 10.99.0.1 dev eth1`));
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('--dry-run of macvlan, route, rule, tc, unplug: printed, nothing changed', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0', { mtu: 1400 });
    expectOk(await cli(['br0', '-i', 'eth2', c1, '10.81.0.2/24']));
    const before = await settled(HOST, c1);
    const mv = await cli(['--dry-run', '--macvlan-mode', 'vepa', 'nic0', c1, '10.81.1.2/24']);
    expectOk(mv);
    expect(mv.stdout).toContain(`ip link add link nic0 name eth1 mtu 1400 netns /run/netns/${c1} type macvlan mode vepa`);
    const rt = await cli(['--dry-run', 'route', c1, 'add', '10.82.0.0/16', 'dev', 'eth2']);
    expect(rt.stdout).toBe(`nsenter --net=/run/netns/${c1} ip route add 10.82.0.0/16 dev eth2\n`);
    const ru = await cli(['--dry-run', 'rule', c1, 'add', 'from', '10.81.0.0/24', 'table', '7']);
    expect(ru.stdout).toBe(`nsenter --net=/run/netns/${c1} ip rule add from 10.81.0.0/24 table 7\n`);
    const tc = await cli(['--dry-run', 'tc', c1, 'qdisc', 'add', 'dev', 'eth2', 'root', 'pfifo']);
    expect(tc.stdout).toBe(`nsenter --net=/run/netns/${c1} tc qdisc add dev eth2 root pfifo\n`);
    const un = await cli(['--dry-run', 'unplug', c1, '-i', 'eth2']);
    expect(un.stdout).toBe(`nsenter --net=/run/netns/${c1} ip link del dev eth2\n`);
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('--dry-run still refuses what the real run would (exit 1, nothing printed on stdout)', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'br0', 'type', 'bridge');
    expectError(await cli(['--dry-run', 'br0', c1, '10.80.0.2/24', '@5']), 'VLAN configuration currently unsupported for Linux bridge.');
  });

  it('--json: one JSON object with the interface names, MAC, MTU, netns, addresses and gateway, matching the kernel', async () => {
    const [c1] = setup(1);
    const r = await cli(['--json', 'br0', '-i', 'eth2', c1, '10.83.0.2/24@10.83.0.1', 'U:myhost.foo.com']);
    expectOk(r);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(r.stdout);
    const eth2 = link(c1, 'eth2')!;
    expect(j).toEqual({
      guest: c1,
      netns: `/run/netns/${c1}`,
      containerInterface: { name: 'eth2', index: eth2.ifindex, mac: '02:72:6c:cd:9b:8d', mtu: eth2.mtu },
      hostInterface: `veth2pl${c1}`,
      addresses: ['10.83.0.2/24'],
      gateway: '10.83.0.1',
    });
    expect(eth2.address).toBe(j.containerInterface.mac);
    expect(link(HOST, j.hostInterface)).toBeDefined();
  });

  it('--json with a macvlan: no host interface, the kernel-chosen MAC', async () => {
    const [c1] = setup(1);
    await fakeNic('nic0');
    const r = await cli(['--json', 'nic0', c1, '0/0']);
    expectOk(r);
    const j = JSON.parse(r.stdout);
    expect(j.hostInterface).toBeUndefined();
    expect(j.addresses).toEqual([]);
    expect(j.containerInterface.mac).toBe(link(c1, 'eth1')!.address);
  });
});

describe('--batch', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'pw-cli-batch-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a file with comments, quoted arguments and one bad line: the good lines done, "line N: <message>", exit 1', async () => {
    const [c1, c2] = setup(2);
    const file = join(dir, 'attach.txt');
    writeFileSync(file, [
      '# containers for the test',
      `br0 -i eth5 ${c1} 10.90.0.5/24`,
      `br0 -i eth6 ${c1} "10.90.0.6/24" 'U:my host'   # trailing comment`,
      `br0 -i eth7 ${c1} 10.90.0.7`,
      '',
      '   # indented comment',
      `br0 -i eth8 ${c2} 10.90.0.8/24`,
    ].join('\n') + '\n');
    const r = await cli(['--batch', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const err = r.stderr.split('\n');
    expect(err[0]).toBe('line 4: The IP address should include a netmask.');
    expect(err[1]).toBe('Maybe you meant 10.90.0.7/24 ?');
    expect(r.stderr).toMatch(/^3 done, 1 failed, in [\d.]+ s$/m);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(addrInfo(c1, 'eth5')).toEqual([expect.objectContaining({ local: '10.90.0.5' })]);
    expect(addrInfo(c1, 'eth6')).toEqual([expect.objectContaining({ local: '10.90.0.6' })]);
    expect(link(c1, 'eth6')!.address).toBe(uMac('my host'));
    expect(link(c1, 'eth7')).toBeUndefined();
    expect(addrInfo(c2, 'eth8')).toEqual([expect.objectContaining({ local: '10.90.0.8' })]);
    expect(ping(c1, '10.90.0.8')).toBe(true);

    // and undone by the same kind of file
    const un = join(dir, 'unplug.txt');
    writeFileSync(un, `${c1} -i eth5\n${c1} -i eth6\n# c1 eth7 never made\n${c1} -i eth7\n${c2} -i eth8\n`);
    const u = await cli(['unplug', '--batch', un]);
    expect(u.code).toBe(0);
    expect(u.stderr).toMatch(/^4 done, 0 failed/m);
    expect(names(c1)).toEqual(['lo']);
    expect(names(c2)).toEqual(['lo']);
    expect(ipj<any[]>(HOST, 'link', 'show', 'master', 'br0')).toEqual([]);
  });

  it('U:<text> in a batch gives the same MAC as on the command line', async () => {
    const [c1] = setup(1);
    const file = join(dir, 'mac.txt');
    writeFileSync(file, `br0 ${c1} 0/0 'U:myhost.foo.com'\n`);
    const r = await cli(['--batch', file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^1 done, 0 failed, in [\d.]+ s\n$/);
    expect(link(c1, 'eth1')!.address).toBe('02:72:6c:cd:9b:8d');
  });

  it('from stdin (-), with --json: one object per line', async () => {
    const [c1, c2] = setup(2);
    const r = await cli(['--json', '--batch', '-'], { input: `br0 ${c1} 10.91.0.2/24\nbr0 ${c2} 10.91.0.3/24\n` });
    expect(r.code).toBe(0);
    const objs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(objs.map((o) => o.guest).sort()).toEqual([c1, c2]);
    expect(ping(c1, '10.91.0.3')).toBe(true);
  });

  it('--no-ipv6 for one call, for a whole batch and on one batch line: no IPv6 address on those container ends', async () => {
    const [c1, c2, c3, c4] = setup(4);
    expectOk(await cli(['--no-ipv6', 'br0', c1, '10.93.0.2/24']));
    const line = await cli(['--batch', '-'], { input: `--no-ipv6 br0 ${c2} 10.93.0.3/24\nbr0 ${c3} 10.93.0.4/24\n` });
    expect(line.code).toBe(0);
    const all = await cli(['--no-ipv6', '--batch', '-'], { input: `br0 ${c4} 10.93.0.5/24\n` });
    expect(all.code).toBe(0);
    // c3 asked for nothing: its link-local address comes once the kernel saw carrier
    const linkLocal = (ns: string) => addrInfo(ns, 'eth1', '-6').filter((a) => a.scope === 'link');
    for (let t = 0; t < 100 && !linkLocal(c3).length; t++) await new Promise((r) => setTimeout(r, 50));
    expect(linkLocal(c3)).toHaveLength(1);
    expect(link(c3, 'eth1')!.inet6_addr_gen_mode).toBe('eui64');
    for (const c of [c1, c2, c4]) {
      expect(link(c, 'eth1')!.inet6_addr_gen_mode).toBe('none');
      expect(addrInfo(c, 'eth1', '-6')).toEqual([]);
      expect(addrInfo(c, 'eth1')).toEqual([expect.objectContaining({ prefixlen: 24 })]);
    }
    // and the bridge ports, by default, none either
    for (const port of ipj<any[]>(HOST, 'link', 'show', 'master', 'br0')) expect(addrInfo(HOST, port.ifname, '-6')).toEqual([]);
    const v6 = await cli(['--no-ipv6', 'br0', '-i', 'eth2', c1, '2001:db8::2/64']);
    expect(v6.code).toBe(1);
    expect(v6.stderr).toMatch(/needs IPv6 on the container interface/);
  });

  it('a file that cannot be read: exit 1, says so', async () => {
    setup(0);
    const r = await cli(['--batch', join(dir, 'missing.txt')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot read .*missing\.txt/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('an unterminated quote is that line\'s error only', async () => {
    const [c1] = setup(1);
    const file = join(dir, 'quote.txt');
    writeFileSync(file, `br0 ${c1} 'U:oops 10.92.0.2/24\nbr0 -i eth2 ${c1} 10.92.0.3/24\n`);
    const r = await cli(['--batch', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^line 1: unterminated single quote$/m);
    expect(addrInfo(c1, 'eth2')).toEqual([expect.objectContaining({ local: '10.92.0.3' })]);
  });
});
