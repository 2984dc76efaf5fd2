// `pipework daemon`, as real processes: started by the test (socket in a
// private directory), stopped by PID. The API's operations with the kernel
// state read back; CNI calls through the daemon answering exactly what the
// pipework-cni binary answers; health and metrics; bad HTTP, a non-root
// peer, a socket path taken, SIGKILL mid-ADD and SIGTERM with work in flight;
// fds and sockets flat over many ADD/DEL pairs. Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/daemon.test.ts
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../support/daemons/dockerd';
import { waitFor } from '../support/daemons/helpers';
import { PipeworkProcess, containerPid, ipv4Of, portsOf, post } from './docker/helpers';
import { SYSTEM_CNI, addrs, cni, ipj, link, reservations, sh } from './cni/harness';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/daemon.test.ts starts daemons and changes links: only inside scripts/in-netns.js');
}

const dir = mkdtempSync(join(tmpdir(), 'pw-daemon-'));
const SOCKET = join(dir, 'run', 'pipework.sock');
const DATA = join(dir, 'ipam');
const HOST = `/proc/${process.pid}/ns/net`;
let daemon: PipeworkProcess;
let starts = 0;

async function startDaemon(args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<PipeworkProcess> {
  const socket = SOCKET;
  const p = new PipeworkProcess(['daemon', '--socket', socket, ...args], join(dir, `daemon-${++starts}.log`), env);
  await waitFor(async () => {
    p.check();
    return existsSync(socket) && (await get(socket, '/v1/health').catch(() => undefined))?.status === 200;
  }, 15_000, 'the daemon socket');
  return p;
}

const get = (socket: string, path: string) => post(socket, path, undefined, 'GET');
const api = (path: string, body: unknown, socket = SOCKET) => post(socket, path, JSON.stringify(body));

/** A CNI call through the daemon, as the shim makes it. */
async function viaDaemon(env: Record<string, string>, config: unknown, socket = SOCKET): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await api('/v1/cni', { env, stdin: typeof config === 'string' ? config : JSON.stringify(config) }, socket);
  expect(r.status, r.text).toBe(200);
  return r.json;
}

/**
 * Raw bytes to the socket; everything the daemon sends back until it closes
 * the connection (a refused body may be cut off before all of it is written:
 * EPIPE then, after the answer).
 */
function raw(bytes: string | Buffer, socket = SOCKET): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(socket);
    let out = '';
    s.setEncoding('utf8').on('data', (d: string) => { out += d; });
    s.on('error', () => undefined);
    s.on('close', () => resolve(out));
    s.write(bytes);
  });
}

const netns = (name: string) => { sh('ip', 'netns', 'add', name); return `/run/netns/${name}`; };
const fdsOf = (pid: number) => readdirSync(`/proc/${pid}/fd`).map((f) => { try { return readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return 'gone'; } });

/** A host-local network on bridge br, its reservations in DATA. */
const bridgeConf = (name: string, br: string, subnet: string, ipamType = 'host-local') => ({
  cniVersion: '1.0.0', name, type: 'pipework', bridge: br,
  ipam: { type: ipamType, dataDir: DATA, ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
});

beforeAll(async () => {
  mkdirSync(DATA);
  daemon = await startDaemon();
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  if (process.env.PW_SHOW_LOG) console.log(daemon?.output());
  for (const l of ['brpwd', 'brpwc', 'brpwk', 'brpws', 'brpwt', 'brpwe']) spawnSync('ip', ['link', 'del', l], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('pipework daemon', () => {
  it('--help and bad flags; the socket is mode 0600, owned by root; health answers', async () => {
    const help = spawnSync(process.execPath, ['bin/pipework.js', 'daemon', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pipework daemon \[--socket PATH\]/);
    const bad = spawnSync(process.execPath, ['bin/pipework.js', 'daemon', '--bogus'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe('Unexpected argument: --bogus (see pipework daemon --help)');
    const st = statSync(SOCKET);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(0);
    const h = await get(SOCKET, '/v1/health');
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({ status: 'ok', pid: daemon.pid, inFlight: 0 });
  });

  it('started by its launcher, the daemon runs with a 1 MiB young generation (RSS kept flat)', async () => {
    const socket = join(dir, 'launched.sock');
    const launched = spawn('bin/pipework.js', ['daemon', '--socket', socket, '-q'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => launched.once('exit', resolve));
    try {
      await waitFor(() => existsSync(socket), 15_000, 'the launched daemon');
      expect(readFileSync(`/proc/${launched.pid}/cmdline`, 'utf8').split('\0').filter(Boolean)).toEqual(
        ['node', '--max-semi-space-size=1', 'bin/pipework.js', 'daemon', '--socket', socket, '-q']);
    } finally {
      launched.kill('SIGTERM');
    }
    expect(await exited).toBe(143);
    expect(existsSync(socket)).toBe(false);
  });

  it('attach, plan, route, rule and detach: each changes the kernel as the CLI would', async () => {
    const path = netns('pwd1');
    const guest = { netns: 'pwd1' };
    const a = await api('/v1/attach', { guest, request: { hostInterface: 'brpwd', addresses: ['10.61.0.2/24'], gateway: '10.61.0.1' } });
    expect(a.status, a.text).toBe(200);
    expect(a.json).toMatchObject({ guest: 'pwd1', containerInterface: { name: 'eth1' }, hostInterface: 'veth1plpwd1', addresses: ['10.61.0.2/24'], gateway: '10.61.0.1' });
    expect(addrs(path, 'eth1')).toEqual(['10.61.0.2/24']);
    expect(ipj<any[]>(path, 'route', 'show', 'default')[0]).toMatchObject({ gateway: '10.61.0.1', dev: 'eth1' });
    expect(link(HOST, 'veth1plpwd1')?.master).toBe('brpwd');

    const plan = await api('/v1/plan', { guest, request: { hostInterface: 'brpwd', containerInterface: 'eth2', addresses: ['10.61.0.3/24'] } });
    expect(plan.status).toBe(200);
    const dryRun = spawnSync(process.execPath, ['bin/pipework.js', '--dry-run', 'brpwd', '-i', 'eth2', 'pwd1', '10.61.0.3/24'], { encoding: 'utf8' });
    expect(dryRun.status).toBe(0);
    expect(plan.json.commands).toEqual(dryRun.stdout.trimEnd().split('\n'));
    expect(plan.json.commands[0]).toMatch(/^ip link add veth2plpwd1 .*peer name eth2 /);
    expect(link(path, 'eth2')).toBeUndefined(); // planned, not made

    expect((await api('/v1/route', { guest, args: ['add', '10.99.0.0/16', 'via', '10.61.0.254'] })).status).toBe(200);
    expect(ipj<any[]>(path, 'route', 'show', '10.99.0.0/16')[0]).toMatchObject({ gateway: '10.61.0.254', dev: 'eth1' });
    expect((await api('/v1/rule', { guest, args: ['add', 'from', '10.61.0.2', 'table', '100'] })).status).toBe(200);
    expect(ipj<any[]>(path, 'rule', 'show').find((r) => r.table === '100')).toMatchObject({ src: '10.61.0.2' });

    const d = await api('/v1/detach', { guest, containerInterface: 'eth1', unplug: true });
    expect(d.status).toBe(200);
    expect(d.json).toMatchObject({ action: 'deleted' });
    expect(link(path, 'eth1')).toBeUndefined();
    expect(link(HOST, 'veth1plpwd1')).toBeUndefined();

    // Refused by pipework's checks: 400 with its message; nothing made.
    const bad = await api('/v1/attach', { guest, request: { hostInterface: 'brpwd', addresses: ['10.61.0.300/24'] } });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/10\.61\.0\.300/);
    expect(link(path, 'eth1')).toBeUndefined();
    const noGuest = await api('/v1/attach', { guest: { fd: 3 }, request: {} });
    expect(noGuest.status).toBe(400);
    expect(noGuest.json.error).toBe('guest must be one of {"pid": N}, {"netns": "NAME"}, {"path": "/absolute/path"}');
    sh('ip', 'netns', 'del', 'pwd1');
  });

  it('batch: lines in --batch syntax, run in the daemon, with what the CLI prints', async () => {
    const p2 = netns('pwd2');
    const p3 = netns('pwd3');
    const r = await api('/v1/batch', { lines: ['brpwd pwd2 10.61.1.2/24', '# a comment', 'brpwd -i eth3 pwd3 10.61.1.3/24', 'brpwd pwd2 not-an-address'] });
    expect(r.status).toBe(200);
    expect(r.json.exitCode).toBe(1);
    expect(r.json.stderr).toMatch(/^line 4: .*not-an-address/m);
    expect(r.json.stderr).toMatch(/^2 done, 1 failed, in [\d.]+ s$/m);
    expect(addrs(p2, 'eth1')).toEqual(['10.61.1.2/24']);
    expect(addrs(p3, 'eth3')).toEqual(['10.61.1.3/24']);
    const u = await api('/v1/batch', { lines: 'pwd2\npwd3 -i eth3\n', unplug: true, json: true });
    expect(u.json.exitCode).toBe(0);
    expect(u.json.stdout.trim().split('\n').map((l: string) => JSON.parse(l).action)).toEqual(['deleted', 'deleted']);
    expect(link(p2, 'eth1')).toBeUndefined();
    expect(link(p3, 'eth3')).toBeUndefined();
    sh('ip', 'netns', 'del', 'pwd2');
    sh('ip', 'netns', 'del', 'pwd3');
  });

  it('CNI ADD, CHECK, DEL through the daemon answer byte for byte what pipework-cni answers', async () => {
    const path = netns('pwc1');
    const env = { CNI_CONTAINERID: 'ctr-c1', CNI_NETNS: path, CNI_IFNAME: 'eth0', CNI_PATH: SYSTEM_CNI };
    // static IPAM and a fixed MAC: the same call gives the same result whoever runs it.
    const conf = {
      cniVersion: '1.0.0', name: 'pwc', type: 'pipework', bridge: 'brpwc', mac: '02:00:00:61:02:05',
      ipam: { type: 'static', addresses: [{ address: '10.61.2.5/24', gateway: '10.61.2.1' }], routes: [{ dst: '0.0.0.0/0' }] },
    };
    const both = async (cmd: string, config: unknown, extra: Record<string, string> = {}) => {
      const node = await cni(HOST, { ...env, ...extra, CNI_COMMAND: cmd }, config);
      const viaD = await viaDaemon({ ...env, ...extra, CNI_COMMAND: cmd }, config);
      return { node, viaD };
    };
    // ADD by the plugin, DEL, then ADD by the daemon: the same result.
    const node = await cni(HOST, { ...env, CNI_COMMAND: 'ADD' }, conf);
    expect(node.code, node.stdout).toBe(0);
    expect((await cni(HOST, { ...env, CNI_COMMAND: 'DEL' }, conf)).code).toBe(0);
    expect(link(path, 'eth0')).toBeUndefined();
    const added = await viaDaemon({ ...env, CNI_COMMAND: 'ADD' }, conf);
    // The same but for the veth host end's MAC, which the kernel picks at random: the one it has now.
    const hostEnd = (stdout: string) => JSON.parse(stdout).interfaces[1] as { name: string; mac: string };
    expect(hostEnd(added.stdout).mac).toBe(link(HOST, hostEnd(added.stdout).name)?.address);
    const sameButMac = node.stdout.replace(hostEnd(node.stdout).mac, hostEnd(added.stdout).mac);
    expect(added).toEqual({ exitCode: 0, stdout: sameButMac, stderr: node.stderr });
    expect(addrs(path, 'eth0')).toEqual(['10.61.2.5/24']);
    expect(link(path, 'eth0')?.address).toBe('02:00:00:61:02:05');

    const withPrev = { ...conf, prevResult: JSON.parse(added.stdout) };
    const check = await both('CHECK', withPrev);
    expect(check.node.code, check.node.stdout + check.node.stderr).toBe(0);
    expect(check.viaD).toEqual({ exitCode: 0, stdout: check.node.stdout, stderr: check.node.stderr });
    // Refusals: the same code, message and exit status.
    for (const [cmd, config, extra] of [
      ['ADD', '{not json', {}],
      ['ADD', { ...conf, cniVersion: '9.9.9' }, {}],
      ['ADD', { ...conf, bridge: undefined, mode: 'bogus' }, {}],
      ['CHECK', conf, {}],
      ['ADD', conf, { CNI_IFNAME: '' }],
      ['BOGUS', conf, {}],
      ['VERSION', { cniVersion: '0.4.0' }, {}],
    ] as const) {
      const r = await both(cmd, config, extra);
      expect(r.viaD, `${cmd} ${JSON.stringify(config)}`).toEqual({ exitCode: r.node.code, stdout: r.node.stdout, stderr: r.node.stderr });
    }
    const del = await viaDaemon({ ...env, CNI_COMMAND: 'DEL' }, withPrev);
    expect(del).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(link(path, 'eth0')).toBeUndefined();
    const again = await both('DEL', withPrev);
    expect(again.viaD).toEqual({ exitCode: again.node.code, stdout: again.node.stdout, stderr: again.node.stderr });
    sh('ip', 'netns', 'del', 'pwc1');
  });

  it('CNI through the daemon takes the per-container values too: CNI_ARGS MAC= and IP= (as Podman sends them)', async () => {
    const path = netns('pwc2');
    const env = { CNI_CONTAINERID: 'ctr-c2', CNI_NETNS: path, CNI_IFNAME: 'eth0', CNI_PATH: SYSTEM_CNI, CNI_ARGS: 'IgnoreUnknown=1;MAC=02:aa:bb:cc:61:03;IP=10.61.3.50' };
    const conf = { cniVersion: '1.0.0', name: 'pwc2', type: 'pipework', bridge: 'brpwc', ipam: { type: 'host-local', subnet: '10.61.3.0/24', dataDir: DATA } };
    const added = await viaDaemon({ ...env, CNI_COMMAND: 'ADD' }, conf);
    expect(added.exitCode, added.stdout).toBe(0);
    expect(link(path, 'eth0')?.address).toBe('02:aa:bb:cc:61:03');
    expect(addrs(path, 'eth0')).toEqual(['10.61.3.50/24']);
    const bad = await viaDaemon({ ...env, CNI_CONTAINERID: 'ctr-c3', CNI_COMMAND: 'ADD', CNI_ARGS: 'MAC=zz' }, conf);
    expect([bad.exitCode, JSON.parse(bad.stdout).code]).toEqual([1, 4]);
    expect((await viaDaemon({ ...env, CNI_COMMAND: 'DEL' }, conf)).exitCode).toBe(0);
    expect(reservations(DATA, 'pwc2')).toEqual({});
    sh('ip', 'netns', 'del', 'pwc2');
  });

  it('metrics: Prometheus text that parses, counting each operation and its errors', async () => {
    const scrape = async () => {
      const r = await get(SOCKET, '/metrics');
      expect(r.status).toBe(200);
      const samples = new Map<string, number>();
      const typed = new Set<string>();
      for (const line of r.text.trimEnd().split('\n')) {
        const t = /^# TYPE (\w+) (counter|gauge|histogram)$/.exec(line);
        if (t) { typed.add(t[1]); continue; }
        if (/^# HELP \w+ .+$/.test(line)) continue;
        const m = /^(\w+)(\{[a-z_]+="[^"\\]*"(?:,[a-z_]+="[^"\\]*")*\})? (-?[\d.e+-]+)$/.exec(line);
        expect(m, line).not.toBeNull();
        expect([...typed].some((f) => m![1] === f || m![1].startsWith(`${f}_`)), `${line} has a # TYPE`).toBe(true);
        samples.set(m![1] + (m![2] ?? ''), Number(m![3]));
      }
      return samples;
    };
    const before = await scrape();
    const n = (s: Map<string, number>, k: string) => s.get(k) ?? 0;
    await viaDaemon({ CNI_COMMAND: 'VERSION' }, {});
    await viaDaemon({ CNI_COMMAND: 'VERSION' }, {});
    await viaDaemon({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0' }, {}); // no CNI_NETNS: code 4
    await api('/v1/route', { guest: { netns: 'no-such-ns' }, args: ['add', '10.0.0.0/8', 'dev', 'lo'] });
    const after = await scrape();
    expect(n(after, 'pipework_operations_total{operation="cni_version"}') - n(before, 'pipework_operations_total{operation="cni_version"}')).toBe(2);
    expect(n(after, 'pipework_operation_errors_total{operation="cni_add",code="4"}') - n(before, 'pipework_operation_errors_total{operation="cni_add",code="4"}')).toBe(1);
    expect(n(after, 'pipework_operation_errors_total{operation="route",code="refused"}') - n(before, 'pipework_operation_errors_total{operation="route",code="refused"}')).toBe(1);
    // The histogram: cumulative buckets ending in +Inf = count = operations_total.
    const buckets = [...after.entries()].filter(([k]) => k.startsWith('pipework_operation_duration_seconds_bucket{operation="cni_version"'));
    expect(buckets.length).toBeGreaterThan(5);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i][1]).toBeGreaterThanOrEqual(buckets[i - 1][1]);
    expect(after.get('pipework_operation_duration_seconds_bucket{operation="cni_version",le="+Inf"}')).toBe(after.get('pipework_operations_total{operation="cni_version"}'));
    expect(after.get('pipework_operation_duration_seconds_count{operation="cni_version"}')).toBe(after.get('pipework_operations_total{operation="cni_version"}'));
    expect(after.get('pipework_operations_in_flight{operation="cni_version"}')).toBe(0);
    expect(after.get('process_open_fds')).toBeGreaterThan(0);
    // Idle, the daemon stays under 80 MB resident.
    expect(after.get('process_resident_memory_bytes')).toBeLessThan(80 * 1024 * 1024);
  });

  it('bad HTTP gets a clear error each time, and the daemon goes on serving', async () => {
    const garbage = await raw('GARBAGE\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(garbage.split('\r\n\r\n')[1]).error).toMatch(/^Bad Request: /);
    const binary = await raw(Buffer.from([0, 1, 2, 255, 13, 10, 13, 10]));
    expect(binary).toMatch(/^HTTP\/1\.1 400 /);

    const big = await raw(`POST /v1/cni HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${2 << 20}\r\n\r\n{"env":`);
    expect(big).toMatch(/^HTTP\/1\.1 413 /);
    expect(big).toContain('request body over 1048576 bytes');
    // Chunked, no length given: cut off once it passes 1 MiB.
    const chunk = 'x'.repeat(64 * 1024);
    const chunked = await raw(`POST /v1/cni HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${
      `${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(20)}0\r\n\r\n`);
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);

    const badJson = await post(SOCKET, '/v1/cni', '{"env": ');
    expect(badJson.status).toBe(400);
    expect(badJson.json.error).toMatch(/^invalid JSON: /);
    expect((await post(SOCKET, '/v1/cni', '[1]')).json).toEqual({ error: 'the request body must be a JSON object' });
    expect((await api('/v1/cni', { env: { CNI_COMMAND: 7 }, stdin: '{}' })).json).toEqual({ error: 'env.CNI_COMMAND must be a string' });
    expect((await get(SOCKET, '/v1/nothing')).status).toBe(404);
    const wrong = await get(SOCKET, '/v1/cni');
    expect(wrong.status).toBe(405);
    expect(wrong.json.error).toBe('GET /v1/cni: use POST');
    const form = await raw('POST /v1/attach HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}');
    expect(form).toMatch(/^HTTP\/1\.1 415 /);

    expect((await get(SOCKET, '/v1/health')).json).toMatchObject({ status: 'ok', pid: daemon.pid });
    daemon.check();
  });

  it('a client that never finishes its headers is answered 408 and disconnected; others are served meanwhile', async () => {
    const slow = raw('POST /v1/cni HTTP/1.1\r\nHost: x\r\n');
    expect((await get(SOCKET, '/v1/health')).status).toBe(200);
    const answer = await slow;
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(answer).toContain('Connection: close');
  }, 30_000);

  it('refuses a peer that is neither root nor the socket owner (uid 65534): 403, connection closed', async () => {
    chmodSync(dir, 0o755);
    chmodSync(join(dir, 'run'), 0o755);
    chmodSync(SOCKET, 0o666); // reachable for the test only: the daemon's own check must refuse
    try {
      const client = `const h=require('http');h.get({socketPath:${JSON.stringify(SOCKET)},path:'/v1/health'},(r)=>{let t='';r.on('data',(d)=>t+=d);` +
        `r.on('end',()=>{console.log(r.statusCode,r.headers.connection,t.trim());});}).on('error',(e)=>console.log('error',e.message));`;
      const r = spawnSync(process.execPath, ['-e', client], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: '/' });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('403 close {"error":"only root and the socket\'s owner may use the pipework daemon"}');
    } finally {
      chmodSync(SOCKET, 0o600);
      chmodSync(dir, 0o700);
    }
    expect((await get(SOCKET, '/v1/health')).status).toBe(200);
  });

  it('a socket path taken by a regular file or by a live daemon: a clear error, nothing removed', async () => {
    const file = join(dir, 'taken');
    writeFileSync(file, 'not a socket\n');
    const r = spawnSync(process.execPath, ['bin/pipework.js', 'daemon', '--socket', file], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`pipework daemon: cannot listen on ${file}: ${file} exists and is not a socket (left as it is)`);
    expect(readFileSync(file, 'utf8')).toBe('not a socket\n');

    const live = spawnSync(process.execPath, ['bin/pipework.js', 'daemon', '--socket', SOCKET], { encoding: 'utf8', timeout: 20_000 });
    expect(live.status).toBe(1);
    expect(live.stderr.trim()).toBe(`pipework daemon: cannot listen on ${SOCKET}: something already answers on ${SOCKET} (another pipework daemon?)`);
    expect((await get(SOCKET, '/v1/health')).json).toMatchObject({ status: 'ok', pid: daemon.pid });
  });

  describe('lifecycle', () => {
    const path = join(dir, 'slow-ipam');
    const started = join(dir, 'ipam-started');
    const env = (id: string, ns: string) => ({ CNI_CONTAINERID: id, CNI_NETNS: ns, CNI_IFNAME: 'eth0', CNI_PATH: path });

    beforeAll(() => {
      // The reference host-local, exec'd (an IPAM type the daemon does not run itself) and held up
      // for a second on ADD: a window to kill or stop the daemon in.
      mkdirSync(path);
      writeFileSync(join(path, 'slow-host-local'), `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then echo "$CNI_CONTAINERID" >> '${started}'; sleep 1; fi
exec ${SYSTEM_CNI}/host-local "$@"
`, { mode: 0o755 });
    });

    it('SIGKILL mid-ADD: the client sees the connection cut; a new daemon takes the state from disk, DEL then ADD converges', async () => {
      const ns = netns('pwk1');
      const conf = bridgeConf('pwk', 'brpwk', '10.61.3.0/24', 'slow-host-local');
      const cut = viaDaemon({ ...env('ctr-k1', ns), CNI_COMMAND: 'ADD' }, conf).then(() => 'answered', (e: Error) => e.message);
      await waitFor(() => existsSync(started) && readFileSync(started, 'utf8').includes('ctr-k1'), 10_000, 'the IPAM plugin to start');
      await daemon.stop('SIGKILL');
      expect(await cut).toMatch(/socket hang up|ECONNRESET/);
      expect(existsSync(SOCKET)).toBe(true); // stale: replaced by the next daemon
      await waitFor(() => Object.values(reservations(DATA, 'pwk')).includes('ctr-k1'), 10_000, 'the orphaned host-local to reserve');

      daemon = await startDaemon();
      const del = await viaDaemon({ ...env('ctr-k1', ns), CNI_COMMAND: 'DEL' }, conf);
      expect(del.exitCode, del.stdout).toBe(0);
      expect(reservations(DATA, 'pwk')).toEqual({});
      const add = await viaDaemon({ ...env('ctr-k1', ns), CNI_COMMAND: 'ADD' }, conf);
      expect(add.exitCode, add.stdout).toBe(0);
      const ip = JSON.parse(add.stdout).ips[0].address;
      expect(addrs(ns, 'eth0')).toEqual([ip]);
      expect(Object.entries(reservations(DATA, 'pwk'))).toEqual([[ip.split('/')[0], 'ctr-k1']]);
      expect((await viaDaemon({ ...env('ctr-k1', ns), CNI_COMMAND: 'DEL' }, conf)).exitCode).toBe(0);
      sh('ip', 'netns', 'del', 'pwk1');
    });

    it('SIGTERM with an ADD in flight: it finishes, new CNI calls get code 11, health says stopping, exit 143, socket gone', async () => {
      const ns = netns('pwt1');
      const conf = bridgeConf('pwt', 'brpwt', '10.61.4.0/24', 'slow-host-local');
      const inFlight = viaDaemon({ ...env('ctr-t1', ns), CNI_COMMAND: 'ADD' }, conf);
      await waitFor(() => existsSync(started) && readFileSync(started, 'utf8').includes('ctr-t1'), 10_000, 'the IPAM plugin to start');
      const exited = daemon.wait();
      process.kill(daemon.pid, 'SIGTERM');
      await waitFor(async () => (await get(SOCKET, '/v1/health')).status === 503, 5000, 'the daemon to say it is stopping');
      const refused = await viaDaemon({ ...env('ctr-t2', ns), CNI_IFNAME: 'eth1', CNI_COMMAND: 'ADD' }, conf);
      expect(refused.exitCode).toBe(1);
      expect(JSON.parse(refused.stdout)).toEqual({
        cniVersion: '1.0.0', code: 11, msg: 'the pipework daemon is stopping', details: 'try again: a new daemon or the pipework-cni plugin will answer',
      });
      expect((await api('/v1/attach', { guest: { netns: 'pwt1' }, request: { hostInterface: 'brpwt' } })).status).toBe(503);
      const done = await inFlight;
      expect(done.exitCode, done.stdout).toBe(0);
      expect(addrs(ns, 'eth0')).toEqual([JSON.parse(done.stdout).ips[0].address]);
      expect(link(ns, 'eth1')).toBeUndefined(); // the refused call made nothing
      expect(Object.values(reservations(DATA, 'pwt'))).toEqual(['ctr-t1']);
      await exited;
      expect(daemon.exit).toEqual({ code: 143, signal: null });
      expect(existsSync(SOCKET)).toBe(false);
      expect(daemon.output()).toMatch(/SIGTERM: finishing 1 request\(s\) in flight, refusing new ones\n.*stopped\n$/);

      daemon = await startDaemon();
      expect((await viaDaemon({ ...env('ctr-t1', ns), CNI_COMMAND: 'DEL' }, conf)).exitCode).toBe(0);
      expect(reservations(DATA, 'pwt')).toEqual({});
      sh('ip', 'netns', 'del', 'pwt1');
    });
  });

  it('SIGTERM while a CNI call is still being sent: it is answered (code 11), not cut off, then the daemon exits 143', async () => {
    const body = JSON.stringify({ env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'late', CNI_NETNS: '/run/netns/none', CNI_IFNAME: 'eth0' }, stdin: '{"cniVersion":"1.1.0"}' });
    const half = Math.floor(body.length / 2);
    const s = connect(SOCKET);
    let answer = '';
    s.setEncoding('utf8').on('data', (d: string) => { answer += d; });
    const closed = new Promise((resolve) => s.on('close', resolve));
    s.write(`POST /v1/cni HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`);
    await waitFor(() => (get(SOCKET, '/v1/health').then((h) => h.json.inFlight === 1)), 5000, 'the request to arrive');
    const exited = daemon.wait();
    process.kill(daemon.pid, 'SIGTERM');
    await waitFor(async () => (await get(SOCKET, '/v1/health')).status === 503, 5000, 'the daemon to say it is stopping');
    s.end(body.slice(half));
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    const outcome = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(outcome.exitCode).toBe(1);
    expect(JSON.parse(outcome.stdout)).toMatchObject({ cniVersion: '1.1.0', code: 11 });
    await exited;
    expect(daemon.exit).toEqual({ code: 143, signal: null });
    daemon = await startDaemon();
  });

  it('hosts the Docker plugin: its state is picked up again by a restarted daemon', async () => {
    const dockerSocket = join(dir, 'plugins', 'pipework.sock');
    const state = join(dir, 'docker-state.json');
    await daemon.stop();
    daemon = await startDaemon(['--docker-plugin', '--docker-socket', dockerSocket, '--docker-state', state]);
    expect((await post(dockerSocket, '/Plugin.Activate')).json).toEqual({ Implements: ['NetworkDriver'] });
    const create = await post(dockerSocket, '/NetworkDriver.CreateNetwork', JSON.stringify({
      NetworkID: 'n1', Options: { 'com.docker.network.generic': { parent: 'brpwd' } }, IPv4Data: [{ Pool: '10.61.5.0/24', Gateway: '10.61.5.1/24' }],
    }));
    expect(create.status, create.text).toBe(200);
    expect(Object.keys(JSON.parse(readFileSync(state, 'utf8')).networks)).toEqual(['n1']);
    await daemon.stop();
    expect(daemon.exit).toEqual({ code: 143, signal: null });
    expect(existsSync(dockerSocket)).toBe(false);
    daemon = await startDaemon(['--docker-plugin', '--docker-socket', dockerSocket, '--docker-state', state]);
    const del = await post(dockerSocket, '/NetworkDriver.DeleteNetwork', JSON.stringify({ NetworkID: 'n1' }));
    expect(del.status, del.text).toBe(200);
    expect(JSON.parse(readFileSync(state, 'utf8')).networks).toEqual({});
  });

  it('fds and sockets stay flat over many CNI ADD/DEL pairs', async () => {
    const ns = netns('pws1');
    const conf = bridgeConf('pws', 'brpws', '10.61.6.0/24');
    const pair = async (i: number) => {
      const e = { CNI_CONTAINERID: `soak-${i}`, CNI_NETNS: ns, CNI_IFNAME: 'eth0', CNI_PATH: SYSTEM_CNI };
      const add = await viaDaemon({ ...e, CNI_COMMAND: 'ADD' }, conf);
      expect(add.exitCode, add.stdout).toBe(0);
      expect((await viaDaemon({ ...e, CNI_COMMAND: 'DEL' }, conf)).exitCode).toBe(0);
    };
    for (let i = 0; i < 20; i++) await pair(i); // warm-up: lazy modules, pools
    // Counted once the connection of the last request has closed on the daemon's side too.
    const sample = async () => {
      let last = '';
      let now = '';
      await waitFor(() => {
        const fds = fdsOf(daemon.pid);
        [last, now] = [now, JSON.stringify({ fds: fds.length, sockets: fds.filter((f) => f.startsWith('socket:')).length })];
        return last === now;
      }, 5000, 'a steady fd count', 200);
      return JSON.parse(now);
    };
    const first = await sample();
    for (let i = 20; i < 220; i++) await pair(i);
    const last = await sample();
    // No growth (a leak would show once per pair: +200).
    expect(last.fds).toBeLessThanOrEqual(first.fds);
    expect(last.sockets).toBeLessThanOrEqual(first.sockets);
    expect(link(ns, 'eth0')).toBeUndefined();
    expect(reservations(DATA, 'pws')).toEqual({});
    sh('ip', 'netns', 'del', 'pws1');
  });

  describe('with dockerd', () => {
    let d: Dockerd | undefined;
    beforeAll(async () => { d = await startDockerd(); }, 120_000);
    afterAll(async () => { await d?.stop(); }, 120_000);

    it('one daemon for every engine: a container on a pipework network (plugin) and one with a pipework label (watcher) reach each other', async () => {
      await daemon.stop();
      const state = join(dir, 'engines-state.json');
      daemon = await startDaemon(['--docker-plugin', '--docker-state', state, '--watch', '--cleanup'], d!.env);
      await d!.docker(['network', 'create', '-d', 'pipework', '-o', 'parent=brpwe', '--subnet', '10.61.8.0/24', '--gateway', '10.61.8.1', 'pwe']);
      await d!.docker(['run', '-d', '--name', 'de1', '--network', 'pwe', 'busybox', 'sleep', '1000']);
      await d!.docker(['run', '-d', '--name', 'de2', '--network', 'none', '--label', 'pipework=brpwe 10.61.8.50/24', 'busybox', 'sleep', '1000']);
      const pid2 = await containerPid(d!.docker, 'de2');
      const plumbed = () => { try { return ipv4Of(pid2, 'eth1').includes('10.61.8.50/24'); } catch { return false; } }; // no eth1 yet
      await waitFor(plumbed, 20_000, 'the watcher to plumb de2');
      expect(portsOf('brpwe')).toHaveLength(2); // the plugin's endpoint and the watcher's veth, on one bridge
      await d!.docker(['exec', 'de1', 'ping', '-c', '1', '-W', '3', '10.61.8.50']);
      await d!.docker(['rm', '-f', 'de2']);
      await waitFor(() => portsOf('brpwe').length === 1, 20_000, 'the watcher to unplug de2');
      await d!.docker(['rm', '-f', 'de1']);
      await d!.docker(['network', 'rm', 'pwe']);
      expect(JSON.parse(readFileSync(state, 'utf8')).networks).toEqual({});
      await daemon.stop();
      expect(daemon.exit).toEqual({ code: 143, signal: null });
    });
  });
});
