#!/usr/bin/env node
'use strict';
// bench/run.js: `npm run bench`. Every implementation does the same work per
// container (a veth on a Linux bridge, host end enslaved and up; the peer
// `eth1` in the container netns with an IPv4 address and broadcast, up; a
// default route via the bridge's gateway), at several N, each run in its own
// fresh namespaces; then one table side by side, targets with PASS/MISS, and
// bench/out/results.json. See bench/README.md.
//
// Environment:
//   BENCH_N=100,1000,5000,10000   the N list (default)
//   BENCH_FLOOR_K=64,512,4096  the pipelining depths of the floor swept (the
//                           best floor variant at each N is "the floor")
//   BENCH_PYROUTE2_MAX=5000 largest N for pyroute2
//   BENCH_IPBATCH_MAX=1000  largest N for ip -batch (one `ip` process per
//                           container, and one more for each check: ~7 min at 10,000)
//   Without BENCH_FULL, some rows run at some N only: the sequential floor
//   and K=64 up to 1000, the 2-thread floor at 100 and 1000, K=4096 from 1000,
//   the bridge-port IPv6 rows at 1000, 5000 and 10,000, the library with no
//   IPv6 on the container ends at every N (the floor's K=4096 the same from
//   1000), the other on/off rows at 100 and 1000; at N=5000 only those and
//   the library, the best floor and the CLI run.
//   BENCH_QUICK=1           smoke run: N=50, 3 single-call repetitions
//   BENCH_FULL=1            also run the slow per-process implementations
//                           (shell, original, CNI) at every N
//   BENCH_SLOW_MAX=100      largest N for shell-pipework / pipework-original
//   BENCH_CNI_MAX=1000      largest N for the CNI bridge plugin
//   BENCH_TEARDOWN_MAX=1000 largest N at which the one-veth-at-a-time
//                           teardowns (shells, CNI) run; above it their
//                           namespaces are just closed. Group teardowns run
//                           at every N (BENCH_GROUP_TEARDOWN=0: same limit)
//   BENCH_ONLY=floor,lib    run only these implementations (cni-daemon: the
//                           CNI door section, bench/cni-daemon.js)
//   BENCH_SINGLE_REPS=5     repetitions of the single-call comparison
//   BENCH_REPEAT=R          runs of each (implementation, N), interleaved;
//                           the table shows the run with the median attach.
//                           Default: 3 for N <= 100 (short runs are the most
//                           exposed to noise) except the slow shell/CNI ones, else 1
//   PIPEWORK_SH=/path       a copy of the original pipework script: adds it
//                           as a row and to the single-call comparison
//   BENCH_PYTHON=python3    interpreter to try for pyroute2 (then /usr/bin/python3)
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn, spawnSync } = require('node:child_process');
const { buildC } = require('./lib/common');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(__dirname, 'out');

// ---- only ever inside throwaway namespaces ----
if (process.env.PIPEWORK_IN_NETNS !== '1') {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'in-netns.js'), process.execPath, __filename, ...process.argv.slice(2)],
    { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
if (process.getuid?.() !== 0) {
  console.error('bench: must run as root (everything happens in private namespaces)');
  process.exit(1);
}

// ---- configuration ----
const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const FULL = env.BENCH_FULL === '1';
const NS = (env.BENCH_N || (QUICK ? '50' : '100,1000,5000,10000')).split(',').map(Number);
if (!NS.every((n) => Number.isInteger(n) && n >= 1 && n <= 250 * 1000)) {
  console.error(`bench: bad BENCH_N: ${env.BENCH_N}`);
  process.exit(2);
}
const PER_BRIDGE = 1000;
/** The depth the on/off variants of the floor use (always among those swept). */
const VARIANT_K = 512;
const FLOOR_K = [...new Set([...(env.BENCH_FLOOR_K || '64,512,4096').split(',').map(Number), VARIANT_K])].sort((a, b) => a - b);
if (!FLOOR_K.every((k) => Number.isInteger(k) && k >= 1 && k <= 4096)) {
  console.error(`bench: bad BENCH_FLOOR_K: ${env.BENCH_FLOOR_K}`);
  process.exit(2);
}
const PYROUTE2_MAX = FULL ? Infinity : Number(env.BENCH_PYROUTE2_MAX || 5000);
const IPBATCH_MAX = FULL ? Infinity : Number(env.BENCH_IPBATCH_MAX || 1000);
// Rows that only add information at some sizes run there only (BENCH_FULL=1: everywhere), to keep a full run under an hour.
const only = (...ns) => (FULL ? undefined : (n) => ns.includes(n) || (QUICK && n === Math.min(...NS)));
const SLOW_MAX = FULL ? Infinity : Number(env.BENCH_SLOW_MAX || 100);
const CNI_MAX = FULL ? Infinity : Number(env.BENCH_CNI_MAX || 1000);
const TEARDOWN_MAX = Number(env.BENCH_TEARDOWN_MAX || 1000);
const GROUP_TEARDOWN_ALWAYS = env.BENCH_GROUP_TEARDOWN !== '0';
const ONLY = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',')) : undefined;
const SINGLE_REPS = Number(env.BENCH_SINGLE_REPS || (QUICK ? 3 : 5));
const REPEAT = env.BENCH_REPEAT ? Math.max(1, Number(env.BENCH_REPEAT)) : undefined;
const repeatFor = (impl, n) => REPEAT ?? (n <= 100 && !impl.slow ? 3 : 1);
const PIPEWORK_SH = env.PIPEWORK_SH && fs.existsSync(env.PIPEWORK_SH) ? path.resolve(env.PIPEWORK_SH) : undefined;
if (env.PIPEWORK_SH && !PIPEWORK_SH) console.error(`bench: PIPEWORK_SH=${env.PIPEWORK_SH} does not exist; the original is not run`);

const log = (s) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

// ---- prerequisites ----
function findPython() {
  for (const py of /** @type {string[]} */ ([env.BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean))) {
    const r = spawnSync(py, ['-c', 'import pyroute2; print(pyroute2.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { py, version: r.stdout.trim() };
  }
  return undefined;
}

function checkDist() {
  const dist = path.join(ROOT, 'dist', 'index.js');
  if (!fs.existsSync(dist)) throw new Error('dist/ is missing: run `npx tsc -p .` first');
  const newest = (dir) => fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .reduce((m, e) => Math.max(m, fs.statSync(path.join(e.parentPath ?? e.path, e.name)).mtimeMs), 0);
  if (newest(path.join(ROOT, 'src')) > fs.statSync(dist).mtimeMs) log('warning: src/ is newer than dist/: rebuild with `npx tsc -p .`');
}

const cniInstalled = fs.existsSync('/usr/lib/cni/bridge') && fs.existsSync('/usr/lib/cni/host-local');
const python = findPython();
const FLOOR = buildC('floor', ['-pthread']);
checkDist();

// ---- the implementations ----
const WORKER = path.join(__dirname, 'lib', 'worker.js');
// Teardown one veth at a time (shells, CNI) costs ~20-40 ms per container:
// timed only up to TEARDOWN_MAX. Group teardown (one kernel call) is cheap,
// so it is always done: it also keeps the kernel from freeing thousands of
// veths in the background while the next run is timed.
const td = (n) => n <= TEARDOWN_MAX;
const tdg = (n) => GROUP_TEARDOWN_ALWAYS || td(n);
/** @type {(extra: Array<string | number>) => Impl['cmd']} */
const floorCmd = (extra) => (n) => [FLOOR, [n, PER_BRIDGE, '--verify', '--group-teardown', ...extra, ...(tdg(n) ? [] : ['--no-teardown'])]];
/** @type {(mode: string) => Impl['cmd']} */
const workerCmd = (mode) => (n) => [process.execPath, [WORKER, mode, n, PER_BRIDGE, ...(tdg(n) ? [] : ['--no-teardown'])]];
// The same work as ours: the bridge ports get no IPv6 address (our default).
const HOST_V6_OFF = '--host-addrgen-none';
const VK = ['--pipeline', VARIANT_K];
// floor: true rows are variants of the lower bound (the best at each N is "the floor");
// base: rows that turn one piece of kernel work on or off against that row, in the same run.
const SMALL = only(100, 1000);
const BIG = only(1000, 5000, 10000);
/**
 * One row of the tables: what runs (cmd: [program, argv]), at which N (runsAt, max; absent:
 * why it cannot run here), and how it is read (floor rows, ours, the base
 * it is compared with).
 * @typedef {{ id: string, label: string, cmd: (n: number) => any[], floor?: boolean, ours?: boolean,
 *   base?: string, runsAt?: (n: number) => boolean, max?: number, absent?: string, slow?: boolean }} Impl
 */
/** @type {Impl[]} */
const IMPLS = [
  { id: 'floor-seq', floor: true, runsAt: SMALL, label: 'floor: C, one container at a time', cmd: floorCmd([HOST_V6_OFF]) },
  ...FLOOR_K.map((k) => ({
    id: `floor-k${k}`, floor: true, runsAt: k < 512 ? SMALL : k > 1000 ? only(1000, 5000, 10000) : undefined,
    label: `floor: C, pipelined K=${k}`, cmd: floorCmd(['--pipeline', k, HOST_V6_OFF]),
  })),
  { id: `floor-k${VARIANT_K}-t2`, floor: true, runsAt: SMALL, label: `floor: C, pipelined K=${VARIANT_K}, 2 threads`, cmd: floorCmd([...VK, '--threads', 2, HOST_V6_OFF]) },
  { id: 'lib', label: 'ours: library, announce off', ours: true, cmd: workerCmd('lib') },
  { id: 'cli', label: 'ours: CLI --batch (whole process)', ours: true, cmd: workerCmd('cli') },
  { id: 'floor-host-ipv6', base: `floor-k${VARIANT_K}`, runsAt: BIG, label: `floor K=${VARIANT_K}, bridge ports with IPv6`, cmd: floorCmd(VK) },
  { id: 'lib-host-ipv6', base: 'lib', ours: true, runsAt: BIG, label: 'ours: library, hostIpv6: true', cmd: workerCmd('lib-host-ipv6') },
  { id: 'floor-no-ipv6', base: `floor-k${VARIANT_K}`, runsAt: SMALL, label: `floor K=${VARIANT_K}, no IPv6 on container ends`, cmd: floorCmd([...VK, HOST_V6_OFF, '--guest-addrgen-none']) },
  { id: 'lib-no-ipv6', base: 'lib', ours: true, label: 'ours: library, ipv6: false', cmd: workerCmd('lib-no-ipv6') },
  // The best floor's depth with the same switch: where the library stands once the containers send no IPv6 start-up traffic.
  {
    id: 'floor-k4096-no-ipv6', base: 'floor-k4096', runsAt: BIG, label: 'floor K=4096, no IPv6 on container ends',
    cmd: floorCmd(['--pipeline', 4096, HOST_V6_OFF, '--guest-addrgen-none']),
  },
  { id: 'floor-arp', base: `floor-k${VARIANT_K}`, runsAt: SMALL, label: `floor K=${VARIANT_K}, gratuitous ARP (arp_notify)`, cmd: floorCmd([...VK, HOST_V6_OFF, '--arp-notify']) },
  { id: 'lib-arp', base: 'lib', ours: true, runsAt: SMALL, label: 'ours: library, announce on', cmd: workerCmd('lib-arp') },
  {
    id: 'ip-batch', label: 'ip -batch (one per netns)', max: IPBATCH_MAX,
    cmd: (n) => ['sh', [path.join(__dirname, 'ip-batch.sh'), n, PER_BRIDGE, '--group-teardown', '--verify', HOST_V6_OFF, ...(tdg(n) ? [] : ['--no-teardown'])]],
  },
  {
    id: 'pyroute2', label: 'pyroute2 (one process)', absent: python ? undefined : 'not installed', max: PYROUTE2_MAX,
    cmd: workerCmd('pyroute2'),
  },
  {
    id: 'cni', slow: true, label: 'CNI bridge + host-local', absent: cniInstalled ? undefined : 'not installed', max: CNI_MAX,
    cmd: (n) => [process.execPath, [WORKER, 'cni', n, PER_BRIDGE, ...(td(n) ? [] : ['--no-teardown'])]],
  },
  {
    id: 'shell', slow: true, label: 'shell-pipework.sh (ip per step)', max: SLOW_MAX,
    cmd: (n) => ['sh', [path.join(__dirname, 'shell-pipework.sh'), n, PER_BRIDGE, '--verify', ...(td(n) ? [] : ['--no-teardown'])]],
  },
  {
    id: 'original', slow: true, label: 'original pipework script', max: SLOW_MAX, absent: PIPEWORK_SH ? undefined : 'not run (set PIPEWORK_SH)',
    cmd: (n) => ['sh', [path.join(__dirname, 'pipework-original.sh'), n, PER_BRIDGE, '--verify', ...(td(n) ? [] : ['--no-teardown'])]],
  },
].filter((i) => !ONLY || ONLY.has(i.id));

// Children get a clean environment: no sandbox markers, and what they need.
const childEnv = () => {
  const e = { ...env };
  for (const k of ['PW_BENCH_INNER', 'PW_BENCH_OUTER_NET', 'PW_BENCH_OUTER_MNT']) delete e[k];
  if (PIPEWORK_SH) e.PIPEWORK_SH = PIPEWORK_SH;
  e.PW_BENCH_FLOOR = FLOOR; // the workers check every container with `floor check`
  if (python) e.BENCH_PYTHON = python.py;
  return e;
};

/** key=value lines into one object (numbers where they are numbers). */
function parseKv(text) {
  const o = {};
  for (const line of text.split('\n')) {
    // `verify_teardown=ok host_links=2` must not overwrite the attach's host_links
    const prefix = line.startsWith('verify_teardown=') ? 'teardown_' : '';
    for (const tok of line.trim().split(/\s+/)) {
      const eq = tok.indexOf('=');
      if (eq <= 0) continue;
      const k = (tok.startsWith('verify_teardown=') ? '' : prefix) + tok.slice(0, eq);
      const v = tok.slice(eq + 1);
      o[k] = v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
    }
  }
  return o;
}

/** Runs one child to completion (async, so that we can log while it runs). */
function runChild(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(cmd, args.map(String), { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { stderr += `\n(bench: timed out after ${timeoutMs / 1000} s)`; child.kill('SIGTERM'); }, timeoutMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, wallMs: Date.now() - t0 });
    });
  });
}

// ---- letting the kernel settle between runs ----
// A run's namespaces are freed by the kernel after the run exits (cleanup_net
// in a workqueue); with thousands of veths that is seconds of work that
// would land in the next run. So after each run, wait until the number of
// live network namespaces (net_namespace slab objects) is back to about what
// it was before the run started. Other users of the machine make and free
// namespaces too, so this is approximate and bounded in time. (On a busy
// machine the kernel can take minutes to free thousands of namespaces.)
function liveNetns() {
  try {
    const line = fs.readFileSync('/proc/slabinfo', 'utf8').split('\n').find((l) => l.startsWith('net_namespace '));
    return line ? Number(line.split(/\s+/)[1]) : undefined;
  } catch {
    return undefined;
  }
}
async function settle(before, n) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  if (before === undefined) {
    await sleep(1000);
    return { settle_ms: 1000 };
  }
  // Wait for the count to get back to where it was, but stop once it has
  // not fallen for 3 s, or 8 ms per container of the run (80 s at
  // N = 10,000): namespaces that linger with the kernel's netns worker idle
  // (or that others hold) are no load on the next run, but the worker frees
  // all it has been given as one batch, and after 10,000 the count stood
  // still for over 15 s while it worked (the next row then paid for it).
  const t0 = Date.now();
  const limit = 15e3 + 10 * n; // 115 s at N = 10,000
  const stall = Math.max(3e3, 8 * n);
  const target = before + Math.max(10, Math.ceil(n / 100));
  // Unreadable meanwhile: taken as back where it was (the wait ends).
  let last = liveNetns() ?? before;
  let low = last;
  let lowAt = Date.now();
  while (last > target && Date.now() - t0 < limit && Date.now() - lowAt < stall) {
    await sleep(250);
    last = liveNetns() ?? before;
    if (last < low) {
      low = last;
      lowAt = Date.now();
    }
  }
  await sleep(300);
  const waited = Date.now() - t0;
  if (waited > 4000)
    log(`  (waited ${(waited / 1000).toFixed(1)} s for the kernel to free the run's namespaces: live ${last}, ${before} before the run)`);
  return { settle_ms: waited, live_netns_before: before, live_netns_after_settle: last };
}

// ---- the machine's deferred kernel work during a run ----
// Packets the containers send (IPv6 start-up: MLD reports, DAD, router
// solicitations) are flooded by the bridge to every port and handled in
// softirq, on whatever CPU, in no process's account: read machine-wide.
/** Softirq CPU time of the machine so far (ms; /proc/stat counts in USER_HZ = 100) and NET_RX softirqs run, all CPUs. */
function machineSoftirq() {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/);
    const netRx = fs.readFileSync('/proc/softirqs', 'utf8').split('\n').find((l) => l.trim().startsWith('NET_RX:'));
    if (cpu[0] !== 'cpu' || !netRx) return undefined;
    return { ms: Number(cpu[7]) * 10, netRx: netRx.trim().split(/\s+/).slice(1).reduce((a, x) => a + Number(x), 0) };
  } catch {
    return undefined;
  }
}

// ---- results ----
/**
 * What results.json holds: each row's runs by N, the single-call figures,
 * the CNI daemon's, and the targets met or missed.
 * @type {{ meta: Record<string, any>, runs: Record<string, any>, single: Record<string, any> | null, cni_daemon?: any,
 *   targets: Array<{ name: string, verdict: string, detail: string }> }}
 */
const results = {
  meta: {
    started: new Date().toISOString(), host: os.hostname(), kernel: os.release(), cpus: os.cpus().length,
    node: process.version, n_list: NS, per_bridge: PER_BRIDGE, quick: QUICK, full: FULL, slow_max: SLOW_MAX,
    cni_max: CNI_MAX, teardown_max: TEARDOWN_MAX, repeat: REPEAT ?? 'auto', pipework_sh: PIPEWORK_SH ?? null,
    pyroute2: python ? `${python.py} (pyroute2 ${python.version})` : null, cni: cniInstalled ? '/usr/lib/cni/bridge' : null,
    loadavg_start: os.loadavg(), live_netns_start: liveNetns() ?? null,
  },
  runs: {},
  single: null,
  targets: [],
};

async function main() {
  log(`bench: N=${NS.join(',')}; ${os.cpus().length} CPUs; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`
    + `; pyroute2: ${python ? python.py : 'not installed'}; CNI: ${cniInstalled ? 'yes' : 'not installed'}; original: ${PIPEWORK_SH ?? 'not set'}`);
  const all = {}; // id -> n -> [runs]
  for (const n of NS) for (let rep = 0; rep < Math.max(...IMPLS.map((i) => repeatFor(i, n))); rep++) {
    for (const impl of IMPLS) {
      if (rep >= repeatFor(impl, n)) continue;
      const slot = (results.runs[impl.id] ??= { label: impl.label, byN: {} });
      if (impl.absent) { slot.byN[n] = { status: impl.absent }; continue; }
      if ((impl.max !== undefined && n > impl.max) || (impl.runsAt && !impl.runsAt(n))) { slot.byN[n] = { status: 'not run' }; continue; }
      const [cmd, args] = impl.cmd(n);
      log(`N=${n}${repeatFor(impl, n) > 1 ? ` run ${rep + 1}/${repeatFor(impl, n)}` : ''} ${impl.id}: ${[cmd, ...args].map(String).map((a) => path.relative(ROOT, a).startsWith('..') ? a : path.relative(ROOT, a)).join(' ')}`);
      const before = liveNetns();
      const k0 = machineSoftirq();
      const r = await runChild(cmd, args, 60 * 60e3);
      const k1 = machineSoftirq();
      const kv = parseKv(r.stdout);
      if (k0 && k1) Object.assign(kv, { softirq_ms: k1.ms - k0.ms, net_rx_softirqs: k1.netRx - k0.netRx });
      // A run counts only when it says the kernel state was read back and found right (and after teardown too).
      const unverified = kv.verify !== 'ok' ? 'no verify=ok in its output'
        : kv.teardown_ms !== undefined && kv.verify_teardown !== 'ok' ? 'no verify_teardown=ok in its output' : undefined;
      const ok = r.status === 0 && kv.per_container_ms !== undefined && !unverified;
      /** @type {Record<string, any>} */
      const entry = { status: ok ? 'ok' : 'failed', wall_ms: r.wallMs, ...kv };
      if (!ok) {
        entry.error = (r.status === 0 && unverified) || (r.stderr.trim() || `exit ${r.status ?? r.signal}`).split('\n').slice(-5).join(' | ');
        log(`  FAILED: ${entry.error}`);
      } else {
        log(`  ${kv.per_container_ms.toFixed(3)} ms/container (attach ${kv.attach_ms} ms, netns ${kv.netns_ms} ms`
          + `${kv.teardown_ms !== undefined ? `, teardown ${kv.teardown_ms} ms` : ''}${kv.max_rss_mb !== undefined ? `, peak RSS ${kv.max_rss_mb} MB` : ''}`
          + `, verify ${kv.verify ?? 'not run'})`);
      }
      Object.assign(entry, await settle(before, n));
      const runs = ((all[impl.id] ??= {})[n] ??= []);
      runs.push(entry);
      slot.byN[n] = pickMedian(runs);
    }
  }
  if (!ONLY || ONLY.has('single')) {
    log(`single call: ours vs ${PIPEWORK_SH ? 'the original' : '(original not set)'}, ${SINGLE_REPS} times each, interleaved`);
    const r = await runChild(process.execPath, [WORKER, 'single'], 10 * 60e3);
    /** @type {Record<string, any>} */
    const single = r.status === 0 ? { status: 'ok', ...parseKv(r.stdout) } : { status: 'failed', error: r.stderr.trim().split('\n').slice(-5).join(' | ') };
    if (single.samples) single.samples = JSON.parse(single.samples);
    if (r.status !== 0) log(`  FAILED: ${single.error}`);
    results.single = single;
  }
  if (!ONLY || ONLY.has('cni-daemon')) results.cni_daemon = await require('./cni-daemon').run(runChild, log);
  results.meta.finished = new Date().toISOString();
  results.meta.loadavg_end = os.loadavg();
  report();
}

/** The run with the median attach time (a failed run wins: failures must show). */
function pickMedian(runs) {
  const failed = runs.find((r) => r.status !== 'ok');
  if (failed) return { ...failed, runs: runs.length > 1 ? runs : undefined };
  const sorted = [...runs].sort((a, b) => a.per_container_ms - b.per_container_ms);
  const m = sorted[(sorted.length - 1) >> 1];
  return runs.length > 1 ? { ...m, runs: runs.map((r) => ({ ...r })) } : m;
}

// ---- the report ----
const printed = [];
const say = (line) => {
  printed.push(line);
  process.stdout.write(`${line}\n`);
};
const get = (id, n) => results.runs[id]?.byN[n];
const per = (id, n) => (get(id, n)?.status === 'ok' ? get(id, n).per_container_ms : undefined);
const tdPer = (id, n) => (get(id, n)?.status === 'ok' ? get(id, n).teardown_per_container_ms : undefined);
const f = (x, d = 3) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
const ratio = (a, b) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
const why = (id, n) => { const e = get(id, n); return !e ? 'not run' : e.status === 'ok' ? undefined : e.status; };
const isFloor = (id) => IMPLS.find((i) => i.id === id)?.floor;
/** The best floor variant at N: { id, per } (the lower bound everything is compared with). */
function bestFloor(n) {
  let best;
  for (const i of IMPLS) if (i.floor && per(i.id, n) !== undefined && (!best || per(i.id, n) < best.per)) best = { id: i.id, per: per(i.id, n) };
  return best;
}
const floorPer = (n) => bestFloor(n)?.per;
/** The floor's group teardown at N: the fastest of the floor variants' (they all do the same one RTM_DELLINK). */
function floorTeardown(n) {
  const xs = IMPLS.filter((i) => i.floor).map((i) => tdPer(i.id, n)).filter((x) => x !== undefined);
  return xs.length ? Math.min(...xs) : undefined;
}
const rssOf = (e) => Math.max(e.max_rss_mb ?? 0, e.final_max_rss_mb ?? 0, e.teardown_max_rss_mb ?? 0);

function table(title, header, rows) {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells) => cells.map((x, c) => (c === 0 ? String(x).padEnd(widths[c]) : String(x).padStart(widths[c]))).join('  ');
  say(`\n${title}`);
  say(line(header));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) say(line(r));
}

function report() {
  const ids = Object.keys(results.runs);
  const label = (id) => results.runs[id].label;
  const hdr = ['implementation', ...NS.map((n) => `N=${n}`)];
  const m = results.meta;
  say(`\npipework bench: ${m.cpus} CPUs, Linux ${m.kernel}, node ${m.node}; ${PER_BRIDGE} containers per bridge;`
    + ` load average ${m.loadavg_start.map((x) => x.toFixed(1)).join('/')} at start, ${m.loadavg_end.map((x) => x.toFixed(1)).join('/')} at end;`
    + ` ${((Date.parse(m.finished) - Date.parse(m.started)) / 60e3).toFixed(0)} minutes.`);
  say('Each implementation ran in fresh namespaces of its own, and every container it made was read back from the kernel (verify=ok).'
    + ' On a shared machine compare the ratios, not the times.');

  const mainIds = ids.filter((id) => !IMPLS.find((i) => i.id === id)?.base);
  table('Attach, ms per container (ratio to the best floor variant at the same N; ours: also how many times faster than shell-pipework.sh)', hdr,
    [...mainIds.map((id) => [label(id), ...NS.map((n) => {
      const p = per(id, n);
      if (p === undefined) return why(id, n);
      const rf = ratio(p, floorPer(n));
      let cell = `${f(p)} (${rf === undefined ? 'no floor' : `${rf.toFixed(2)}x`})`;
      if (IMPLS.find((i) => i.id === id)?.ours) {
        const rs = ratio(per('shell', n), p);
        cell += rs === undefined ? '' : `, ${rs.toFixed(1)}x faster than shell`;
      }
      return cell;
    })]),
    ['the floor: best of the floor rows', ...NS.map((n) => { const b = bestFloor(n); return b ? `${f(b.per)} (${b.id.replace('floor-', '')})` : 'none'; })]]);
  say('The floor rows and ours give the bridge ports no IPv6 address (our default), as does ip -batch here (addrgenmode none);'
    + ' pyroute2, CNI and the shells leave it on. CLI --batch includes the node process start; lib rows are in-process'
    + ' (the namespaces come from createNetns(), created and timed apart). CNI sends a gratuitous ARP per container;'
    + ' the floor, shells, ip-batch, pyroute2 and ours with announce off send none.');

  table('Kernel work we can avoid: each row against its base, same run (ms per container, change against the base)', hdr,
    ids.filter((id) => IMPLS.find((i) => i.id === id)?.base).map((id) => {
      const base = /** @type {string} */ (IMPLS.find((i) => i.id === id)?.base);
      return [`${label(id)} (vs ${label(base)})`, ...NS.map((n) => {
        const p = per(id, n);
        const b = per(base, n);
        if (p === undefined) return why(id, n);
        return b === undefined ? f(p) : `${f(p)} (${p >= b ? '+' : ''}${(100 * (p / b - 1)).toFixed(0)}%)`;
      })];
    }));

  table('Teardown, ms per container (ratio to the floor\'s group teardown, the fastest of the floor rows)', hdr,
    ids.map((id) => [label(id), ...NS.map((n) => {
      const e = get(id, n);
      if (e?.status !== 'ok') return why(id, n);
      if (e.teardown_per_container_ms === undefined) return n > TEARDOWN_MAX ? 'not timed' : 'none';
      const rf = ratio(e.teardown_per_container_ms, floorTeardown(n));
      return `${f(e.teardown_per_container_ms)} ${e.teardown_mode ?? ''}${rf === undefined ? '' : ` (${rf.toFixed(2)}x)`}`;
    })]));

  table('Setup outside the timing: creating the N container namespaces, ms per container', hdr,
    ids.filter((id) => !isFloor(id) || id === 'floor-seq').map((id) => [label(id), ...NS.map((n) => {
      const e = get(id, n);
      if (e?.status !== 'ok' || e.netns_ms === undefined) return why(id, n) ?? '-';
      return `${f(e.netns_ms / n)} ${e.netns_kind === 'named' || ['ip-batch', 'shell', 'original'].includes(id) ? 'named' : 'anon'}`
        + `${e.netns_includes_sleepers ? '+sleepers' : ''}`;
    })]));

  table('The machine during each run, all its phases: softirq CPU, ms per container (the kernel\'s deferred work, in no process\'s account)',
    hdr, ids.filter((id) => ['lib', 'cli', 'lib-no-ipv6', 'floor-no-ipv6', 'floor-k4096-no-ipv6'].includes(id) || isFloor(id)).map((id) => [label(id), ...NS.map((n) => {
      const e = get(id, n);
      return e?.status !== 'ok' || e.softirq_ms === undefined ? why(id, n) ?? '-' : f(e.softirq_ms / n);
    })]));
  say('Most of it is the containers\' IPv6 start-up traffic (MLD reports, DAD, router solicitations), which each bridge floods to'
    + ' every port: the longer a run lasts, the more of it lands inside the run, and the more CPU it takes from the run.');

  const libIds = ids.filter((id) => id.startsWith('lib'));
  table('Ours: CPU time of our process during attach, ms per container (user = JS, sys = kernel work in our syscalls); the rest of the wall time is waiting',
    hdr, libIds.map((id) => [label(id), ...NS.map((n) => {
      const e = get(id, n);
      if (e?.status !== 'ok' || e.cpu_user_ms === undefined) return why(id, n) ?? '-';
      return `${f(e.cpu_user_ms / n)} + ${f(e.cpu_sys_ms / n)} of ${f(e.per_container_ms)}`;
    })]));

  table('Peak RSS, MB', hdr, [...libIds, 'cli'].filter((id) => results.runs[id]).map((id) => [label(id), ...NS.map((n) => {
    const e = get(id, n);
    return e?.status !== 'ok' ? why(id, n) : f(rssOf(e), 1);
  })]));

  const s = results.single;
  if (s) {
    say('\nOne call, fresh process each time (median of ' + SINGLE_REPS + ', interleaved):');
    if (s.status !== 'ok') say(`  failed: ${s.error}`);
    else {
      say(`  node -e 0 (node startup)                              ${s.node_startup_ms} ms`);
      say(`  pipework br0 <netns> 10.9.0.2/24@10.9.0.1 (bin/pipework) ${s.ours_ms} ms`);
      say(`  same with --no-arp                                    ${s.ours_noarp_ms} ms`);
      say(`  sh $PIPEWORK_SH br0 <pid> 10.9.0.2/24@10.9.0.1         ${s.original_ms === 'not-run' ? 'not run (set PIPEWORK_SH)' : `${s.original_ms} ms`}`
        + `${s.arping_warnings ? ` (arping absent: it sent no ARP)` : ''}`);
    }
  }

  /** @type {typeof results.targets} */
  const cniTargets = [];
  if (results.cni_daemon) require('./cni-daemon').report(results.cni_daemon, say, (name, verdict, detail) => cniTargets.push({ name, verdict, detail }));

  targets();
  results.targets.push(...cniTargets);
  say('\nTargets');
  for (const t of results.targets) say(`  ${t.verdict.padEnd(13)} ${t.name}: ${t.detail}`);

  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  fs.writeFileSync(path.join(OUT, 'report.txt'), printed.join('\n') + '\n');
  say(`\nResults: ${path.relative(process.cwd(), path.join(OUT, 'results.json'))} (and the tables above in report.txt)`);
}

function targets() {
  const T = (name, verdict, detail) => results.targets.push({ name, verdict, detail });
  const ours = [['lib', 'library'], ['cli', 'CLI --batch']].filter(([id]) => results.runs[id]);
  const lo = Math.min(...NS);
  const hi = Math.max(...NS);

  // 1. within 1.2x of the best floor at N = 1000 and N = 10,000
  for (const at of [1000, 10000]) for (const [id, name] of ours) {
    const what = `${name} within 1.2x of the best floor at N=${at}`;
    const p = per(id, at);
    const b = bestFloor(at);
    if (p === undefined || !b) T(what, 'NOT EVALUATED', `needs both at N=${at}`);
    else T(what, p <= 1.2 * b.per ? 'PASS' : 'MISS', `${f(p)} vs ${f(b.per)} ms/container (${b.id}) = ${(p / b.per).toFixed(2)}x`);
  }
  // 2. >= 40x faster than shell-pipework per container, wherever both ran
  for (const [id, name] of ours) {
    const both = NS.filter((n) => per(id, n) !== undefined && per('shell', n) !== undefined);
    if (!both.length) { T(`${name} >= 40x faster than the shell version`, 'NOT EVALUATED', 'shell-pipework did not run at an N where this ran'); continue; }
    const xs = both.map((n) => [n, per('shell', n) / per(id, n)]);
    T(`${name} >= 40x faster than the shell version`, xs.every(([, x]) => x >= 40) ? 'PASS' : 'MISS',
      xs.map(([n, x]) => `N=${n}: ${f(per('shell', n))} / ${f(per(id, n))} = ${x.toFixed(1)}x`).join('; '));
  }
  // 3. growth from the smallest to the largest N no worse than the best floor's
  for (const [id, name] of ours) {
    const g = ratio(per(id, hi), per(id, lo));
    const gf = ratio(floorPer(hi), floorPer(lo));
    const what = `${name} growth ms(${hi})/ms(${lo}) <= the best floor's`;
    if (lo === hi || g === undefined || gf === undefined) T(what, 'NOT EVALUATED', 'needs two N for both');
    else T(what, g <= gf ? 'PASS' : 'MISS', `${g.toFixed(2)}x vs floor ${gf.toFixed(2)}x${lo !== 100 || hi !== 10000 ? ' (target is 100 -> 10000)' : ''}`);
  }
  // 4. host-end IPv6 off against on, ours and the floor alike (a measurement, not a pass/miss)
  for (const at of NS.filter((n) => n >= 1000)) for (const [on, off, name] of [['floor-host-ipv6', `floor-k${VARIANT_K}`, 'floor'], ['lib-host-ipv6', 'lib', 'library']]) {
    const a = per(on, at);
    const b = per(off, at);
    if (a !== undefined && b !== undefined)
      T(`${name}: bridge ports without IPv6 at N=${at}`, 'MEASURED', `${f(b)} vs ${f(a)} ms/container with IPv6 on = ${(100 * (b / a - 1)).toFixed(0)}%`);
  }
  // 4b. ours against the floor once the containers send no IPv6 start-up traffic (a measurement)
  for (const n of NS) {
    const offs = ['floor-no-ipv6', 'floor-k4096-no-ipv6'].map((id) => per(id, n)).filter((x) => x !== undefined);
    const l = per('lib-no-ipv6', n);
    if (l !== undefined && offs.length)
      T(`library against the floor, no IPv6 on the container ends, at N=${n}`, 'MEASURED', `${f(l)} vs ${f(Math.min(...offs))} ms/container = ${(l / Math.min(...offs)).toFixed(2)}x`);
  }
  // 5. peak RSS < 200 MB at N = 10,000
  for (const [id, name] of ours) {
    const at = NS.includes(10000) ? 10000 : hi;
    const e = get(id, at);
    const what = `${name} peak RSS < 200 MB at N=10000`;
    if (e?.status !== 'ok') T(what, 'NOT EVALUATED', `did not run at N=${at}`);
    else T(what, at >= 10000 ? (rssOf(e) < 200 ? 'PASS' : 'MISS') : 'NOT EVALUATED', `${f(rssOf(e), 1)} MB at N=${at}`);
  }
  // 6. teardown of 10,000 within 1.5x of the floor's group teardown
  for (const [id, name] of ours) {
    const at = NS.includes(10000) ? 10000 : hi;
    const t = tdPer(id, at);
    const fl = floorTeardown(at);
    const what = `${name} teardown within 1.5x of the floor's group teardown at N=10000`;
    if (t === undefined || fl === undefined) T(what, 'NOT EVALUATED', `needs both at N=${at}`);
    else T(what, at >= 10000 ? (t <= 1.5 * fl ? 'PASS' : 'MISS') : 'NOT EVALUATED', `${f(t)} vs ${f(fl)} ms/container = ${(t / fl).toFixed(2)}x at N=${at}`);
  }
  // 7. one CLI call faster than one run of the original
  {
    const s = results.single;
    const what = 'one CLI call faster than one run of the original';
    if (!s || s.status !== 'ok' || typeof s.original_ms !== 'number') T(what, 'NOT EVALUATED', 'set PIPEWORK_SH to a copy of the original');
    else T(what, s.ours_ms < s.original_ms ? 'PASS' : 'MISS', `median ${s.ours_ms} ms vs ${s.original_ms} ms (node startup alone: ${s.node_startup_ms} ms)`);
  }
}

main().catch((e) => {
  console.error(e.stack || e.message);
  process.exit(1);
});
