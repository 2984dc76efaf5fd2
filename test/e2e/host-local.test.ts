// host-local IPAM inside our process (src/cni/host-local.ts) against the
// reference plugin (Debian's containernetworking-plugins, /usr/lib/cni/host-local)
// on one dataDir: the same addresses in the same order, state moving both
// ways, no address handed out twice (also when both allocate at once), DEL
// releasing for both. Ours runs as users get it: pipework-cni ADD/DEL into real
// namespaces, and the in-process allocator for the races.
// Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/host-local.test.ts
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/daemons/helpers';
import { SYSTEM_CNI, addrs, cni, ip, reservations, scratch, type CniRun } from './cni/harness';
import { hostLocalAdd, hostLocalDel, parseHostLocal } from '../../src/cni/host-local';
import { parseCniArgs } from '../../src/cni/config';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/host-local.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

const REFERENCE = `${SYSTEM_CNI}/host-local`;
const HOST = 'pwhlh';
const { addNs, dir: dataDir, cleanup } = scratch('host-local');
afterEach(cleanup);

const ipamConf = (dir: string, ipam: Record<string, unknown> = {}) => ({
  type: 'host-local', subnet: '10.77.0.0/28', routes: [{ dst: '0.0.0.0/0' }], dataDir: dir, ...ipam,
});
const netConf = (dir: string, ipam: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0', name: 'hlnet', type: 'pipework', mode: 'bridge', bridge: 'pwhl0', ipam: ipamConf(dir, ipam), ...extra,
});

/** The reference host-local, exec'd as a plugin would exec it (IPAM only). */
function reference(command: string, id: string, conf: object, ifname = 'eth0', cniArgs?: string): Promise<CniRun> {
  return cni(HOST, { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: '/run/netns/none', CNI_IFNAME: ifname, CNI_PATH: SYSTEM_CNI, CNI_ARGS: cniArgs },
    conf, { argv0: [REFERENCE] });
}

/** pipework-cni (host-local in its process) attaching a real container netns. */
function ours(command: 'ADD' | 'DEL', netns: string, id: string, conf: object, cniArgs?: string): Promise<CniRun> {
  return cni(HOST, { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', CNI_ARGS: cniArgs }, conf);
}

function ok(r: CniRun): any {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stdout} ${r.stderr}`);
  return r.json;
}

const addressOf = (r: CniRun) => ok(r).ips.map((x: { address: string }) => x.address);

/** Reservations of the network, address -> owner line ("id\r\nifname"), read straight from the files. */
function files(dir: string, network = 'hlnet'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(join(dir, network))) {
    if (f === 'lock' || f.startsWith('last_reserved_ip.')) continue;
    out[f] = readFileSync(join(dir, network, f), 'utf8');
  }
  return out;
}

describe('host-local in process, next to the reference host-local', () => {
  it('ours then the reference then ours on one dataDir: next addresses, files in the reference format, DEL releases for both', async () => {
    addNs(HOST);
    const [c1, c2] = [addNs('pwhl1'), addNs('pwhl2')];
    const d = dataDir();
    const conf = netConf(d);

    expect(addressOf(await ours('ADD', c1, 'ours-1', conf))).toEqual(['10.77.0.2/28']);
    expect(addrs(c1, 'eth0')).toEqual(['10.77.0.2/28']);
    expect(ok(await reference('ADD', 'ref-1', { ...conf, type: 'host-local' })).ips).toEqual([{ address: '10.77.0.3/28', gateway: '10.77.0.1' }]);
    expect(addressOf(await ours('ADD', c2, 'ours-2', conf))).toEqual(['10.77.0.4/28']);
    expect(files(d)).toEqual({ '10.77.0.2': 'ours-1\r\neth0', '10.77.0.3': 'ref-1\r\neth0', '10.77.0.4': 'ours-2\r\neth0' });
    expect(readFileSync(join(d, 'hlnet', 'last_reserved_ip.0'), 'utf8')).toBe('10.77.0.4');

    // The reference releases ours, ours releases the reference's.
    ok(await reference('DEL', 'ours-1', { ...conf, type: 'host-local' }));
    ok(await ours('DEL', c2, 'ref-1', conf));
    expect(files(d)).toEqual({ '10.77.0.4': 'ours-2\r\neth0' });
    ok(await ours('DEL', c2, 'ours-2', conf));
    expect(files(d)).toEqual({});
    expect(ip(c2, '-j', 'link', 'show').includes('"eth0"')).toBe(false);
    // Round robin goes on after the last reserved, whoever reserved it.
    expect(ok(await reference('ADD', 'ref-2', { ...conf, type: 'host-local' })).ips[0].address).toBe('10.77.0.5/28');
    expect(addressOf(await ours('ADD', c2, 'ours-3', conf))).toEqual(['10.77.0.6/28']);
  });

  it('gives the same answers and files as the reference for the same steps (IPv4 and IPv6, two range sets, ranges, gateway, requests, exhaustion)', async () => {
    addNs(HOST);
    const [a, b] = [dataDir(), dataDir()];
    const ipam = (dir: string) => ({
      type: 'host-local', dataDir: dir, resolvConf: join(dir, 'resolv.conf'),
      routes: [{ dst: '0.0.0.0/0' }, { dst: '2001:db8:9::/48', gw: '2001:db8:7::1' }],
      ranges: [
        [{ subnet: '10.78.0.0/29', rangeStart: '10.78.0.2', rangeEnd: '10.78.0.4', gateway: '10.78.0.3' }, { subnet: '10.78.1.0/30' }],
        [{ subnet: '2001:db8:7::/120', rangeStart: '2001:db8:7::fe' }],
      ],
    });
    for (const dir of [a, b]) writeFileSync(join(dir, 'resolv.conf'), 'nameserver 10.0.0.53\nsearch example.com corp\n# comment\noptions ndots:2\n');
    const steps: [string, string, string?][] = [
      ['ADD', 'c1'], ['ADD', 'c2'], ['ADD', 'c3', 'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.78.1.1'], ['ADD', 'c1'], ['DEL', 'c2'],
      ['ADD', 'c4'], ['ADD', 'c5'], ['ADD', 'c6'], ['ADD', 'c7', 'IP=10.78.0.9'], ['ADD', 'c8', 'IP=10.78.0.3'],
      ['DEL', 'c4'], ['ADD', 'c10'],
    ];
    for (const [command, id, args] of steps) {
      const conf = { cniVersion: '1.0.0', name: 'hlnet', type: 'pipework', ipam: ipam(b) };
      const theirs = await reference(command, id, { ...conf, ipam: ipam(b) }, 'eth0', args);
      let mine: { code: number; json: any };
      try {
        const parsed = parseHostLocal({ ...conf, ipam: ipam(a) }, parseCniArgs(args).ips);
        mine = { code: 0, json: command === 'ADD' ? await hostLocalAdd(parsed, '1.0.0', id, 'eth0') : await hostLocalDel(parsed, id, 'eth0') };
      } catch (e) {
        mine = { code: 1, json: { msg: (e as Error).message } };
      }
      const step = `${command} ${id} ${args ?? ''}`;
      expect(mine.code, `${step}: ${theirs.stdout}`).toBe(theirs.code);
      if (theirs.code === 0 && command === 'ADD') expect(mine.json, step).toEqual(theirs.json);
      if (theirs.code !== 0) expect(mine.json.msg, step).toBe(theirs.json.msg);
      expect(files(a), step).toEqual(files(b));
      for (const f of ['last_reserved_ip.0', 'last_reserved_ip.1'])
        expect(readFileSync(join(a, 'hlnet', f), 'utf8'), step).toBe(readFileSync(join(b, 'hlnet', f), 'utf8'));
    }
  });

  it('refuses the configurations the reference refuses, with its message', async () => {
    addNs(HOST);
    const d = dataDir();
    const bad: Record<string, unknown>[] = [
      { subnet: '10.79.0.1/24' }, { subnet: '10.79.0.0/31' }, { subnet: 'nonsense' }, {},
      { subnet: '10.79.0.0/24', rangeStart: '10.80.0.1' },
      { ranges: [[{ subnet: '10.79.0.0/24' }], [{ subnet: '10.79.0.0/25' }]] },
      { ranges: [[{ subnet: '10.79.0.0/24' }, { subnet: 'fd00::/64' }]] },
    ];
    for (const ipamExtra of bad) {
      const conf = { cniVersion: '1.0.0', name: 'hlnet', type: 'host-local', ipam: { type: 'host-local', dataDir: d, ...ipamExtra } };
      const theirs = await reference('ADD', 'c1', conf);
      expect(theirs.code, JSON.stringify(ipamExtra)).not.toBe(0);
      expect(() => parseHostLocal(conf, []), JSON.stringify(ipamExtra)).toThrow(theirs.json.msg);
    }
    // Through the plugin: the reference's message under the plugin's name, code 999, nothing made.
    const c1 = addNs('pwhl1');
    const r = await ours('ADD', c1, 'c1', netConf(d, { subnet: '10.79.0.1/24' }));
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 999, msg: 'host-local (ADD): invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.79.0.0' });
    expect(ip(c1, '-j', 'link', 'show').includes('"eth0"')).toBe(false);
  });

  it('ours and the reference allocating at once never hand out one address twice', async () => {
    addNs(HOST);
    const d = dataDir();
    const conf = { cniVersion: '1.0.0', name: 'hlnet', type: 'host-local', ipam: ipamConf(d, { subnet: '10.81.0.0/24' }) };
    const n = 24;
    const parsed = parseHostLocal(conf, []);
    const results = await Promise.all([
      ...Array.from({ length: n }, (_, i) => reference('ADD', `ref-${i}`, conf).then((r) => ok(r).ips[0].address as string)),
      ...Array.from({ length: n }, (_, i) => hostLocalAdd(parsed, '1.0.0', `ours-${i}`, 'eth0').then((r) => r.ips![0].address)),
    ]);
    expect(new Set(results).size).toBe(2 * n);
    const held = reservations(d, 'hlnet');
    expect(Object.keys(held).length).toBe(2 * n);
    expect(new Set(Object.values(held)).size).toBe(2 * n);
    // Both release concurrently too.
    await Promise.all([
      ...Array.from({ length: n }, (_, i) => reference('DEL', `ours-${i}`, conf).then(ok)),
      ...Array.from({ length: n }, (_, i) => hostLocalDel(parsed, `ref-${i}`, 'eth0')),
    ]);
    expect(files(d)).toEqual({});
  });

  it('waits for the lock while the reference (or anyone) holds it', async () => {
    addNs(HOST);
    const d = dataDir();
    const conf = { cniVersion: '1.0.0', name: 'hlnet', type: 'host-local', ipam: ipamConf(d) };
    ok(await reference('ADD', 'first', conf)); // makes the directory and its lock file
    // flock(1) holds the lock file the way the reference takes it; it marks when it has it and when it lets go.
    const [held, released] = [join(d, 'held'), join(d, 'released')];
    const holder = spawn('flock', [join(d, 'hlnet', 'lock'), 'sh', '-c', `touch ${held}; sleep 0.5; touch ${released}`], { stdio: 'ignore' });
    const gone = new Promise((res) => holder.once('close', res));
    await waitFor(() => existsSync(held), 10_000, 'flock(1) to hold the lock');
    const r = await hostLocalAdd(parseHostLocal(conf, []), '1.0.0', 'second', 'eth0');
    expect(existsSync(released)).toBe(true);
    expect(r.ips![0].address).toBe('10.77.0.3/28');
    await gone;
  });

  it('moves a dataDir written by the reference over to ours and back (copies, not shared)', async () => {
    addNs(HOST);
    const [a, b] = [dataDir(), dataDir()];
    const conf = (dir: string) => ({ cniVersion: '1.0.0', name: 'hlnet', type: 'host-local', ipam: ipamConf(dir) });
    for (const id of ['r1', 'r2', 'r3']) ok(await reference('ADD', id, conf(a)));
    ok(await reference('DEL', 'r2', conf(a)));
    cpSync(join(a, 'hlnet'), join(b, 'hlnet'), { recursive: true });
    // Ours continues after .4, fills .5..14 and the freed .3 last, then both say the range is exhausted.
    const parsed = parseHostLocal(conf(b), []);
    const got: string[] = [];
    for (let i = 0; i < 11; i++) got.push((await hostLocalAdd(parsed, '1.0.0', `o${i}`, 'eth0')).ips![0].address);
    expect(got).toEqual([...Array.from({ length: 10 }, (_, i) => `10.77.0.${i + 5}/28`), '10.77.0.3/28']);
    await expect(hostLocalAdd(parsed, '1.0.0', 'one-too-many', 'eth0')).rejects.toThrow('no IP addresses available in range set: 10.77.0.1-10.77.0.14');
    const theirs = await reference('ADD', 'one-too-many', conf(b));
    expect(theirs.json.msg).toBe('failed to allocate for range 0: no IP addresses available in range set: 10.77.0.1-10.77.0.14');
    // The duplicate rule both apply: a second ADD for an attachment that holds an address.
    expect((await reference('ADD', 'o0', conf(b))).json.msg).toMatch(/10\.77\.0\.5 has been allocated to o0, duplicate allocation is not allowed/);
  });
});
