// Runs inside the test VM (test/kernel/init), as root in a throwaway kernel
// with the vlan, dummy, ipvlan and openvswitch modules loaded: real links
// made by our library and our CLI, read back with iproute2 (`/sbin/ip -d -j`),
// proven with busybox ping. The VM's own netns plays "host"; containers are
// named netns (/run/netns/NAME). One line per test on the console:
//   PASS <name> | FAIL <name>: <why> | SKIP <name>: <why>
// then `KERNEL-TESTS-DONE passed=N failed=M`. Lines starting with `# ` are
// diagnostics the host script echoes too.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const http = require('node:http');
const { existsSync, readFileSync } = require('node:fs');

const IP = '/sbin/ip';
// The `pipework` command as npm installs it: package.json's bin entry.
const BIN = require('/pipework/package.json').bin;
const CLI = `/pipework/${typeof BIN === 'string' ? BIN : BIN.pipework}`;
const CNI = `/pipework/${BIN['pipework-cni']}`;
const { Session, NetlinkError, PipeworkError, STEP_SIDE } = require('/pipework/dist/index.js');

// ---- helpers ----------------------------------------------------------------

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return r;
}

/** Runs a command that has to succeed; returns its stdout. */
function must(cmd, ...args) {
  const r = run(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** iproute2 in the netns (null: the VM's own, playing host). */
function ip(ns, ...args) {
  return must(IP, ...(ns ? ['-n', ns] : []), ...args);
}

function ipj(ns, ...args) {
  const out = ip(ns, '-j', ...args).trim();
  const isEmpty = (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
  return out ? JSON.parse(out, (_k, v) => (Array.isArray(v) ? v.filter((x) => !isEmpty(x)) : v)) : [];
}

const links = (ns) => ipj(ns, '-d', 'link', 'show');
const link = (ns, name) => links(ns).find((l) => l.ifname === name);
const addrs4 = (ns, dev) => (ipj(ns, '-4', 'addr', 'show', 'dev', dev)[0] || { addr_info: [] }).addr_info.map((a) => `${a.local}/${a.prefixlen}`);

/** The CLI as a user runs it: `pipework ARGS`. */
function pipework(...args) {
  const r = run(CLI, args);
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

function pipeworkOk(...args) {
  const r = pipework(...args);
  if (r.status !== 0) throw new Error(`pipework ${args.join(' ')} exited ${r.status}: ${r.err || r.out}`);
  return r;
}

function ping(ns, addr) {
  for (let i = 0; i < 3; i++) {
    if (run('nsenter', [`--net=/run/netns/${ns}`, 'ping', '-c', '1', '-W', '2', addr]).status === 0) return true;
  }
  return false;
}

function netns(...names) {
  for (const n of names) ip(null, 'netns', 'add', n);
}

/** A veth pair whose end `name` plays a NIC; its peer goes to netns `peerNs` (made here) or stays. */
function fakeNic(name, { peerNs, up = true } = {}) {
  ip(null, 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
  if (peerNs) {
    netns(peerNs);
    ip(null, 'link', 'set', `${name}p`, 'netns', peerNs);
    ip(peerNs, 'link', 'set', `${name}p`, 'up');
  } else {
    ip(null, 'link', 'set', `${name}p`, 'up');
  }
  if (up) ip(null, 'link', 'set', name, 'up');
}

/** The switch's side of a fake NIC (`<nic>p` in `ns`): a VLAN interface with an address, up, to reach tagged. */
function switchVlan(ns, nic, vid, cidr) {
  const dev = `${nic}p.${vid}`;
  ip(ns, 'link', 'add', 'link', `${nic}p`, 'name', dev, 'type', 'vlan', 'id', String(vid));
  ip(ns, 'addr', 'add', cidr, 'dev', dev);
  ip(ns, 'link', 'set', dev, 'up');
}

function check(cond, why) {
  if (!cond) throw new Error(why);
}

function eq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: got ${a}, expected ${e}`);
}

// Kernel-derived fields, not configuration (as test/helpers/kernel.ts).
const DERIVED = ['stats', 'stats64', 'valid_life_time', 'preferred_life_time', 'qdisc', 'tso_max_size', 'tso_max_segs',
  'gso_max_size', 'gso_max_segs', 'gro_max_size', 'gso_ipv4_max_size', 'gro_ipv4_max_size', 'operstate'];

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Waits (up to 10 s) until no IPv6 address in the netns is still in duplicate address detection. */
function settle(ns) {
  for (let i = 0; i < 100 && ip(ns, '-6', 'addr', 'show', 'tentative').trim(); i++) sleep(100);
}

/** Everything an attach could change in a netns, comparable between two moments (after settle()). */
function snapshot(ns) {
  settle(ns);
  // A bridge's timers (gc_timer, hello_timer...) run on their own.
  const strip = (o) => JSON.parse(JSON.stringify(o, (k, v) => (DERIVED.includes(k) || k.endsWith('_timer') ? undefined : v)));
  // One iproute2 run for four dumps (each a JSON line), one for IPv6 routes.
  const r = spawnSync(IP, [...(ns ? ['-n', ns] : []), '-j', '-d', '-batch', '-'],
    { input: 'link show\naddr show\nroute show table all\nrule show\n', encoding: 'utf8' });
  const dumps = r.stdout.trim().split('\n');
  if (r.status !== 0 || dumps.length !== 4) throw new Error(`ip -batch failed (${r.status}): ${r.stderr.trim()}`);
  const [links, addrs, routes, rules] = dumps.map((d) => JSON.parse(d));
  return { links: strip(links), addrs: strip(addrs), routes, routes6: ipj(ns, '-6', 'route', 'show', 'table', 'all'), rules };
}

/** Where two snapshots first differ, or undefined. */
function firstDiff(a, b, path = '') {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return `${path || '/'}: ${JSON.stringify(a)} -> ${JSON.stringify(b)}`;
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = firstDiff(a[k], b[k], `${path}/${k}`);
    if (d) return d;
  }
  return `${path}: differs`;
}

function sameState(before, after, where) {
  const d = firstDiff(before, after);
  if (d) throw new Error(`${where} changed: ${d}`);
}

/** Checks the attach would take these steps first (so the rollback test undoes something). */
async function planned(ns, request, ops) {
  const got = (await session.plan({ netns: ns }, request)).steps.map((st) => st.op);
  eq(got.slice(0, ops.length), ops, 'planned steps');
}

// ---- the tests ----------------------------------------------------------------

const session = new Session();
const tests = [];
const test = (name, fn) => tests.push({ name, fn });
/** Throw skip(reason) from a test to report SKIP instead of PASS. */
class Skip extends Error {}

test('veth-bridge-lib', async () => {
  netns('c1', 'c2');
  const r1 = await session.attach({ netns: 'c1' }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'], gateway: '10.66.0.1' });
  await session.attach({ netns: 'c2' }, { hostInterface: 'br1', addresses: ['10.66.0.3/24'], mac: 'U:myhost.foo.com' });
  ip(null, 'addr', 'add', '10.66.0.1/24', 'dev', 'br1');
  eq(link(null, 'br1')?.linkinfo?.info_kind, 'bridge', 'br1 kind');
  eq(r1.hostInterface, 'veth1plc1', 'host end name');
  const ports = ipj(null, 'link', 'show', 'master', 'br1').map((l) => l.ifname).sort();
  eq(ports, ['veth1plc1', 'veth1plc2'], 'bridge ports');
  const e = link('c2', 'eth1');
  eq(e?.linkinfo?.info_kind, 'veth', 'c2 eth1 kind');
  check(e.flags.includes('UP'), 'c2 eth1 is not up');
  eq(e.address, '02:72:6c:cd:9b:8d', 'c2 eth1 MAC from U:myhost.foo.com');
  eq(addrs4('c2', 'eth1'), ['10.66.0.3/24'], 'c2 addresses');
  eq(ipj('c1', 'route', 'show', 'default').map((r) => r.gateway), ['10.66.0.1'], 'c1 default route');
  check(ping('c1', '10.66.0.3'), 'c1 cannot ping c2 (10.66.0.3)');
  check(ping('c2', '10.66.0.1'), 'c2 cannot ping the bridge (10.66.0.1)');
  eq(await session.detach({ netns: 'c1' }), { action: 'deleted', kind: 'veth' }, 'detach');
  check(!link(null, 'veth1plc1'), 'the host end outlived detach');
});

test('macvlan-lib', async () => {
  netns('c3', 'c4');
  fakeNic('nicm');
  ip(null, 'link', 'set', 'nicm', 'mtu', '1450');
  await session.attach({ netns: 'c3' }, { hostInterface: 'nicm', addresses: ['10.9.0.2/24'] });
  await session.attach({ netns: 'c4' }, { hostInterface: 'nicm', addresses: ['10.9.0.3/24'], mac: '02:00:00:00:00:33' });
  const m = link('c4', 'eth1');
  eq(m?.linkinfo?.info_kind, 'macvlan', 'c4 eth1 kind');
  eq(m.linkinfo.info_data?.mode, 'bridge', 'macvlan mode');
  eq([m.mtu, m.address], [1450, '02:00:00:00:00:33'], 'c4 eth1 mtu and MAC');
  eq(ipj(null, 'link', 'show', 'type', 'macvlan'), [], 'macvlans left in the host');
  check(ping('c3', '10.9.0.3'), 'c3 cannot ping c4 over the macvlans');
});

test('vlan-cli', async () => {
  netns('c5');
  // nicv plays the NIC; its peer in "sw" has the VLAN 10 interface the container must reach, tagged.
  fakeNic('nicv', { peerNs: 'sw' });
  switchVlan('sw', 'nicv', 10, '10.1.0.1/24');
  pipeworkOk('nicv', 'c5', '10.1.0.2/24', '@10');
  const v = link(null, 'nicv.10');
  check(v, 'no nicv.10 in the host');
  eq(v.linkinfo?.info_kind, 'vlan', 'nicv.10 kind');
  eq([v.linkinfo.info_data?.id, v.linkinfo.info_data?.protocol, v.link], [10, '802.1Q', 'nicv'], 'nicv.10 id, protocol, parent');
  check(v.flags.includes('UP'), 'nicv.10 is not up');
  const m = link('c5', 'eth1');
  eq(m?.linkinfo?.info_kind, 'macvlan', 'c5 eth1 kind');
  eq(m.link_index, v.ifindex, 'c5 eth1 parent index (nicv.10)');
  check(m.link_netnsid !== undefined, 'c5 eth1 parent is not in another netns');
  check(m.flags.includes('UP'), 'c5 eth1 is not up');
  eq(addrs4('c5', 'eth1'), ['10.1.0.2/24'], 'c5 addresses');
  check(ping('c5', '10.1.0.1'), 'c5 cannot ping 10.1.0.1 on VLAN 10 behind the NIC');
});

test('vlan-unplug-cli', async () => {
  // unplug deletes a VLAN link pipework made once its last container goes
  // (the user count is kept in the link's alias): c5 (vlan-cli) and c5b on nicv.10.
  const alias = () => link(null, 'nicv.10')?.ifalias;
  eq(alias(), 'pipework:vlan-users=1', 'alias of nicv.10 as pipework created it for c5');
  netns('c5b');
  pipeworkOk('nicv', 'c5b', '10.1.0.3/24', '@10');
  eq(alias(), 'pipework:vlan-users=2', 'alias of nicv.10 with c5b too');
  pipeworkOk('unplug', 'c5');
  check(!link('c5', 'eth1'), 'eth1 still in c5 after unplug');
  eq(alias(), 'pipework:vlan-users=1', 'alias of nicv.10 after c5 is unplugged');
  pipeworkOk('unplug', 'c5b');
  check(!link(null, 'nicv.10'), 'nicv.10 outlived its last container');
});

test('vlan-lib', async () => {
  netns('c6', 'c7');
  fakeNic('nicl', { up: false });
  const r = await session.attach({ netns: 'c6' }, { hostInterface: 'nicl', vlan: '20', addresses: ['10.1.20.2/24'] });
  eq(r.containerInterface.name, 'eth1', 'container interface');
  await session.attach({ netns: 'c7' }, { hostInterface: 'nicl', vlan: '20', addresses: ['10.1.20.3/24'] });
  const vlans = links(null).filter((l) => l.linkinfo?.info_kind === 'vlan' && l.link === 'nicl');
  eq(vlans.map((l) => [l.ifname, l.linkinfo.info_data.id]), [['nicl.20', 20]], 'VLAN links on nicl (one, reused)');
  check(link(null, 'nicl').flags.includes('UP'), 'the NIC was not brought up');
  eq(link('c7', 'eth1')?.link_index, vlans[0].ifindex, 'c7 eth1 parent');
  check(ping('c6', '10.1.20.3'), 'c6 cannot ping c7 over nicl.20');
});

test('unplug-faults-vlan-lib', async () => {
  // A fault at each unplug step of a macvlan on a VLAN link pipework made
  // leaves the container and the count as they were: with two containers the
  // count drops first (undone), with the last one the VLAN link goes and takes
  // the macvlan with it (one step).
  netns('c20', 'c21');
  fakeNic('nicu', { up: false });
  for (const [c, a] of [['c20', '10.1.50.2/24'], ['c21', '10.1.50.3/24']]) await session.attach({ netns: c }, { hostInterface: 'nicu', vlan: '50', addresses: [a] });
  const faults = async (c, ops) => {
    const plan = await session.planUnplug({ netns: c });
    eq(plan.steps.map((st) => st.op), ops, `unplug steps for ${c}`);
    const before = [snapshot(null), snapshot('c20'), snapshot('c21')];
    for (let k = 0; k < ops.length; k++) {
      let err;
      await session.unplug({ netns: c }, 'eth1', { failAtStep: k }).catch((e) => { err = e; });
      check(err?.message === `injected fault at step ${k}`, `fault at step ${k}: ${err ? err.message : 'no error'}`);
      const after = [snapshot(null), snapshot('c20'), snapshot('c21')];
      ['host', 'c20', 'c21'].forEach((w, i) => sameState(before[i], after[i], `${w} after a fault at step ${k} (${ops[k]})`));
    }
    eq(await session.unplug({ netns: c }), { action: 'deleted', kind: 'macvlan' }, `unplug ${c}`);
    check(!link(c, 'eth1'), `eth1 still in ${c}`);
  };
  await faults('c20', ['vlan-release', 'delete-link']);
  eq(link(null, 'nicu.50')?.ifalias, 'pipework:vlan-users=1', 'alias of nicu.50 after c20 is unplugged');
  check(link('c21', 'eth1'), 'c21 lost eth1 when c20 was unplugged');
  await faults('c21', ['delete-vlan']);
  check(!link(null, 'nicu.50'), 'nicu.50 outlived its last container');
});

test('dummy-cli', async () => {
  netns('c8');
  pipeworkOk('dummy0', 'c8', '10.2.0.2/24');
  const d = link('c8', 'eth1');
  eq(d?.linkinfo?.info_kind, 'dummy', 'c8 eth1 kind');
  check(d.flags.includes('UP'), 'c8 eth1 is not up');
  eq(addrs4('c8', 'eth1'), ['10.2.0.2/24'], 'c8 addresses');
  eq(links(null).filter((l) => l.linkinfo?.info_kind === 'dummy').map((l) => l.ifname), [], 'dummy links in the host');
  pipeworkOk('unplug', 'c8');
  check(!link('c8', 'eth1'), 'eth1 still in c8 after unplug');
});

test('vlan-mtu-cli', async () => {
  // `@vid` on a NIC: the VLAN link copies the NIC's MTU, and is the macvlan's parent.
  netns('c40');
  fakeNic('nicw');
  ip(null, 'link', 'set', 'nicw', 'mtu', '1450');
  pipeworkOk('nicw', 'c40', '10.1.30.2/24', '@7');
  const v = link(null, 'nicw.7');
  eq([v?.linkinfo?.info_kind, v?.linkinfo?.info_data?.id, v?.mtu], ['vlan', 7, 1450], 'nicw.7 kind, id, MTU');
  eq(link('c40', 'eth1')?.link_index, v.ifindex, 'c40 eth1 parent');
  eq(link('c40', 'eth1')?.mtu, 1450, 'c40 eth1 MTU');
  pipeworkOk('unplug', 'c40');
  check(!link(null, 'nicw.7'), 'nicw.7 outlived its only container');
});

test('vlan-foreign-lib', async () => {
  // A VLAN link someone else made is used, and never deleted by unplug (it has no pipework alias).
  netns('c41');
  fakeNic('nicg');
  ip(null, 'link', 'add', 'link', 'nicg', 'name', 'nicg.20', 'type', 'vlan', 'id', '20');
  await session.attach({ netns: 'c41' }, { hostInterface: 'nicg', vlan: '20', addresses: ['10.1.31.2/24'] });
  eq(link('c41', 'eth1')?.link_index, link(null, 'nicg.20').ifindex, 'c41 eth1 parent');
  eq(await session.unplug({ netns: 'c41' }), { action: 'deleted', kind: 'macvlan' }, 'unplug');
  check(link(null, 'nicg.20'), 'unplug deleted a VLAN link pipework did not make');
});

test('dummy-lib', async () => {
  netns('c42');
  const r = await session.attach({ netns: 'c42' }, { hostInterface: 'dummy0', addresses: ['10.2.1.2/24'] });
  eq([r.containerInterface.name, link('c42', 'eth1')?.linkinfo?.info_kind], ['eth1', 'dummy'], 'c42 eth1');
  eq(addrs4('c42', 'eth1'), ['10.2.1.2/24'], 'c42 addresses');
  eq(await session.detach({ netns: 'c42' }), { action: 'deleted', kind: 'dummy' }, 'detach');
});

/** `pipework-cni` as a runtime runs it: CNI_* variables, the configuration on stdin; its JSON answer. */
function cni(command, netnsName, conf, ifname = 'eth0') {
  const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: `id-${netnsName}`, CNI_NETNS: `/run/netns/${netnsName}`, CNI_IFNAME: ifname, CNI_PATH: '/nonexistent' };
  const r = spawnSync(CNI, [], { input: JSON.stringify(conf), env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pipework-cni ${command} exited ${r.status}: ${r.stdout.trim()} ${r.stderr.trim()}`);
  return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
}

const cniConf = (extra, subnet) => ({
  cniVersion: '1.0.0', name: `net-${extra.mode}`, type: 'pipework', ...extra,
  ipam: { type: 'host-local', subnet, dataDir: '/tmp/cni-ipam' },
});

test('cni-vlan', async () => {
  // mode vlan: a macvlan on <master>.<vlan> (made for the first container, deleted with the last), tags on the wire.
  netns('c43', 'c44');
  fakeNic('nicc', { peerNs: 'swc' });
  switchVlan('swc', 'nicc', 40, '10.5.40.1/24');
  const conf = cniConf({ mode: 'vlan', master: 'nicc', vlan: 40 }, '10.5.40.0/24');
  const r = cni('ADD', 'c43', conf);
  cni('ADD', 'c44', conf);
  const v = link(null, 'nicc.40');
  eq([v?.linkinfo?.info_kind, v?.linkinfo?.info_data?.id, v?.link], ['vlan', 40, 'nicc'], 'nicc.40 kind, id, parent');
  const e = link('c43', 'eth0');
  eq([e?.linkinfo?.info_kind, e?.link_index, e?.address], ['macvlan', v.ifindex, r.interfaces[0].mac], 'c43 eth0 kind, parent, MAC as the result says');
  eq(addrs4('c43', 'eth0'), [r.ips[0].address], 'c43 addresses as the result says');
  check(ping('c43', '10.5.40.1'), 'c43 cannot ping 10.5.40.1 on VLAN 40 behind the NIC');
  cni('CHECK', 'c43', { ...conf, prevResult: r });
  cni('DEL', 'c43', { ...conf, prevResult: r });
  check(!link('c43', 'eth0'), 'eth0 still in c43 after DEL');
  check(link(null, 'nicc.40'), 'nicc.40 went while c44 still uses it');
  cni('DEL', 'c44', conf);
  check(!link(null, 'nicc.40'), 'nicc.40 outlived its last container');
  cni('DEL', 'c44', conf); // a second DEL succeeds
});

test('cni-dummy', async () => {
  netns('c45');
  const conf = cniConf({ mode: 'dummy' }, '10.5.41.0/24');
  const r = cni('ADD', 'c45', conf);
  eq(r.interfaces, [{ name: 'eth0', mac: link('c45', 'eth0')?.address, sandbox: '/run/netns/c45' }], 'result interfaces');
  eq(link('c45', 'eth0')?.linkinfo?.info_kind, 'dummy', 'c45 eth0 kind');
  eq(addrs4('c45', 'eth0'), [r.ips[0].address], 'c45 addresses as the result says');
  eq(links(null).filter((l) => l.linkinfo?.info_kind === 'dummy').map((l) => l.ifname), [], 'dummy links in the host');
  cni('DEL', 'c45', conf);
  check(!link('c45', 'eth0'), 'eth0 still in c45 after DEL');
});

/** One call of Docker's remote network driver protocol over the plugin's unix socket. */
function dockerCall(socketPath, method, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: `/${method}`, method: 'POST', headers: { 'Content-Type': 'application/vnd.docker.plugins.v1+json' } }, (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (d) => { data += d; }).on('end', () => {
        const json = data ? JSON.parse(data) : {};
        if (res.statusCode !== 200 || json.Err) reject(new Error(`${method}: ${res.statusCode} ${data}`));
        else resolve(json);
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('docker-plugin-vlan', async () => {
  // `docker network create -d pipework -o parent=nicd -o vlan=50`, as dockerd drives the plugin: the VLAN link is
  // made with the network, Join's macvlan sits on it, and the link goes with the network. Docker's part (moving
  // the interface into the sandbox, naming and addressing it, and taking it out again) is done here with iproute2.
  netns('c46');
  fakeNic('nicd', { peerNs: 'swd' });
  switchVlan('swd', 'nicd', 50, '10.6.50.1/24');
  const sock = '/run/pw-docker-plugin.sock';
  const plugin = spawn(CLI, ['docker-plugin', '--socket', sock, '--state', '/tmp/pw-docker-plugin.json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  plugin.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  try {
    for (let i = 0; !existsSync(sock); i++) {
      if (plugin.exitCode !== null || i > 300) throw new Error(`the plugin did not start: ${stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const NetworkID = 'a'.repeat(64);
    const EndpointID = 'b'.repeat(64);
    eq(await dockerCall(sock, 'Plugin.Activate', {}), { Implements: ['NetworkDriver'] }, 'Activate');
    await dockerCall(sock, 'NetworkDriver.CreateNetwork', {
      NetworkID, Options: { 'com.docker.network.generic': { parent: 'nicd', vlan: '50' } },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.6.50.0/24', Gateway: '10.6.50.1/24' }],
    });
    const v = link(null, 'nicd.50');
    eq([v?.linkinfo?.info_kind, v?.linkinfo?.info_data?.id, v?.link], ['vlan', 50, 'nicd'], 'nicd.50 kind, id, parent');
    await dockerCall(sock, 'NetworkDriver.CreateEndpoint', { NetworkID, EndpointID, Interface: { Address: '10.6.50.2/24' } });
    const joined = await dockerCall(sock, 'NetworkDriver.Join', { NetworkID, EndpointID, SandboxKey: '/run/netns/c46' });
    const src = joined.InterfaceName.SrcName;
    const m = link(null, src);
    eq([m?.linkinfo?.info_kind, m?.link], ['macvlan', 'nicd.50'], `${src} kind and parent`);
    ip(null, 'link', 'set', src, 'netns', 'c46');
    ip('c46', 'link', 'set', src, 'name', `${joined.InterfaceName.DstPrefix}0`);
    ip('c46', 'addr', 'add', '10.6.50.2/24', 'dev', 'eth0');
    ip('c46', 'link', 'set', 'eth0', 'up');
    check(ping('c46', '10.6.50.1'), 'c46 cannot ping 10.6.50.1 on VLAN 50 behind the NIC');
    // Docker takes the interface out of the sandbox before Leave: down, its SrcName again, back in the host.
    ip('c46', 'link', 'set', 'eth0', 'down');
    ip('c46', 'link', 'set', 'eth0', 'name', src);
    ip('c46', 'link', 'set', src, 'netns', '1');
    await dockerCall(sock, 'NetworkDriver.Leave', { NetworkID, EndpointID });
    check(!link(null, src), `${src} outlived Leave`);
    await dockerCall(sock, 'NetworkDriver.DeleteEndpoint', { NetworkID, EndpointID });
    await dockerCall(sock, 'NetworkDriver.DeleteNetwork', { NetworkID });
    check(!link(null, 'nicd.50'), 'nicd.50 outlived its network');
  } finally {
    plugin.kill();
  }
});

test('ipvlan-detach-lib', async () => {
  // Not a pipework form: only detach of an ipvlan made with iproute2 is ours.
  // (On a NIC of its own: the kernel refuses ipvlans on a device that has macvlans.)
  netns('c9');
  fakeNic('nici');
  ip(null, 'link', 'add', 'link', 'nici', 'name', 'ipv0', 'type', 'ipvlan', 'mode', 'l2');
  ip(null, 'link', 'set', 'ipv0', 'netns', 'c9');
  ip('c9', 'link', 'set', 'ipv0', 'name', 'eth1');
  eq(link('c9', 'eth1')?.linkinfo?.info_kind, 'ipvlan', 'c9 eth1 kind');
  eq(await session.detach({ netns: 'c9' }), { action: 'deleted', kind: 'ipvlan' }, 'detach');
  check(!link('c9', 'eth1'), 'eth1 still in c9');
});

test('kind-decoders-lib', async () => {
  // netlink/kinds' IFLA_INFO_DATA decoders against `ip -d -j link show`, for the kinds the host kernel cannot make.
  const { openSync, closeSync } = require('node:fs');
  const { RtnlSocket } = require('/pipework/dist/netlink/socket.js');
  const { dumpLinks, parseLink } = require('/pipework/dist/netlink/link.js');
  const { kindData } = require('/pipework/dist/netlink/kinds/index.js');
  netns('kd');
  for (const n of ['kd0', 'kd1']) ip('kd', 'link', 'add', n, 'type', 'dummy');
  ip('kd', 'link', 'add', 'link', 'kd0', 'name', 'kd0.10', 'type', 'vlan', 'id', '10');
  ip('kd', 'link', 'add', 'link', 'kd0', 'name', 'kd0.20', 'type', 'vlan', 'protocol', '802.1ad', 'id', '20', 'reorder_hdr', 'off', 'loose_binding', 'on');
  ip('kd', 'link', 'add', 'link', 'kd0', 'name', 'mv0', 'type', 'macvlan', 'mode', 'private');
  // ipvlans on a lower with no macvlans (the kernel refuses both on one device).
  ip('kd', 'link', 'add', 'link', 'kd1', 'name', 'iv0', 'type', 'ipvlan', 'mode', 'l2');
  ip('kd', 'link', 'add', 'link', 'kd1', 'name', 'iv1', 'type', 'ipvlan', 'mode', 'l3', 'private');
  ip('kd', 'link', 'add', 'link', 'kd1', 'name', 'iv2', 'type', 'ipvlan', 'mode', 'l3s', 'vepa');
  const shown = new Map(links('kd').map((l) => [l.ifname, (l.linkinfo && l.linkinfo.info_data) || {}]));
  const fd = openSync('/run/netns/kd', 'r');
  const sock = RtnlSocket.open(fd);
  try {
    let compared = 0;
    for (const l of (await sock.request(dumpLinks())).map(parseLink)) {
      if (!['vlan', 'macvlan', 'ipvlan'].includes(l.kind)) continue;
      const ours = kindData(l, l.kind);
      const shown1 = shown.get(l.name);
      // ip's JSON gives an ipvlan's flags as a key set true (private, vepa or bridge), its text as the word.
      const theirs = l.kind === 'ipvlan' ? { ...shown1, flags: ['private', 'vepa', 'bridge'].find((k) => shown1[k] === true) } : shown1;
      const picked = Object.fromEntries(Object.keys(ours).map((k) => [k, k in theirs ? theirs[k] : ours[k] === false ? false : undefined]));
      eq(ours, picked, `${l.name} (${l.kind}) decoded`);
      compared++;
    }
    eq(compared, 6, 'links compared');
    eq(kindData((await sock.request(dumpLinks())).map(parseLink).find((l) => l.name === 'kd0.20'), 'vlan'),
      { id: 20, protocol: '802.1ad', flags: ['LOOSE_BINDING'] }, 'kd0.20');
  } finally {
    sock.close();
    closeSync(fd);
  }
});

let ovsStarted = false;
function startOvs() {
  if (existsSync('/etc/ovs-missing')) throw new Skip(readFileSync('/etc/ovs-missing', 'utf8').trim());
  if (!link(null, 'ovs-system') && !existsSync('/sys/module/openvswitch')) throw new Skip('the openvswitch module is not loaded');
  const log = (d) => `--log-file=/var/log/openvswitch/${d}.log`;
  must('ovsdb-tool', 'create', '/etc/openvswitch/conf.db', '/usr/share/openvswitch/vswitch.ovsschema');
  must('ovsdb-server', '/etc/openvswitch/conf.db', '--remote=punix:/var/run/openvswitch/db.sock', '--pidfile', '--detach', '--no-chdir', log('ovsdb-server'));
  must('ovs-vsctl', '--no-wait', 'init');
  must('ovs-vswitchd', '--pidfile', '--detach', '--no-chdir', log('ovs-vswitchd'));
  ovsStarted = true;
}

test('ovs', async () => {
  const t = Date.now();
  startOvs();
  console.log(`# ovs: ovsdb-server and ovs-vswitchd up in ${Date.now() - t} ms`);
  netns('c10', 'c11');
  pipeworkOk('ovsbr0', 'c10', '10.3.0.2/24', '@5');
  pipeworkOk('ovsbr0', 'c11', '10.3.0.3/24', '@5');
  must('ovs-vsctl', 'br-exists', 'ovsbr0');
  eq(must('ovs-vsctl', 'get', 'Bridge', 'ovsbr0', 'datapath_type').trim(), '""', 'datapath type (default: system)');
  eq(link(null, 'ovsbr0')?.linkinfo?.info_kind, 'openvswitch', 'ovsbr0 kind');
  eq(must('ovs-vsctl', 'list-ports', 'ovsbr0').trim().split('\n'), ['veth1plc10', 'veth1plc11'], 'ports');
  eq(must('ovs-vsctl', 'get', 'Port', 'veth1plc10', 'tag').trim(), '5', 'port tag');
  eq(must('ovs-vsctl', 'get', 'Interface', 'veth1plc10', 'external_ids:pipework.vlan').trim(), '"5"', 'external id pipework.vlan');
  const dp = must('ovs-dpctl', 'show');
  check(/^system@ovs-system:/m.test(dp) && /port \d+: veth1plc10\b/.test(dp), `kernel datapath lacks the port: ${dp.replace(/\n/g, ' | ')}`);
  eq(link('c10', 'eth1')?.linkinfo?.info_kind, 'veth', 'c10 eth1 kind');
  eq(addrs4('c10', 'eth1'), ['10.3.0.2/24'], 'c10 addresses');
  check(ping('c10', '10.3.0.3'), 'c10 cannot ping c11 through the OVS kernel datapath');
  pipeworkOk('unplug', 'c10');
  check(!link('c10', 'eth1') && !link(null, 'veth1plc10'), 'veth still there after unplug');
  eq(must('ovs-vsctl', 'list-ports', 'ovsbr0').trim().split('\n'), ['veth1plc11'], 'ports after unplug');
});

test('rollback-ovs-lib', async () => {
  // The kernel refuses the IPv6 address (IPv6 disabled in c14) after the OVS
  // bridge, the veth and its tagged port exist: all three must go.
  if (!ovsStarted) throw new Skip('OVS did not start (see the ovs test)');
  netns('c14');
  must('nsenter', '--net=/run/netns/c14', 'sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1');
  const req = { hostInterface: 'ovsbr1', vlan: '7', addresses: ['2001:db8::2/64'] };
  await planned('c14', req, ['create-ovs-bridge', 'create-veth', 'ovs-add-port', 'add-address']);
  const ovs = () => must('ovs-vsctl', 'show').replace(/[0-9a-f-]{36}/g, 'UUID');
  const before = [snapshot(null), snapshot('c14'), ovs()];
  let err;
  try {
    await session.attach({ netns: 'c14' }, req);
  } catch (e) {
    err = e;
  }
  check(err instanceof NetlinkError && err.code === 'EACCES', `expected EACCES, got ${err ? `${err.name}: ${err.message}` : 'success'}`);
  console.log(`# rollback-ovs-lib: ${err.message}`);
  const after = [snapshot(null), snapshot('c14'), ovs()];
  sameState(before[2], after[2], 'ovs-vsctl show');
  sameState(before[0], after[0], 'host');
  sameState(before[1], after[1], 'container');
});

test('rollback-vlan-kernel-refuses-lib', async () => {
  // The kernel refuses a second VLAN 40 on nicr (vl40 has it): nicr, down before,
  // was brought up for the VLAN and must be down again.
  netns('c12');
  fakeNic('nicr', { peerNs: 'swr', up: false });
  ip(null, 'link', 'add', 'link', 'nicr', 'name', 'vl40', 'type', 'vlan', 'id', '40');
  await planned('c12', { hostInterface: 'nicr', vlan: '40' }, ['host-link-up', 'create-vlan', 'create-macvlan']);
  const host = snapshot(null);
  const guest = snapshot('c12');
  let err;
  try {
    await session.attach({ netns: 'c12' }, { hostInterface: 'nicr', vlan: '40', addresses: ['10.4.0.2/24'] });
  } catch (e) {
    err = e;
  }
  check(err instanceof NetlinkError, `expected a NetlinkError, got ${err ? `${err.name}: ${err.message}` : 'success'}`);
  eq([err.code, err.operation], ['EEXIST', 'RTM_NEWLINK nicr.40'], 'refusal');
  console.log(`# rollback-vlan-kernel-refuses-lib: ${err.message}`);
  sameState(host, snapshot(null), 'host');
  sameState(guest, snapshot('c12'), 'container');
});

test('rollback-name-collision-cli', async () => {
  // The container has an eth1 already: the macvlan is refused after nicr came
  // up and nicr.30 was made; both undone.
  netns('c13');
  ip('c13', 'link', 'add', 'eth1', 'type', 'dummy');
  await planned('c13', { hostInterface: 'nicr', vlan: '30' }, ['host-link-up', 'create-vlan', 'create-macvlan']);
  const host = snapshot(null);
  const guest = snapshot('c13');
  const r = pipework('nicr', 'c13', '10.6.0.2/24', '@30');
  eq(r.status, 1, `exit status (stderr: ${r.err})`);
  check(/exists/i.test(r.err), `unexpected message: ${r.err}`);
  console.log(`# rollback-name-collision-cli: ${r.err}`);
  sameState(host, snapshot(null), 'host');
  sameState(guest, snapshot('c13'), 'container');
});

test('rollback-new-bridge-lib', async () => {
  // The veth's container end collides with c13's eth1: the bridge this attach created goes too.
  await planned('c13', { hostInterface: 'br9' }, ['create-bridge', 'create-veth']);
  const host = snapshot(null);
  const guest = snapshot('c13');
  let err;
  try {
    await session.attach({ netns: 'c13' }, { hostInterface: 'br9', addresses: ['10.7.0.2/24'] });
  } catch (e) {
    err = e;
  }
  check(err instanceof NetlinkError && err.code === 'EEXIST', `expected EEXIST, got ${err ? `${err.name}: ${err.message}` : 'success'}`);
  sameState(host, snapshot(null), 'host');
  sameState(guest, snapshot('c13'), 'container');
});

test('refusals-before-the-kernel', async () => {
  // Checked by us before any change: VLAN ids out of 1-4094 and a VLAN on a bridge.
  for (const [req, text] of [
    [{ hostInterface: 'nicr', vlan: '4095' }, 'Invalid VLAN id'],
    [{ hostInterface: 'br1', vlan: '10' }, 'VLAN configuration currently unsupported for Linux bridge.'],
  ]) {
    const host = snapshot(null);
    let err;
    try {
      await session.attach({ netns: 'c13' }, req);
    } catch (e) {
      err = e;
    }
    check(err instanceof PipeworkError && err.message.includes(text), `${JSON.stringify(req)}: ${err ? err.message : 'accepted'}`);
    sameState(host, snapshot(null), 'host');
  }
});

// Kinds of attach step a fault was injected at here, and kinds undone after a fault at a later step.
const vmFaulted = new Set();
const vmUndone = new Set();

/** A fault at every step of the attach: host, container (and `extra()`, e.g. ovsdb rows) exactly as before each time. */
async function faultEveryStep(ns, request, extra = () => null) {
  const ops = (await session.plan({ netns: ns }, request)).steps.map((st) => st.op);
  const before = [snapshot(null), snapshot(ns), extra()];
  for (let k = 0; k < ops.length; k++) {
    vmFaulted.add(ops[k]);
    ops.slice(0, k).forEach((op) => vmUndone.add(op));
    let err;
    await session.attach({ netns: ns }, request, { failAtStep: k }).catch((e) => { err = e; });
    check(err?.message === `injected fault at step ${k}`, `fault at step ${k} (${ops[k]}): ${err ? err.message : 'no error'}`);
    const after = [snapshot(null), snapshot(ns), extra()];
    ['host', ns, 'ovsdb'].forEach((w, i) => sameState(before[i], after[i], `${w} after a fault at step ${k} (${ops[k]})`));
  }
  return ops;
}

test('faults-every-step-vlan-lib', async () => {
  // A NIC that is down: it comes up for the VLAN link, which is created, then the macvlan on it.
  netns('c30', 'c31');
  fakeNic('nicf', { peerNs: 'swf', up: false });
  const req = (a) => ({ hostInterface: 'nicf', vlan: '60', addresses: [a], gateway: '10.1.60.1' });
  eq((await faultEveryStep('c30', req('10.1.60.2/24'))).slice(0, 3), ['host-link-up', 'create-vlan', 'create-macvlan'], 'first steps');
  await session.attach({ netns: 'c30' }, req('10.1.60.2/24'));
  eq(link(null, 'nicf.60')?.ifalias, 'pipework:vlan-users=1', 'alias of nicf.60');
  // A second container on the VLAN link pipework made: its user count goes up, and back down at each fault.
  eq((await faultEveryStep('c31', req('10.1.60.3/24'))).slice(0, 2), ['vlan-user', 'create-macvlan'], 'first steps of the second');
  eq(link(null, 'nicf.60')?.ifalias, 'pipework:vlan-users=1', 'alias of nicf.60 after the faults');
  await session.attach({ netns: 'c31' }, req('10.1.60.3/24'));
  eq(link(null, 'nicf.60')?.ifalias, 'pipework:vlan-users=2', 'alias of nicf.60 with both');
  check(ping('c31', '10.1.60.2'), 'c31 cannot ping c30 over the VLAN');
});

test('faults-every-step-dummy-lib', async () => {
  netns('c32');
  eq((await faultEveryStep('c32', { hostInterface: 'dummy7', addresses: ['10.2.7.2/24'], mac: '02:00:00:00:07:02' }))[0], 'create-dummy', 'first step');
  await session.attach({ netns: 'c32' }, { hostInterface: 'dummy7', addresses: ['10.2.7.2/24'], mac: '02:00:00:00:07:02' });
  eq(link('c32', 'eth1')?.address, '02:00:00:00:07:02', 'c32 eth1 MAC');
});

test('faults-every-step-new-ovs-bridge-lib', async () => {
  if (!ovsStarted) throw new Skip('OVS did not start (see the ovs test)');
  netns('c33');
  const rows = () => ['Bridge', 'Port', 'Interface'].map((t) => must('ovs-vsctl', '--format=json', '--columns=name', 'list', t)).join('\n');
  const ops = await faultEveryStep('c33', { hostInterface: 'ovsbr7', vlan: '9', addresses: ['10.3.7.2/24'] }, rows);
  eq(ops.slice(0, 3), ['create-ovs-bridge', 'create-veth', 'ovs-add-port'], 'first steps');
});

// ---- killed (SIGKILL) right after each step, then --converge: a clean run's state (test/e2e/converge.test.ts for the other kinds)

/**
 * The state without what differs between two equal runs: random MACs,
 * ifindexes (links are made anew each run), and the order of routes (links
 * come up in another order after a kill).
 */
function comparable(state) {
  const sorted = (list) => [...list].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const text = JSON.stringify(state, (k, v) => (['ifindex', 'link_index', 'bridge_id', 'root_id'].includes(k) ? undefined
    : ['routes', 'routes6'].includes(k) ? sorted(v) : v));
  return JSON.parse(text.replace(/"(address|permaddr)":"[0-9a-f:]{17}"/g, (m, k) => (m.includes('"02:00:00') ? m : `"${k}":"<mac>"`))
    .replace(/fe80::[0-9a-f:]+/g, 'fe80::<from mac>'));
}

/** pipework ARGS, killed by SIGKILL right after step k (the test hook). */
function killedAfter(k, args) {
  const r = spawnSync(CLI, args, { encoding: 'utf8', env: { ...process.env, PIPEWORK_TEST_KILL_AFTER_STEP: String(k) } });
  check(r.signal === 'SIGKILL', `pipework ${args.join(' ')} killed after step ${k}: ${r.signal ?? `exit ${r.status}`} ${r.stderr}`);
}

/**
 * For each step: fresh(), the CLI (`args`) killed after it, then the same
 * attach (`request`, through the library: no process to start in this slow
 * VM) with converge: host and guest as after a clean run; once more: unchanged.
 */
async function killAfterEachStep(ns, args, request, fresh) {
  fresh();
  const steps = (await session.plan({ netns: ns }, request)).steps.map((st) => st.op);
  await session.attach({ netns: ns }, request);
  const want = comparable([snapshot(null), snapshot(ns)]);
  for (let k = 0; k < steps.length; k++) {
    fresh();
    killedAfter(k, args);
    const r = await session.attach({ netns: ns }, request, { converge: true });
    check(['created', 'repaired', 'unchanged'].includes(r.status), `status after a kill after step ${k}: ${r.status}`);
    const now = [snapshot(null), snapshot(ns)];
    sameState(want, comparable(now), `state after a kill after step ${k} (${steps[k]}) and converge`);
    eq((await session.attach({ netns: ns }, request, { converge: true })).status, 'unchanged', `status of a second converge (step ${k})`);
    sameState(now, [snapshot(null), snapshot(ns)], `state after a second converge (step ${k})`);
  }
  return steps;
}

const renew = (ns) => { run(IP, ['netns', 'del', ns]); netns(ns); };

test('converge-after-kill-vlan-cli', async () => {
  // The first container makes the VLAN link (down NIC brought up); a second one counts itself on it.
  fakeNic('nick', { up: false });
  const fresh1 = () => {
    run(IP, ['link', 'del', 'nick.70']);
    ip(null, 'link', 'set', 'nick', 'down');
    renew('c50');
  };
  const req = (a) => ({ hostInterface: 'nick', vlan: '70', addresses: [a], gateway: '10.1.70.1' });
  eq((await killAfterEachStep('c50', ['nick', 'c50', '10.1.70.2/24@10.1.70.1', '@70'], req('10.1.70.2/24'), fresh1)).slice(0, 3),
    ['host-link-up', 'create-vlan', 'create-macvlan'], 'first steps of the first');
  eq(link(null, 'nick.70')?.ifalias, 'pipework:vlan-users=1', 'alias with the first');
  const steps = await killAfterEachStep('c51', ['nick', 'c51', '10.1.70.3/24@10.1.70.1', '@70'], req('10.1.70.3/24'), () => {
    renew('c51');
    ip(null, 'link', 'set', 'nick.70', 'alias', 'pipework:vlan-users=1');
  });
  eq(steps.slice(0, 2), ['vlan-user', 'create-macvlan'], 'the second counts itself first');
  eq(link(null, 'nick.70')?.ifalias, 'pipework:vlan-users=2', 'alias with both');
});

test('converge-after-kill-dummy-cli', async () => {
  await killAfterEachStep('c52', ['dummy9', 'c52', '10.2.9.2/24@10.2.9.1', '02:00:00:00:09:02'],
    { hostInterface: 'dummy9', addresses: ['10.2.9.2/24'], gateway: '10.2.9.1', mac: '02:00:00:00:09:02' }, () => renew('c52'));
});

test('gc-vlan-cli', async () => {
  // Two containers on a VLAN link pipework made; one dies without unplug: the link stays. Both gone: gc removes it.
  fakeNic('nicz');
  netns('c53', 'c54');
  pipeworkOk('nicz', 'c53', '10.1.80.2/24', '@80');
  pipeworkOk('nicz', 'c54', '10.1.80.3/24', '@80');
  // A VLAN link pipework did not make, with no user: never a candidate.
  ip(null, 'link', 'add', 'link', 'nicz', 'name', 'nicz.81', 'type', 'vlan', 'id', '81');
  ip(null, 'netns', 'del', 'c53');
  check(!pipeworkOk('gc', '--dry-run').out.includes('nicz.80'), 'gc --dry-run lists nicz.80 while c54 is still on it');
  ip(null, 'netns', 'del', 'c54');
  // Leftovers of earlier tests in this VM may be listed too: each is compared as removed.
  const before = snapshot(null);
  const listed = pipeworkOk('gc', '--dry-run').out.split('\n');
  check(listed.includes('ip link del dev nicz.80'), `gc --dry-run once both are gone: ${listed.join('; ')}`);
  check(!listed.some((l) => l.includes('nicz.81')), 'gc --dry-run lists a VLAN link it did not make');
  sameState(before, snapshot(null), 'host after gc --dry-run');
  eq(pipeworkOk('gc').out.split('\n'), listed, 'gc removes what --dry-run listed');
  const gone = new Set(listed.map((l) => /^ip link del dev (\S+)$/.exec(l)?.[1]).filter(Boolean));
  check(!link(null, 'nicz.80') && link(null, 'nicz.81'), 'nicz.80 should be gone, nicz.81 (not ours) kept');
  before.links = before.links.filter((l) => !gone.has(l.ifname));
  before.addrs = before.addrs.filter((l) => !gone.has(l.ifname));
  before.routes = before.routes.filter((r) => !gone.has(r.dev));
  before.routes6 = before.routes6.filter((r) => !gone.has(r.dev));
  const after = snapshot(null);
  after.routes = after.routes.filter((r) => !gone.has(r.dev));
  sameState(before, after, 'host after gc (but what it removed)');
  eq(pipeworkOk('gc').out, '', 'a second gc');
});

test('every-step-kind-faulted-in-the-vm', async () => {
  // test/integration/rollback.test.ts enumerates every kind (STEP_SIDE) and leaves these to the VM.
  for (const op of ['host-link-up', 'create-vlan', 'vlan-user', 'create-dummy', 'create-macvlan']) {
    check(op in STEP_SIDE, `${op} is no step kind any more`);
    check(vmFaulted.has(op), `no fault injected at ${op}`);
    check(vmUndone.has(op), `${op} never undone after a later fault`);
  }
});

// ---- runner -----------------------------------------------------------------

(async () => {
  let passed = 0;
  let failed = 0;
  for (const { name, fn } of tests) {
    const t = Date.now();
    try {
      await fn();
      passed++;
      console.log(`PASS ${name} (${Date.now() - t} ms)`);
    } catch (e) {
      if (e instanceof Skip) {
        console.log(`SKIP ${name}: ${e.message}`);
        continue;
      }
      failed++;
      console.log(`FAIL ${name}: ${String(e && e.message).replace(/\n/g, ' | ')}`);
    }
  }
  if (failed) {
    const dmesg = run('dmesg', []).stdout.trim().split('\n').slice(-15);
    for (const l of dmesg) console.log(`# dmesg: ${l}`);
  }
  session.close();
  console.log(`# uptime ${readFileSync('/proc/uptime', 'utf8').split(' ')[0]} s`);
  console.log(`KERNEL-TESTS-DONE passed=${passed} failed=${failed}`);
})().catch((e) => {
  console.log(`FAIL runner: ${e && e.stack}`);
  process.exitCode = 1;
});
