// pipework-cni, the CNI plugin (spec 1.0.0 and 1.1.0), end to end:
// (1) the executable run as a runtime runs it (CNI_* variables, config on
//     stdin, result or error result on stdout), against real namespaces from
//     `ip netns add`, with Debian's host-local IPAM (dataDir in a temp dir)
//     and a fake IPAM plugin that records what it is given;
// (2) Debian's containerd + runc with `ctr run --cni`: two containers on a
//     pipework network ping each other, and CNI DEL on removal takes the veth
//     off the bridge.
// Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cni.test.ts
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, waitFor } from '../support/daemons/helpers';
import {
  BIN, SYSTEM_CNI, addrs, cni, fakeCalls, fakeIpam, ip, kernelHas, link, links, median, ping, ports, reservations, routes,
  type CniEnv, type CniRun,
} from './cni/harness';
import { pingFrom, startContainerd, type Containerd } from './cni/containerd';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/cni.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

if (!existsSync(`${SYSTEM_CNI}/host-local`)) {
  throw new Error(`test/e2e/cni.test.ts needs Debian's CNI plugins in ${SYSTEM_CNI} (package containernetworking-plugins: npm run setup)`);
}

const HOST = 'pwcnih';
const HAS_VLAN = kernelHas('vlan', 'id', '7');
const HAS_DUMMY = kernelHas('dummy');

// ---------------------------------------------------------------------------
// Per-test namespaces and temp dirs

const madeNs: string[] = [];
const madeDirs: string[] = [];

function addNs(name: string): string {
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  madeNs.push(name);
  return name;
}

function dir(prefix: string): string {
  const d = tmpDir(prefix);
  madeDirs.push(d);
  return d;
}

/** The host netns and `n` container netns (`pwcni1..n`). */
function setup(n = 1): string[] {
  addNs(HOST);
  ip(HOST, 'link', 'set', 'lo', 'up');
  return Array.from({ length: n }, (_, i) => addNs(`pwcni${i + 1}`));
}

function cleanNamespaces(): void {
  for (const ns of madeNs.splice(0)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

afterEach(() => {
  cleanNamespaces();
  for (const d of madeDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Configurations and calls

/** A bridge-mode network with host-local IPAM whose state lives in `dataDir`. */
function bridgeConf(dataDir: string, extra: Record<string, unknown> = {}, ipamExtra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.0.0',
    name: 'pwnet',
    type: 'pipework',
    mode: 'bridge',
    bridge: 'pwcni0',
    ipam: { type: 'host-local', subnet: '10.66.5.0/24', gateway: '10.66.5.1', routes: [{ dst: '0.0.0.0/0' }], dataDir, ...ipamExtra },
    ...extra,
  };
}

const attachEnv = (netns: string, id: string, ifname = 'eth0'): CniEnv => ({
  CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: ifname, CNI_PATH: SYSTEM_CNI,
});

const add = (netns: string, id: string, conf: object, ifname = 'eth0') => cni(HOST, { CNI_COMMAND: 'ADD', ...attachEnv(netns, id, ifname) }, conf);
const del = (netns: string, id: string, conf: object, ifname = 'eth0') => cni(HOST, { CNI_COMMAND: 'DEL', ...attachEnv(netns, id, ifname) }, conf);
const check = (netns: string, id: string, conf: object, ifname = 'eth0') => cni(HOST, { CNI_COMMAND: 'CHECK', ...attachEnv(netns, id, ifname) }, conf);
const withPrev = (conf: object, prevResult: unknown) => ({ ...conf, prevResult });

function expectOk(r: CniRun): any {
  if (r.code !== 0) throw new Error(`pipework-cni exited ${r.code}: ${r.stdout} ${r.stderr}`);
  return r.json;
}

/** An error result on stdout, exit status non-zero, with the spec's four keys. */
function expectError(r: CniRun, code: number, msg?: RegExp): any {
  expect(r.code, r.stdout + r.stderr).not.toBe(0);
  expect(r.json, r.stdout).toBeTypeOf('object');
  expect(Object.keys(r.json).sort()).toEqual(['cniVersion', 'code', 'details', 'msg']);
  expect(r.json.code, JSON.stringify(r.json)).toBe(code);
  if (msg) expect(`${r.json.msg} ${r.json.details}`).toMatch(msg);
  expect(r.stdout).not.toMatch(/^\s+at /m);
  return r.json;
}

// ---------------------------------------------------------------------------
// (1) Direct invocations

describe('pipework-cni, called directly', () => {
  it('VERSION lists the versions it implements, echoing the one asked for', async () => {
    const v = expectOk(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' }));
    expect(v).toEqual({ cniVersion: '1.0.0', supportedVersions: ['1.0.0', '1.1.0'] });
    const bare = expectOk(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'VERSION' }, ''));
    expect(bare).toEqual({ cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] });
  });

  it('refuses missing or bad environment variables with code 4, naming them', async () => {
    const d = dir('cni-ipam');
    const conf = bridgeConf(d);
    const noCommand = await cni(HOST_OR_SELF(), {}, conf);
    expectError(noCommand, 4, /CNI_COMMAND/);
    expect(noCommand.stderr).toMatch(/CNI protocol versions supported: 1\.0\.0, 1\.1\.0/);
    expectError(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_PATH: SYSTEM_CNI }, conf), 4, /\[CNI_NETNS\]/);
    expectError(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'DEL', CNI_PATH: SYSTEM_CNI }, conf), 4, /CNI_CONTAINERID,CNI_IFNAME/);
    expectError(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'GC' }, { ...conf, cniVersion: '1.1.0' }), 4, /CNI_PATH/);
    expectError(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'FROB' }, conf), 4, /unknown CNI_COMMAND: FROB/);
    expectError(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'ADD', CNI_CONTAINERID: '-bad id', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' }, conf), 4, /CNI_CONTAINERID/);
    expectError(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'a-very-long-interface' }, conf), 4, /CNI_IFNAME/);
    expectError(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: 'relative/ns', CNI_IFNAME: 'eth0' }, conf), 4, /CNI_NETNS/);
    // The plugin's own netns as the container's: refused (a DEL there would delete host interfaces).
    expectError(await cni(HOST_OR_SELF(), { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0' }, conf), 4, /own network namespace/);
  });

  it('refuses bad JSON with code 6, unknown versions with code 1, bad configurations with code 7 or 2', async () => {
    const [c1] = setup(1);
    const d = dir('cni-ipam');
    const conf = bridgeConf(d);
    const env = { CNI_COMMAND: 'ADD', ...attachEnv(c1, 'c1') };
    expectError(await cni(HOST, env, '{"cniVersion": "1.0.0", '), 6, /decoding/);
    expectError(await cni(HOST, env, '[1, 2]'), 6);
    expectError(await cni(HOST, env, ''), 6);
    const old = expectError(await cni(HOST, env, { ...conf, cniVersion: '0.4.0' }), 1, /incompatible CNI versions.*0\.4\.0/);
    expect(old.cniVersion).toBe('0.4.0');
    expectError(await cni(HOST, env, { ...conf, cniVersion: '2.0.0' }), 1);
    expectError(await cni(HOST, env, { ...conf, cniVersion: undefined }), 1, /0\.1\.0/);
    expectError(await cni(HOST, env, { ...conf, name: undefined }), 7, /missing network name/);
    expectError(await cni(HOST, env, { ...conf, name: '-x' }), 7, /network name/);
    expectError(await cni(HOST, env, { ...conf, mode: 'ovs' }), 7, /unknown mode "ovs"/);
    expectError(await cni(HOST, env, { ...conf, mtu: 12 }), 7, /mtu/);
    expectError(await cni(HOST, env, { ...conf, mac: '01:00:5e:00:00:01' }), 7, /multicast/);
    expectError(await cni(HOST, env, { ...conf, mode: 'macvlan', bridge: undefined }), 7, /needs "master"/);
    expectError(await cni(HOST, env, { ...conf, mode: 'vlan', bridge: undefined, master: 'eth9' }), 7, /needs "vlan"/);
    expectError(await cni(HOST, env, { ...conf, vlan: 10 }), 2, /vlan=10/);
    expectError(await cni(HOST, env, { ...conf, ipam: { type: '../x' } }), 7, /ipam\.type/);
    expectError(await cni(HOST, env, { ...conf, bridge: 'a-name-too-long-for-linux' }), 7, /bridge/);
    // Nothing happened: no interface in the container, no bridge, no reservation.
    expect(link(c1, 'eth0')).toBeUndefined();
    expect(link(HOST, 'pwcni0')).toBeUndefined();
    expect(reservations(d, 'pwnet')).toEqual({});
  });

  it('an unknown IPAM plugin is a clear error, before anything changes', async () => {
    const [c1] = setup(1);
    const conf = { ...bridgeConf(dir('cni-ipam')), ipam: { type: 'no-such-ipam' } };
    const e = expectError(await add(c1, 'c1', conf), 999, /failed to find IPAM plugin "no-such-ipam" in CNI_PATH/);
    expect(e.details).toContain(`${SYSTEM_CNI}/no-such-ipam`);
    expect(link(c1, 'eth0')).toBeUndefined();
    expect(link(HOST, 'pwcni0')).toBeUndefined();
    // And with no CNI_PATH at all: code 4, saying which variable.
    expectError(await cni(HOST, { CNI_COMMAND: 'ADD', ...attachEnv(c1, 'c1'), CNI_PATH: '' }, conf), 4, /CNI_PATH/);
  });

  it('ADD (1.0.0): a veth on a new bridge, host-local addresses and routes, the spec result; two containers ping', async () => {
    const [c1, c2] = setup(2);
    const d = dir('cni-ipam');
    const conf = bridgeConf(d, { mtu: 1400 });
    const r1 = expectOk(await add(c1, 'ctr-one', conf));
    const bridgeMac = link(HOST, 'pwcni0')!.address;
    const r2 = expectOk(await add(c2, 'ctr-two', conf));
    // The bridge was made with a MAC of its own: ports coming and going do not change it.
    expect(link(HOST, 'pwcni0')!.address).toBe(bridgeMac);

    const veth1 = link(HOST, r1.interfaces[1].name)!;
    expect(r1).toEqual({
      cniVersion: '1.0.0',
      interfaces: [
        { name: 'pwcni0', mac: bridgeMac },
        { name: veth1.ifname, mac: veth1.address },
        { name: 'eth0', mac: link(c1, 'eth0')!.address, sandbox: `/run/netns/${c1}` },
      ],
      ips: [{ address: '10.66.5.2/24', gateway: '10.66.5.1', interface: 2 }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
    expect(r2.ips).toEqual([{ address: '10.66.5.3/24', gateway: '10.66.5.1', interface: 2 }]);
    expect(reservations(d, 'pwnet')).toEqual({ '10.66.5.2': 'ctr-one', '10.66.5.3': 'ctr-two' });

    // Kernel state: the container end named CNI_IFNAME, up, with the address, MTU and default route.
    const eth0 = link(c1, 'eth0')!;
    expect(eth0.linkinfo?.info_kind).toBe('veth');
    expect(eth0.flags).toContain('UP');
    expect(eth0.mtu).toBe(1400);
    expect(addrs(c1, 'eth0')).toEqual(['10.66.5.2/24']);
    expect(routes(c1).find((r) => r.dst === 'default')).toMatchObject({ gateway: '10.66.5.1', dev: 'eth0' });
    // The host end is a port of the bridge (created, up), with the same MTU.
    expect(link(HOST, 'pwcni0')!.linkinfo?.info_kind).toBe('bridge');
    expect(link(HOST, 'pwcni0')!.flags).toContain('UP');
    expect(veth1.master).toBe('pwcni0');
    expect(veth1.mtu).toBe(1400);
    expect(ports(HOST, 'pwcni0')).toEqual([r1.interfaces[1].name, r2.interfaces[1].name].sort());

    expect(ping(c1, '10.66.5.3')).toBe(true);
    expect(ping(c2, '10.66.5.2')).toBe(true);
  });

  it('ADD (1.1.0) with a 1.0.0-only host-local: same result plus interface MTU; CHECK passes', async () => {
    const [c1] = setup(1);
    const d = dir('cni-ipam');
    const conf = { ...bridgeConf(d), cniVersion: '1.1.0' };
    const r = expectOk(await add(c1, 'c1', conf));
    expect(r.cniVersion).toBe('1.1.0');
    expect(r.interfaces[2]).toEqual({ name: 'eth0', mac: link(c1, 'eth0')!.address, mtu: 1500, sandbox: `/run/netns/${c1}` });
    expect(r.ips).toEqual([{ address: '10.66.5.2/24', gateway: '10.66.5.1', interface: 2 }]);
    const ok = await check(c1, 'c1', withPrev(conf, r));
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toBe('');
  });

  it('CHECK fails when the interface, an address or a route is gone, and without prevResult', async () => {
    const [c1] = setup(1);
    const conf = bridgeConf(dir('cni-ipam'));
    const r = expectOk(await add(c1, 'c1', conf));
    expect((await check(c1, 'c1', withPrev(conf, r))).code).toBe(0);
    expectError(await check(c1, 'c1', conf), 7, /prevResult/);

    ip(c1, 'route', 'del', 'default');
    expectError(await check(c1, 'c1', withPrev(conf, r)), 999, /route 0\.0\.0\.0\/0 .*not found/);
    ip(c1, 'addr', 'del', '10.66.5.2/24', 'dev', 'eth0');
    expectError(await check(c1, 'c1', withPrev(conf, r)), 999, /address 10\.66\.5\.2\/24 not found/);
    ip(c1, 'link', 'del', 'eth0');
    expectError(await check(c1, 'c1', withPrev(conf, r)), 999, /interface eth0 not found/);
  });

  it('DEL removes the interface and releases the address; a second DEL succeeds too', async () => {
    const [c1] = setup(1);
    const d = dir('cni-ipam');
    const conf = bridgeConf(d);
    const r = expectOk(await add(c1, 'c1', conf));
    expect(reservations(d, 'pwnet')).toEqual({ '10.66.5.2': 'c1' });
    for (let i = 0; i < 2; i++) {
      const out = await del(c1, 'c1', withPrev(conf, r));
      expect(out.code, out.stdout).toBe(0);
      expect(out.stdout).toBe('');
      expect(link(c1, 'eth0')).toBeUndefined();
      expect(ports(HOST, 'pwcni0')).toEqual([]);
      expect(reservations(d, 'pwnet')).toEqual({});
    }
    // The bridge stays: other containers may share it.
    expect(link(HOST, 'pwcni0')).toBeDefined();
  });

  it('DEL with the netns gone succeeds: the veth leaves the bridge at once and the address is released', async () => {
    const [c1, c2] = setup(2);
    const d = dir('cni-ipam');
    const conf = bridgeConf(d);
    const r1 = expectOk(await add(c1, 'c1', conf));
    const r2 = expectOk(await add(c2, 'c2', conf));
    expect(ports(HOST, 'pwcni0')).toHaveLength(2);
    ip(HOST, 'netns', 'del', c1);
    madeNs.splice(madeNs.indexOf(c1), 1);
    const out = await del(c1, 'c1', withPrev(conf, r1));
    expect(out.code, out.stdout).toBe(0);
    // Deleted by DEL itself, found through prevResult (the kernel tears a dead netns down in the background, later).
    expect(ports(HOST, 'pwcni0')).toEqual([r2.interfaces[1].name]);
    expect(Object.values(reservations(d, 'pwnet'))).toEqual(['c2']);
    // No netns at all (CNI_NETNS empty, as ctr sends it after the task died) and no prevResult: fine too.
    const again = await cni(HOST, { CNI_COMMAND: 'DEL', ...attachEnv(c1, 'c1'), CNI_NETNS: '' }, conf);
    expect(again.code, again.stdout).toBe(0);
  });

  it('ADD into a netns that does not exist: code 3 (unknown container), nothing allocated', async () => {
    setup(0);
    const d = dir('cni-ipam');
    expectError(await add('pwcni-none', 'c1', bridgeConf(d)), 3, /pwcni-none does not exist/);
    expect(reservations(d, 'pwnet')).toEqual({});
    expect(link(HOST, 'pwcni0')).toBeUndefined();
  });

  it('ADD of an interface that exists already fails and leaves no reservation behind', async () => {
    const [c1] = setup(1);
    const d = dir('cni-ipam');
    const conf = bridgeConf(d);
    expectOk(await add(c1, 'c1', conf));
    const before = links(c1).map((l) => l.ifname);
    expectError(await add(c1, 'c1-again', conf), 999, /interface eth0 already exists/);
    expect(links(c1).map((l) => l.ifname)).toEqual(before);
    expect(reservations(d, 'pwnet')).toEqual({ '10.66.5.2': 'c1' });
    // A kernel refusal after IPAM: the address is released again (bridge name taken by a non-bridge).
    const [c2] = [addNs('pwcni2')];
    ip(HOST, 'link', 'add', 'pwnotbr', 'type', 'veth', 'peer', 'name', 'pwnotbrp');
    expectError(await add(c2, 'c2', { ...conf, bridge: 'pwnotbr' }), 7, /pwnotbr exists and is not a Linux bridge/);
    expect(reservations(d, 'pwnet')).toEqual({ '10.66.5.2': 'c1' });
    expect(link(c2, 'eth0')).toBeUndefined();
  });

  it('a kernel refusal after IPAM ADD (a route) undoes the attach and releases the address', async () => {
    const [c1] = setup(1);
    const d = dir('cni-ipam');
    // Routes through a gateway that is in no subnet of the container: the kernel refuses the route (ENETUNREACH).
    const conf = bridgeConf(d, {}, { routes: [{ dst: '10.200.0.0/16', gw: '192.0.2.1' }] });
    const e = expectError(await add(c1, 'c1', conf), 999);
    expect(e.msg).toMatch(/RTM_NEWROUTE 10\.200\.0\.0\/16 via 192\.0\.2\.1 dev eth0/);
    expect(link(c1, 'eth0')).toBeUndefined();
    expect(ports(HOST, 'pwcni0')).toEqual([]);
    expect(reservations(d, 'pwnet')).toEqual({});
  });

  it('the MAC from the configuration, overridden by runtimeConfig.mac (the "mac" capability)', async () => {
    const [c1, c2] = setup(2);
    const d = dir('cni-ipam');
    const r1 = expectOk(await add(c1, 'c1', bridgeConf(d, { mac: '02:42:ac:11:00:07' })));
    expect(link(c1, 'eth0')!.address).toBe('02:42:ac:11:00:07');
    expect(r1.interfaces[2].mac).toBe('02:42:ac:11:00:07');
    expectOk(await add(c2, 'c2', bridgeConf(d, { mac: '02:42:ac:11:00:07', runtimeConfig: { mac: '02:42:ac:11:00:08' } })));
    expect(link(c2, 'eth0')!.address).toBe('02:42:ac:11:00:08');
  });

  describe('per-container values from the runtime: CNI_ARGS, args.cni, runtimeConfig', () => {
    const addWith = (netns: string, id: string, conf: object, cniArgs: string) =>
      cni(HOST, { CNI_COMMAND: 'ADD', ...attachEnv(netns, id), CNI_ARGS: cniArgs }, conf);

    it('CNI_ARGS MAC= as Podman sends it (podman run --mac-address) is the container interface MAC', async () => {
      const [c1] = setup(1);
      const d = dir('cni-ipam');
      const r = expectOk(await addWith(c1, 'c1', bridgeConf(d), 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;MAC=02:aa:bb:cc:dd:01'));
      expect(link(c1, 'eth0')!.address).toBe('02:aa:bb:cc:dd:01');
      expect(r.interfaces[2]).toMatchObject({ name: 'eth0', mac: '02:aa:bb:cc:dd:01' });
      const again = { ...attachEnv(c1, 'c1'), CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;MAC=02:aa:bb:cc:dd:01' };
      expect((await cni(HOST, { CNI_COMMAND: 'CHECK', ...again }, withPrev(bridgeConf(d), r))).code).toBe(0);
      expect((await cni(HOST, { CNI_COMMAND: 'DEL', ...again }, withPrev(bridgeConf(d), r))).code).toBe(0);
      expect(link(c1, 'eth0')).toBeUndefined();
      expect(reservations(d, 'pwnet')).toEqual({});
    });

    it('args.cni.mac and runtimeConfig.mac; precedence mac < CNI_ARGS < args.cni < runtimeConfig', async () => {
      const [c1, c2, c3, c4] = setup(4);
      const d = dir('cni-ipam');
      const env = 'IgnoreUnknown=1;MAC=02:00:00:00:00:02';
      const argsCni = { args: { cni: { mac: '02:00:00:00:00:03' } } };
      const runtime = { runtimeConfig: { mac: '02:00:00:00:00:04' } };
      expectOk(await addWith(c1, 'c1', bridgeConf(d, argsCni), ''));
      expect(link(c1, 'eth0')!.address).toBe('02:00:00:00:00:03');
      expectOk(await addWith(c2, 'c2', bridgeConf(d, { mac: '02:00:00:00:00:01' }), env));
      expect(link(c2, 'eth0')!.address).toBe('02:00:00:00:00:02');
      expectOk(await addWith(c3, 'c3', bridgeConf(d, { mac: '02:00:00:00:00:01', ...argsCni }), env));
      expect(link(c3, 'eth0')!.address).toBe('02:00:00:00:00:03');
      expectOk(await addWith(c4, 'c4', bridgeConf(d, { mac: '02:00:00:00:00:01', ...argsCni, ...runtime }), env));
      expect(link(c4, 'eth0')!.address).toBe('02:00:00:00:00:04');
    });

    it('IP= in CNI_ARGS, args.cni.ips and runtimeConfig.ips reach host-local, which assigns them', async () => {
      const [c1, c2, c3] = setup(3);
      const d = dir('cni-ipam');
      const r1 = expectOk(await addWith(c1, 'c1', bridgeConf(d), 'IgnoreUnknown=1;MAC=02:aa:bb:cc:dd:01;IP=10.66.5.50'));
      expect(addrs(c1, 'eth0')).toEqual(['10.66.5.50/24']);
      expect(r1.ips).toEqual([{ address: '10.66.5.50/24', gateway: '10.66.5.1', interface: 2 }]);
      expectOk(await addWith(c2, 'c2', bridgeConf(d, { args: { cni: { ips: ['10.66.5.60'] } } }), ''));
      expect(addrs(c2, 'eth0')).toEqual(['10.66.5.60/24']);
      expectOk(await addWith(c3, 'c3', bridgeConf(d, { runtimeConfig: { ips: ['10.66.5.70/24'] } }), ''));
      expect(addrs(c3, 'eth0')).toEqual(['10.66.5.70/24']);
      expect(reservations(d, 'pwnet')).toEqual({ '10.66.5.50': 'c1', '10.66.5.60': 'c2', '10.66.5.70': 'c3' });
      expect(ping(c1, '10.66.5.70')).toBe(true);
    });

    it('bad values are refused with a CNI error before anything changes', async () => {
      const [c1] = setup(1);
      const d = dir('cni-ipam');
      const refused = async (conf: object, cniArgs: string, code: number, msg: RegExp) => {
        expectError(await addWith(c1, 'c1', conf, cniArgs), code, msg);
        expect(link(c1, 'eth0')).toBeUndefined();
        expect(reservations(d, 'pwnet')).toEqual({});
      };
      await refused(bridgeConf(d), 'IgnoreUnknown=1;MAC=zz', 4, /CNI_ARGS: MAC "zz" is not a MAC address/);
      await refused(bridgeConf(d), 'IgnoreUnknown=1;MAC=03:00:00:00:00:01', 4, /CNI_ARGS: MAC 03:00:00:00:00:01 is a multicast address/);
      await refused(bridgeConf(d), 'K8S_POD_NAME=web;MAC=02:aa:bb:cc:dd:01', 4, /CNI_ARGS: unknown args \["K8S_POD_NAME=web"\]/);
      await refused(bridgeConf(d), 'IgnoreUnknown=1;A=b=c', 4, /CNI_ARGS: "A=b=c" is not KEY=VALUE/);
      await refused(bridgeConf(d), 'IgnoreUnknown=yes', 4, /IgnoreUnknown=yes/);
      await refused(bridgeConf(d), 'IgnoreUnknown=1;IP=10.66.5.300', 4, /CNI_ARGS: IP "10.66.5.300" is not an IP address/);
      await refused(bridgeConf(d, { args: { cni: { mac: 'aa:bb' } } }), '', 7, /args\.cni\.mac "aa:bb" is not a MAC address/);
      await refused(bridgeConf(d, { runtimeConfig: { mac: '00:00:00:00:00:00' } }), '', 7, /runtimeConfig\.mac 00:00:00:00:00:00 is all zeros/);
      await refused(bridgeConf(d, { runtimeConfig: { ips: '10.66.5.9' } }), '', 7, /runtimeConfig\.ips must be a list/);
      await refused({ ...bridgeConf(d), ipam: undefined }, 'IP=10.66.5.9', 7, /IP addresses asked for \(10\.66\.5\.9\) on a network without IPAM/);
      // An IP outside host-local's range: host-local's own error, nothing left behind.
      await refused(bridgeConf(d), 'IgnoreUnknown=1;IP=10.99.0.9', 999, /host-local \(ADD\)/);
    });

    it('an IPAM plugin that ignores the IP asked for: ADD fails, its allocation is released', async () => {
      const [c1] = setup(1);
      const bin = dir('cni-bin');
      fakeIpam(bin, 'fake-ipam', { cniVersion: '1.0.0', ips: [{ address: '10.99.0.5/24' }] });
      const conf = { cniVersion: '1.0.0', name: 'fakenet', type: 'pipework', bridge: 'pwcni0', ipam: { type: 'fake-ipam' } };
      const env = { CNI_COMMAND: 'ADD', ...attachEnv(c1, 'c1'), CNI_PATH: bin, CNI_ARGS: 'IP=10.99.0.77' };
      expectError(await cni(HOST, env, conf), 999, /fake-ipam did not assign the IP addresses asked for: 10\.99\.0\.77/);
      expect(fakeCalls(bin, 'fake-ipam')).toEqual(['ADD', 'DEL']);
      expect(link(c1, 'eth0')).toBeUndefined();
      expect(ports(HOST, 'pwcni0')).toEqual([]);
    });
  });

  it('delegates to the IPAM plugin with the same stdin and environment; its routes and DNS make the result', async () => {
    const [c1] = setup(1);
    const bin = dir('cni-bin');
    fakeIpam(bin, 'fake-ipam', {
      cniVersion: '1.1.0',
      ips: [{ address: '10.99.0.5/24', gateway: '10.99.0.1' }, { address: '2001:db8:99::5/64', gateway: '2001:db8:99::1' }],
      routes: [{ dst: '10.100.0.0/16' }, { dst: '10.101.0.0/16', gw: '10.99.0.254', priority: 50 }, { dst: '::/0' }],
      dns: { nameservers: ['10.99.0.53'], search: ['example.test'] },
    });
    const conf = { cniVersion: '1.1.0', name: 'fakenet', type: 'pipework', bridge: 'pwcni0', ipam: { type: 'fake-ipam', anything: [1, 2] } };
    const stdin = `${JSON.stringify(conf, null, 1)}\n`; // not our serialisation: passed on byte for byte
    const env = { ...attachEnv(c1, 'c1'), CNI_PATH: `${bin}:${SYSTEM_CNI}`, CNI_ARGS: 'IgnoreUnknown=1;FOO=bar' };
    const r = expectOk(await cni(HOST, { CNI_COMMAND: 'ADD', ...env }, stdin));
    expect(readFileSync(join(bin, 'fake-ipam.ADD.in'), 'utf8')).toBe(stdin);
    const ipamEnv = readFileSync(join(bin, 'fake-ipam.ADD.env'), 'utf8');
    for (const [k, v] of Object.entries({ ...env, CNI_COMMAND: 'ADD' })) expect(ipamEnv).toContain(`${k}=${v}\n`);

    expect(r.ips).toEqual([
      { address: '10.99.0.5/24', gateway: '10.99.0.1', interface: 2 },
      { address: '2001:db8:99::5/64', gateway: '2001:db8:99::1', interface: 2 },
    ]);
    expect(r.dns).toEqual({ nameservers: ['10.99.0.53'], search: ['example.test'] });
    expect(addrs(c1, 'eth0')).toEqual(['10.99.0.5/24']);
    expect(addrs(c1, 'eth0', '-6')).toEqual(['2001:db8:99::5/64']);
    const r4 = routes(c1);
    expect(r4.find((x) => x.dst === '10.100.0.0/16')).toMatchObject({ gateway: '10.99.0.1', dev: 'eth0' });
    expect(r4.find((x) => x.dst === '10.101.0.0/16')).toMatchObject({ gateway: '10.99.0.254', metric: 50 });
    expect(routes(c1, '-6').find((x) => x.dst === 'default')).toMatchObject({ gateway: '2001:db8:99::1' });

    // CHECK, STATUS and GC go to the delegated plugin too (it implements 1.1.0); DEL last.
    expect((await cni(HOST, { CNI_COMMAND: 'CHECK', ...env }, withPrev(conf, r))).code).toBe(0);
    expect((await cni(HOST, { CNI_COMMAND: 'STATUS', CNI_PATH: env.CNI_PATH }, conf)).code).toBe(0);
    const gcConf = { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] };
    expect((await cni(HOST, { CNI_COMMAND: 'GC', CNI_PATH: env.CNI_PATH }, gcConf)).code).toBe(0);
    expect(JSON.parse(readFileSync(join(bin, 'fake-ipam.GC.in'), 'utf8'))['cni.dev/valid-attachments']).toEqual([{ containerID: 'c1', ifname: 'eth0' }]);
    expect((await cni(HOST, { CNI_COMMAND: 'DEL', ...env }, withPrev(conf, r))).code).toBe(0);
    expect(fakeCalls(bin, 'fake-ipam')).toEqual(['ADD', 'CHECK', 'VERSION', 'STATUS', 'VERSION', 'GC', 'DEL']);
    expect(link(c1, 'eth0')).toBeUndefined();
  });

  it('an IPAM failure is passed on with its code, and the plugin is called again with DEL', async () => {
    const [c1] = setup(1);
    const bin = dir('cni-bin');
    fakeIpam(bin, 'flaky', {}, { commands: ['ADD'], error: { cniVersion: '1.0.0', code: 11, msg: 'pool busy', details: 'try later' } });
    const conf = { cniVersion: '1.0.0', name: 'fakenet', type: 'pipework', bridge: 'pwcni0', ipam: { type: 'flaky' } };
    const e = expectError(await cni(HOST, { CNI_COMMAND: 'ADD', ...attachEnv(c1, 'c1'), CNI_PATH: bin }, conf), 11, /flaky \(ADD\): pool busy/);
    expect(e.details).toBe('try later');
    expect(fakeCalls(bin, 'flaky')).toEqual(['ADD', 'DEL']);
    expect(link(c1, 'eth0')).toBeUndefined();
  });

  it('ADD chained after another plugin keeps its prevResult and appends to it', async () => {
    const [c1] = setup(1);
    const conf = bridgeConf(dir('cni-ipam'));
    const prevResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'net1', sandbox: `/run/netns/${c1}` }],
      ips: [{ address: '192.0.2.9/24', interface: 0 }],
      dns: { nameservers: ['192.0.2.53'] },
    };
    const r = expectOk(await add(c1, 'c1', withPrev(conf, prevResult)));
    expect(r.interfaces.map((i: any) => i.name)).toEqual(['net1', 'pwcni0', r.interfaces[2].name, 'eth0']);
    expect(r.ips).toEqual([{ address: '192.0.2.9/24', interface: 0 }, { address: '10.66.5.2/24', gateway: '10.66.5.1', interface: 3 }]);
    expect(r.dns).toEqual({ nameservers: ['192.0.2.53'] });
  });

  it('mode macvlan: two containers on one parent reach each other; DEL removes them', async () => {
    const [c1, c2] = setup(2);
    ip(HOST, 'link', 'add', 'pwnic0', 'type', 'veth', 'peer', 'name', 'pwnic0p');
    ip(HOST, 'link', 'set', 'pwnic0', 'up');
    ip(HOST, 'link', 'set', 'pwnic0p', 'up');
    const d = dir('cni-ipam');
    const conf = { ...bridgeConf(d), mode: 'macvlan', bridge: undefined, master: 'pwnic0', macvlanMode: 'bridge' };
    const r1 = expectOk(await add(c1, 'c1', conf));
    expectOk(await add(c2, 'c2', conf));
    expect(r1.interfaces).toEqual([{ name: 'eth0', mac: link(c1, 'eth0')!.address, sandbox: `/run/netns/${c1}` }]);
    expect(r1.ips[0].interface).toBe(0);
    expect(link(c1, 'eth0')!.linkinfo?.info_kind).toBe('macvlan');
    expect(ping(c1, '10.66.5.3')).toBe(true);
    expect((await check(c1, 'c1', withPrev(conf, r1))).code).toBe(0);
    // CHECK reads the macvlan's mode back: another one asked for is a failure.
    expectError(await check(c1, 'c1', withPrev({ ...conf, macvlanMode: 'vepa' }, r1)), 999, /eth0 in \S+ is a macvlan in mode bridge, not vepa/);
    expect((await del(c1, 'c1', withPrev(conf, r1))).code).toBe(0);
    expect(link(c1, 'eth0')).toBeUndefined();
    expect(Object.values(reservations(d, 'pwnet'))).toEqual(['c2']);
    // A master that is a bridge, or absent: refused before IPAM.
    ip(HOST, 'link', 'add', 'pwbr9', 'type', 'bridge');
    expectError(await add(c1, 'c1', { ...conf, master: 'pwbr9' }), 7, /master pwbr9 is a Linux bridge: use mode bridge/);
    expectError(await add(c1, 'c1', { ...conf, master: 'pwnic9' }), 7, /master pwnic9 not found/);
    expect(Object.values(reservations(d, 'pwnet'))).toEqual(['c2']);
  });

  // Modes vlan and dummy where the kernel has them: ADD, CHECK, DEL for real in the kernel VM
  // (test/kernel/vm-tests.js: cni-vlan, cni-dummy).
  it.skipIf(HAS_VLAN)('mode vlan on a kernel without 8021q: a clear error, no reservation left', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'pwnic0', 'type', 'veth', 'peer', 'name', 'pwnic0p');
    const d = dir('cni-ipam');
    expectError(await add(c1, 'c1', { ...bridgeConf(d), mode: 'vlan', bridge: undefined, master: 'pwnic0', vlan: 10 }), 999, /cannot create vlan links/);
    expect(link(HOST, 'pwnic0.10')).toBeUndefined();
    expect(reservations(d, 'pwnet')).toEqual({});
  });

  it.skipIf(HAS_DUMMY)('mode dummy on a kernel without dummy links: a clear error, no reservation left', async () => {
    const [c1] = setup(1);
    const d = dir('cni-ipam');
    expectError(await add(c1, 'c1', { ...bridgeConf(d), mode: 'dummy', bridge: undefined }), 999, /cannot create dummy links/);
    expect(link(c1, 'eth0')).toBeUndefined();
    expect(reservations(d, 'pwnet')).toEqual({});
  });

  it('mode ipoib needs an InfiniBand parent', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'pwnic0', 'type', 'veth', 'peer', 'name', 'pwnic0p');
    const d = dir('cni-ipam');
    expectError(await add(c1, 'c1', { ...bridgeConf(d), mode: 'ipoib', bridge: undefined, master: 'pwnic0', pkey: '8001' }), 7, /not an IPoIB interface/);
    expect(reservations(d, 'pwnet')).toEqual({});
  });

  it('STATUS: ready, or code 50 when the host side or the IPAM plugin is missing; 1.1.0 only', async () => {
    setup(0);
    const d = dir('cni-ipam');
    const conf = { ...bridgeConf(d), cniVersion: '1.1.0' };
    const status = (c: object, path = SYSTEM_CNI) => cni(HOST, { CNI_COMMAND: 'STATUS', CNI_PATH: path }, c);
    const ok = await status(conf);
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toBe('');
    expectError(await status({ ...conf, mode: 'macvlan', bridge: undefined, master: 'pwnic9' }), 50, /master pwnic9 not found/);
    expectError(await status({ ...conf, ipam: { type: 'no-such-ipam' } }), 50, /no-such-ipam/);
    ip(HOST, 'link', 'add', 'pwcni0', 'type', 'veth', 'peer', 'name', 'pwcni0p');
    expectError(await status(conf), 50, /not a Linux bridge/);
    expectError(await status({ ...conf, cniVersion: '1.0.0' }), 1, /does not allow STATUS/);
  });

  it('GC: 1.1.0 only, checks cni.dev/valid-attachments; a 1.0.0-only IPAM plugin is not asked', async () => {
    setup(0);
    const conf = { ...bridgeConf(dir('cni-ipam')), cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] };
    const gc = (c: object) => cni(HOST, { CNI_COMMAND: 'GC', CNI_PATH: SYSTEM_CNI }, c);
    const ok = await gc(conf);
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toBe('');
    expectError(await gc({ ...conf, 'cni.dev/valid-attachments': [{ containerID: 1 }] }), 7, /valid-attachments/);
    expectError(await gc({ ...conf, cniVersion: '1.0.0' }), 1, /does not allow GC/);
  });

  it('starts lean: VERSION loads no netlink code; timings against `node -e 0`', async () => {
    // Which modules a VERSION call loads (a preload hook lists them at exit).
    const d = dir('cni-start');
    const hook = join(d, 'hook.js');
    const list = join(d, 'modules.txt');
    writeFileSync(hook, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, Object.keys(require.cache).join('\\n')));`);
    const r = spawnSync(process.execPath, ['-r', hook, BIN], { env: { ...process.env, CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
    expect(r.status, r.stdout).toBe(0);
    const loaded = readFileSync(list, 'utf8').split('\n').filter((f) => f !== hook);
    // Folder names only: the checkout's own path may contain these words.
    expect(loaded.some((f) => /\/(netlink|native|node-gyp-build|ipaddr\.js)\//.test(f)), loaded.join('\n')).toBe(false);
    expect(loaded.length).toBeLessThanOrEqual(6);

    // Timings: medians of N runs each, all as a runtime starts it (the executable, inherited environment).
    const N = 9;
    const time = (argv: string[], env: NodeJS.ProcessEnv, input = '') => {
      const t0 = performance.now();
      const out = spawnSync(argv[0], argv.slice(1), { env, input, stdio: ['pipe', 'ignore', 'ignore'] });
      if (out.status !== 0) throw new Error(`${argv.join(' ')} failed`);
      return performance.now() - t0;
    };
    const nodeBare = median(Array.from({ length: N }, () => time([process.execPath, '-e', '0'], process.env)));
    const version = median(Array.from({ length: N }, () => time([BIN], { ...process.env, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}')));
    setup(N);
    const ipam = dir('cni-ipam');
    const conf = bridgeConf(ipam);
    await add('pwcni1', 'warm', conf); // the bridge exists from here on
    await del('pwcni1', 'warm', conf);
    const addMs: number[] = [];
    const delMs: number[] = [];
    for (let i = 1; i <= N; i++) {
      const a = await add(`pwcni${i}`, `t${i}`, conf);
      expect(a.code, a.stdout).toBe(0);
      addMs.push(a.ms);
      delMs.push((await del(`pwcni${i}`, `t${i}`, conf)).ms);
    }
    const noIpam = { ...conf, ipam: undefined };
    const addNoIpam: number[] = [];
    for (let i = 1; i <= N; i++) {
      const a = await add(`pwcni${i}`, `v${i}`, noIpam);
      expect(a.code).toBe(0);
      addNoIpam.push(a.ms);
      await del(`pwcni${i}`, `v${i}`, noIpam);
    }
    const hostLocal = median(Array.from({ length: N }, (_, i) => {
      const env = { ...process.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `h${i}`, CNI_NETNS: '/run/netns/pwcni1', CNI_IFNAME: 'eth0', CNI_PATH: SYSTEM_CNI };
      const ms = time([`${SYSTEM_CNI}/host-local`], env, JSON.stringify(conf));
      spawnSync(`${SYSTEM_CNI}/host-local`, [], { env: { ...env, CNI_COMMAND: 'DEL' }, input: JSON.stringify(conf) });
      return ms;
    }));
    const f = (x: number) => `${x.toFixed(1)} ms`;
    console.log([
      `pipework-cni timings (median of ${N}; NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset'} in the environment):`,
      `  node -e 0                   ${f(nodeBare)}`,
      `  VERSION                     ${f(version)}`,
      `  ADD (host-local, bridge)    ${f(median(addMs))}   (via nsenter; host-local alone: ${f(hostLocal)})`,
      `  ADD (no IPAM)               ${f(median(addNoIpam))}`,
      `  DEL (host-local)            ${f(median(delMs))}`,
    ].join('\n'));
  }, 180_000);
});

/** VERSION and refused input need no host netns of their own: any netns will do (ours). */
function HOST_OR_SELF(): string {
  return '/proc/self/ns/net';
}

// ---------------------------------------------------------------------------
// (2) A real runtime: containerd + runc, `ctr run --cni`

const hasContainerd = ['containerd', 'ctr', 'runc'].every((b) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status === 0)
  && existsSync(`${SYSTEM_CNI}/host-local`) && existsSync(`${SYSTEM_CNI}/loopback`);

describe.skipIf(!hasContainerd)('pipework-cni under containerd (ctr run --cni)', () => {
  const BRIDGE = 'pwctr0';
  let ctd: Containerd | undefined;

  beforeAll(async () => {
    addNs(HOST);
    ip(HOST, 'link', 'set', 'lo', 'up');
    ctd = await startContainerd({
      hostNetns: HOST,
      conflist: (ipamDir) => ({
        cniVersion: '1.0.0',
        name: 'pwctr',
        plugins: [{
          type: 'pipework', mode: 'bridge', bridge: BRIDGE,
          ipam: { type: 'host-local', subnet: '10.66.9.0/24', gateway: '10.66.9.1', dataDir: ipamDir },
        }],
      }),
    });
  }, 120_000);

  afterAll(async () => {
    try {
      await ctd?.stop();
    } finally {
      cleanNamespaces();
    }
  }, 120_000);

  it('two containers on a pipework network ping each other; DEL on removal takes each veth off the bridge', async () => {
    const c = ctd!;
    const id = (name: string) => `${c.namespace}-${name}`;
    const added = (name: string) => c.cniLog().find((l) => l.command === 'ADD' && l.containerId === id(name));
    const c1 = c.runContainer('c1', ['/bin/busybox', 'sleep', '300']);
    const c2 = c.runContainer('c2', ['/bin/busybox', 'sleep', '300']);
    await waitFor(() => {
      for (const x of [c1, c2]) if (x.child.exitCode !== null) throw new Error(`ctr run exited early: ${x.output()}`);
      return !!added('c1') && !!added('c2');
    }, 60_000, 'CNI ADD of both containers', 50);
    const [a1, a2] = [added('c1')!, added('c2')!];
    expect(a1.code).toBe(0);
    expect(a2.code).toBe(0);
    expect(a1.netns).toMatch(/^\/proc\/\d+\/ns\/net$/);
    const ip1 = a1.ips![0].split('/')[0];
    const ip2 = a2.ips![0].split('/')[0];
    expect(Object.keys(reservations(c.ipamDir, 'pwctr')).sort()).toEqual([ip1, ip2].sort());
    expect(ports(HOST, BRIDGE)).toHaveLength(2);

    // Inside each container (no PATH without an image: busybox by path): eth0 with its address; then a ping each way.
    await waitFor(async () => (await c.ctr(['tasks', 'ls'])).split('\n').filter((l) => / RUNNING/.test(l)).length === 2, 30_000, 'both tasks RUNNING', 100);
    const inside = await c.ctr(['task', 'exec', '--exec-id', 'ipa', 'c1', '/bin/busybox', 'ip', '-4', 'addr', 'show', 'eth0']);
    expect(inside).toContain(`inet ${a1.ips![0]}`);
    expect(await pingFrom(c, 'c1', ip2)).toMatch(/2 packets transmitted, 2 packets received/);
    expect(await pingFrom(c, 'c2', ip1)).toMatch(/2 packets transmitted, 2 packets received/);

    // Removal: the task is killed, the foreground `ctr run --rm` runs CNI DEL (netns already gone) before it exits.
    for (const [name, x, ipAddr, left] of [['c2', c2, ip2, 1], ['c1', c1, ip1, 0]] as const) {
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', name]);
      await Promise.race([x.exited, new Promise((_, rej) => setTimeout(() => rej(new Error(`ctr run ${name} did not exit`)), 30_000))]);
      const dels = c.cniLog().filter((l) => l.command === 'DEL' && l.containerId === id(name));
      expect(dels.length, JSON.stringify(c.cniLog())).toBeGreaterThanOrEqual(1);
      expect(dels.every((l) => l.code === 0)).toBe(true);
      expect(ports(HOST, BRIDGE)).toHaveLength(left);
      expect(Object.keys(reservations(c.ipamDir, 'pwctr'))).not.toContain(ipAddr);
    }
    expect(reservations(c.ipamDir, 'pwctr')).toEqual({});
    console.log(`containerd: started in ${c.startupMs} ms; CNI calls (command ms / process ms): ${c.cniLog().map((l) => `${l.command} ${l.containerId} ${l.ms}/${l.processMs}`).join(', ')}`);
  }, 180_000);
});
