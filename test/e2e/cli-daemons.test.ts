// The pipework command end to end with real daemons, started once per describe
// block (test/support/daemons): Open vSwitch, Docker and LXC containers as
// guests; none left afterwards. Each test runs `node bin/pipework.js ...` in
// throwaway namespaces and reads the kernel state back
// (test/e2e/cli/harness.ts). Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cli-daemons.test.ts
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../support/daemons/dockerd';
import { startLxc, type Lxc } from '../support/daemons/lxc';
import { OVS_DB_SOCK, startOvs, type Ovs } from '../support/daemons/ovs';
import { daemonsInThisNetns } from '../support/daemons/processes';
import {
  HOST, nsFile, cli, sh, inNs, ip, ipj, link, addrInfo, routes, snapshot, settled, ping, hasBin, expectError, expectOk, cleanups, addNs, setup, cleanUp,
} from './cli/harness';

/** PIDs of the daemons this file started (checked to be gone at the end). */
const ourDaemons: number[] = [];

afterEach(cleanUp);

describe('Open vSwitch (userspace datapath)', () => {
  const OVS_HOST = 'pwovs';
  let ovs: Ovs | undefined;
  let skip = '';
  beforeAll(async () => {
    if (!hasBin('ovs-vswitchd')) { skip = 'ovs-vswitchd not installed'; return; }
    if (existsSync(OVS_DB_SOCK)) { skip = `${OVS_DB_SOCK} already in use by another test file`; return; }
    sh('ip', 'netns', 'add', OVS_HOST);
    ip(OVS_HOST, 'link', 'set', 'lo', 'up');
    ovs = await startOvs({ netns: nsFile(OVS_HOST) });
    ourDaemons.push(ovs.ovsdbPid, ovs.vswitchdPid);
    await ovs.vsctl(['add-br', 'ovsbr0', '--', 'set', 'bridge', 'ovsbr0', 'datapath_type=netdev']);
  });
  afterAll(async () => {
    await ovs?.stop();
    spawnSync('ip', ['netns', 'del', OVS_HOST], { stdio: 'ignore' });
  });
  const ports = async (br = 'ovsbr0') => (await ovs!.vsctl(['list-ports', br])).split('\n').filter(Boolean).sort();
  /** `ovs-vsctl --format=json list TABLE NAME` as an object of column -> value. */
  async function record(table: string, name: string): Promise<Record<string, any>> {
    const j = JSON.parse(await ovs!.vsctl(['--format=json', 'list', table, name]));
    return Object.fromEntries(j.headings.map((h: string, i: number) => [h, j.data[0][i]]));
  }
  const mapOf = (v: any) => Object.fromEntries((v as [string, [string, string][]])[1]);
  const ovsCli = (args: string[]) => cli(args, { host: OVS_HOST });
  const removePorts = (...p: string[]) => cleanups.push(async () => {
    for (const port of p) await ovs?.vsctl(['--if-exists', 'del-port', port]).catch(() => {});
  });

  it('an existing OVS bridge: the veth host end becomes a port with tag=<vlan> and the pipework.* external-ids; containers on the same VLAN ping', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    const c2 = addNs('pwo2');
    removePorts(`veth1pl${c1}`);
    removePorts(`veth1pl${c2}`);
    expectOk(await ovsCli(['ovsbr0', c1, '10.100.0.2/24', '@10']));
    expectOk(await ovsCli(['ovsbr0', c2, '10.100.0.3/24', '02:12:34:56:78:9a@10']));
    expect(await ports()).toEqual([`veth1pl${c1}`, `veth1pl${c2}`]);
    const port = await record('Port', `veth1pl${c1}`);
    expect(port.tag).toBe(10);
    expect(link(OVS_HOST, `veth1pl${c1}`)!.flags).toContain('UP');
    expect(link(c2, 'eth1')!.address).toBe('02:12:34:56:78:9a');
    expect(ping(c1, '10.100.0.3')).toBe(true);
    const iface = await record('Interface', `veth1pl${c1}`);
    // as the original: containerid/containername only for Docker containers (see the Docker block)
    expect(mapOf(iface.external_ids)).toEqual({
      'pipework.interface': `veth1pl${c1}`,
      'pipework.bridge': 'ovsbr0',
      'pipework.nspid': c1,
      'pipework.vlan': '10',
    });
  });

  it('containers on different VLAN tags do not reach each other', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    const c2 = addNs('pwo2');
    removePorts(`veth1pl${c1}`, `veth1pl${c2}`);
    expectOk(await ovsCli(['ovsbr0', c1, '10.100.1.2/24', '@10']));
    expectOk(await ovsCli(['ovsbr0', c2, '10.100.1.3/24', '@11']));
    expect((await record('Port', `veth1pl${c2}`)).tag).toBe(11);
    expect(ping(c1, '10.100.1.3', 1)).toBe(false);
  });

  it('without @vlan: a port with no tag and no pipework.vlan', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    removePorts(`veth1pl${c1}`);
    expectOk(await ovsCli(['ovsbr0', c1, '10.101.0.2/24']));
    const port = await record('Port', `veth1pl${c1}`);
    expect(port.tag).toEqual(['set', []]);
    expect(mapOf((await record('Interface', `veth1pl${c1}`)).external_ids)['pipework.vlan']).toBeUndefined();
  });

  it('a stale port record of the same name (its container died without unplug) does not keep its old VLAN', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    removePorts(`veth1pl${c1}`);
    // what a container that died (netns gone, veth gone) leaves in ovsdb
    await ovs!.vsctl(['add-port', 'ovsbr0', `veth1pl${c1}`, 'tag=10']);
    expectOk(await ovsCli(['ovsbr0', c1, '10.105.0.2/24', '@12']));
    expect((await record('Port', `veth1pl${c1}`)).tag).toBe(12);
    expect(mapOf((await record('Interface', `veth1pl${c1}`)).external_ids)['pipework.vlan']).toBe('12');
  });

  it('unplug removes the OVS port with the veth; again is harmless', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    removePorts(`veth1pl${c1}`);
    expectOk(await ovsCli(['ovsbr0', c1, '10.102.0.2/24', '@20']));
    expect(await ports()).toContain(`veth1pl${c1}`);
    expectOk(await ovsCli(['unplug', c1]));
    expect(await ports()).not.toContain(`veth1pl${c1}`);
    expect(link(OVS_HOST, `veth1pl${c1}`)).toBeUndefined();
    expect(link(c1, 'eth1')).toBeUndefined();
    expectOk(await ovsCli(['unplug', c1]));
  });

  it('--batch unplug with OVS running also removes the ports', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    const c2 = addNs('pwo2');
    removePorts(`veth1pl${c1}`, `veth1pl${c2}`);
    expectOk(await ovsCli(['ovsbr0', c1, '0/0']));
    expectOk(await ovsCli(['ovsbr0', c2, '0/0']));
    const r = await cli(['unplug', '--batch', '-'], { host: OVS_HOST, input: `${c1}\n${c2}\n` });
    expect(r.code).toBe(0);
    expect(await ports()).toEqual([]);
  });

  it('ovs* absent: an OVS bridge is created and the port added', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    cleanups.push(() => ovs?.vsctl(['--if-exists', 'del-br', 'ovsnew']).catch(() => {}));
    const r = await ovsCli(['ovsnew', c1, '10.103.0.2/24']);
    expectOk(r);
    await ovs!.vsctl(['br-exists', 'ovsnew']);
    expect(await ports('ovsnew')).toEqual([`veth1pl${c1}`]);
  });

  it('an attach that fails after the port was added (the kernel refuses the address) leaves no port and no veth', async (ctx) => {
    if (skip) ctx.skip(skip);
    const c1 = addNs('pwo1');
    removePorts(`veth1pl${c1}`);
    const before = [await ports(), ...(await settled(OVS_HOST, c1))];
    // a multicast address: valid syntax, refused by the kernel in the guest, after the OVS port exists
    const r = await ovsCli(['ovsbr0', '-a', '6', c1, 'ff02::1/64', '@30']);
    expectError(r, /.+/);
    expect([await ports(), snapshot(OVS_HOST), snapshot(c1)]).toEqual(before);
  });
});

describe('Docker containers as guests', () => {
  let d: Dockerd | undefined;
  let skip = '';
  const pids: Record<string, number> = {};
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    if (!hasBin('dockerd')) { skip = 'dockerd not installed'; return; }
    d = await startDockerd();
    ourDaemons.push(d.pid);
    for (const name of ['pwweb', 'pwdb']) {
      ids[name] = (await d.docker(['run', '-d', '--network', 'none', '--name', name, 'busybox', 'sleep', '1000'])).trim();
      pids[name] = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', name])).trim());
    }
  }, 180_000);
  afterAll(async () => { await d?.stop(); }, 120_000);
  const dcli = (args: string[]) => cli(args, { env: { DOCKER_HOST: d!.host } });

  it('by name and by id: the address lands in the container\'s netns; veth1pl<pid>; the containers ping each other', async (ctx) => {
    if (skip) ctx.skip(skip);
    setup(0);
    expectOk(await dcli(['br0', 'pwweb', '10.110.0.2/24']));
    expectOk(await dcli(['br0', ids.pwdb, '10.110.0.3/24']));
    expect(addrInfo(pids.pwweb, 'eth1')).toEqual([expect.objectContaining({ local: '10.110.0.2', prefixlen: 24 })]);
    expect(addrInfo(pids.pwdb, 'eth1')).toEqual([expect.objectContaining({ local: '10.110.0.3', prefixlen: 24 })]);
    expect(link(HOST, `veth1pl${pids.pwweb}`)).toMatchObject({ master: 'br0' });
    expect(link(HOST, `veth1pl${pids.pwdb}`)).toMatchObject({ master: 'br0' });
    // seen from inside the container too
    const inside = await d!.docker(['exec', 'pwweb', 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth1']);
    expect(inside).toContain('10.110.0.2/24');
    expect(ping(pids.pwweb, '10.110.0.3')).toBe(true);
    expectOk(await dcli(['unplug', 'pwweb']));
    expectOk(await dcli(['unplug', ids.pwdb.slice(0, 12)]));
    expect(link(pids.pwweb, 'eth1')).toBeUndefined();
    expect(link(pids.pwdb, 'eth1')).toBeUndefined();
  });

  it('route/rule/tc by container name', async (ctx) => {
    if (skip) ctx.skip(skip);
    setup(0);
    expectOk(await dcli(['br0', 'pwweb', '10.111.0.2/24']));
    cleanups.push(() => dcli(['unplug', 'pwweb']));
    expectOk(await dcli(['route', 'pwweb', 'add', '10.112.0.0/16', 'via', '10.111.0.1']));
    expect(routes(pids.pwweb, '-4', '10.112.0.0/16')).toEqual([expect.objectContaining({ gateway: '10.111.0.1', dev: 'eth1' })]);
    expectOk(await dcli(['rule', 'pwweb', 'add', 'from', '10.111.0.0/24', 'table', '5']));
    expect(ipj<any[]>(pids.pwweb, 'rule', 'show')).toEqual(expect.arrayContaining([expect.objectContaining({ src: '10.111.0.0', table: '5' })]));
    expectOk(await dcli(['tc', 'pwweb', 'qdisc', 'add', 'dev', 'eth1', 'root', 'pfifo']));
    expect(JSON.parse(inNs(pids.pwweb, 'tc', '-j', 'qdisc', 'show', 'dev', 'eth1'))).toEqual([expect.objectContaining({ kind: 'pfifo' })]);
  });

  it('on an OVS bridge: the port carries pipework.containerid and pipework.containername', async (ctx) => {
    if (skip) ctx.skip(skip);
    if (!hasBin('ovs-vswitchd') || existsSync(OVS_DB_SOCK)) ctx.skip('Open vSwitch not installed, or its socket in use');
    setup(0);
    const ovs = await startOvs({ netns: nsFile(HOST) });
    ourDaemons.push(ovs.ovsdbPid, ovs.vswitchdPid);
    cleanups.push(() => ovs.stop());
    await ovs.vsctl(['add-br', 'ovsbr0', '--', 'set', 'bridge', 'ovsbr0', 'datapath_type=netdev']);
    expectOk(await dcli(['ovsbr0', 'pwweb', '10.115.0.2/24', '@7']));
    cleanups.unshift(() => dcli(['unplug', 'pwweb']));
    const port = `veth1pl${pids.pwweb}`;
    const j = JSON.parse(await ovs.vsctl(['--format=json', '--columns=external_ids', 'list', 'Interface', port]));
    expect(Object.fromEntries(j.data[0][0][1])).toEqual({
      'pipework.interface': port,
      'pipework.bridge': 'ovsbr0',
      'pipework.containerid': ids.pwweb,
      // the original stores docker inspect's .Name, "/pwweb"; we store "pwweb" (see the report)
      'pipework.containername': '/pwweb',
      'pipework.nspid': String(pids.pwweb),
      'pipework.vlan': '7',
    });
    expect(addrInfo(pids.pwweb, 'eth1')).toEqual([expect.objectContaining({ local: '10.115.0.2' })]);
  });

  it('an unknown name: "Container <name> not found, and unknown to Docker."', async (ctx) => {
    if (skip) ctx.skip(skip);
    setup(0);
    const [before] = await settled(HOST);
    expectError(await dcli(['br0', 'pwnosuch', '10.113.0.2/24']), 'Container pwnosuch not found, and unknown to Docker.');
    expect(snapshot(HOST)).toEqual(before);
  });

  it('a stopped container: refused with a message, nothing made', async (ctx) => {
    if (skip) ctx.skip(skip);
    setup(0);
    await d!.docker(['create', '--network', 'none', '--name', 'pwstopped', 'busybox', 'sleep', '1000']);
    cleanups.push(() => d!.docker(['rm', '-f', 'pwstopped']).catch(() => {}));
    const [before] = await settled(HOST);
    const r = await dcli(['br0', 'pwstopped', '10.114.0.2/24']);
    expectError(r, 'Docker inspect returned invalid PID 0');
    expect(snapshot(HOST)).toEqual(before);
  });
});

describe('LXC containers as guests', () => {
  let c: Lxc | undefined;
  let skip = '';
  const NAME = 'pwlxc';
  beforeAll(async () => {
    if (!hasBin('lxc-start')) { skip = 'LXC not installed'; return; }
    c = await startLxc(NAME);
    ourDaemons.push(c.monitorPid);
  }, 120_000);
  afterAll(async () => { await c?.stop(); }, 60_000);

  it('by name: found through its cgroup; the link and address are in the container', async (ctx) => {
    if (skip) ctx.skip(skip);
    const [c1] = setup(1);
    expectOk(await cli(['br0', NAME, '10.120.0.2/24']));
    expectOk(await cli(['br0', c1, '10.120.0.3/24']));
    expect(addrInfo(c!.pid, 'eth1')).toEqual([expect.objectContaining({ local: '10.120.0.2', prefixlen: 24 })]);
    expect(link(HOST, `veth1pl${c!.pid}`)).toMatchObject({ master: 'br0' });
    const inside = await c!.attach(['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth1']);
    expect(inside).toContain('10.120.0.2/24');
    expect(ping(c1, '10.120.0.2')).toBe(true);
    expectOk(await cli(['unplug', NAME]));
    expect(link(c!.pid, 'eth1')).toBeUndefined();
  });
});

describe('leftovers', () => {
  it('no daemon of ours is still running, and no netns of ours is left', () => {
    // only ours: other test files of the same run may have daemons of their own in this netns
    expect(ourDaemons.length).toBeGreaterThan(0);
    const alive = (pid: number) => {
      try { return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
    };
    expect(ourDaemons.filter(alive)).toEqual([]);
    expect(daemonsInThisNetns().filter((d) => ourDaemons.includes(d.pid))).toEqual([]);
    const left = sh('ip', 'netns', 'list').split('\n').map((l) => l.split(' ')[0]).filter((n) => /^pw/.test(n));
    expect(left).toEqual([]);
  });
});
