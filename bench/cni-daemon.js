#!/usr/bin/env node
'use strict';
// bench/cni-daemon.js: the CNI door, side by side in one sandbox, calls
// alternating, host-local IPAM in both:
//   ours  build/Release/pipework-cni-shim -> `pipework daemon` (bin/pipework.js)
//   ref   the reference bridge plugin (/usr/lib/cni/bridge), Debian's Go build
// Each call is a fresh process as a runtime makes it (spawned, stdin written,
// stdout read, exit awaited), timed from spawn to exit.
//   1. SEQ pods one after another (ADD ours, ADD ref, alternating which goes
//      first), then their DELs: medians.
//   2. Bursts of 30 parallel ADDs, ours then ref then ours...: p50, p99 per
//      pod; started all at once by bench/burst.c (posix_spawn, as a Go runtime
//      execs), not from Node, whose spawns would delay one another.
//   3. The shim with no daemon (it execs bin/pipework-cni.js) against
//      bin/pipework-cni.js run directly: ADD medians; and what the shim adds
//      to the program it execs, alone (shim execing /bin/true against
//      /bin/true, many times: the ADDs' own noise is larger than that).
//   4. The daemon's RSS idle, after start and after all the above.
//   5. PODS more pods one after another, left attached: the per-pod cost of
//      the first and the last tenth (flat = no growth beyond the reference's).
// `npm run bench` runs it as one section (bench/run.js); alone:
//   node bench/cni-daemon.js   (BENCH_CNI_SEQ=100, BENCH_CNI_PODS=1000, BENCH_CNI_BURSTS=3)
const path = require('node:path');
const fs = require('node:fs');
const net = require('node:net');
const { spawn, spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const SHIM = path.join(ROOT, 'build', 'Release', 'pipework-cni-shim');
const NODE_PLUGIN = path.join(ROOT, 'bin', 'pipework-cni.js');
const REF = '/usr/lib/cni';
const BURST = 30;

// ---- the section, as bench/run.js calls it ----

/** Runs this file in a sandbox of its own; resolves with its results (or {status: 'failed', error}). */
async function run(runChild, log) {
  if (!fs.existsSync(SHIM)) return { status: 'not built (npm install builds build/Release/pipework-cni-shim)' };
  if (!fs.existsSync(`${REF}/bridge`)) return { status: 'reference CNI plugins not installed' };
  log('CNI door: shim + pipework daemon vs the reference bridge plugin, host-local in both, calls alternating');
  const r = await runChild(process.execPath, [__filename], 60 * 60e3);
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) return { status: 'failed', error: (r.stderr.trim() || `exit ${r.status}`).split('\n').slice(-5).join(' | ') };
  return { status: 'ok', ...JSON.parse(line) };
}

const f = (x, d = 1) => (typeof x === 'number' ? x.toFixed(d) : '-');

/** The section's table and its targets (T(name, verdict, detail)). */
function report(r, say, T) {
  say('\nCNI door: ms per call, each a fresh process from spawn to exit (ours: shim + pipework daemon; reference: /usr/lib/cni/bridge; host-local in both)');
  if (!r || r.status !== 'ok') {
    say(`  ${r ? r.status : 'not run'}${r?.error ? `: ${r.error}` : ''}`);
    return;
  }
  say(`  load average at start ${r.load.map((x) => x.toFixed(1)).join('/')}, at end ${r.loadEnd.map((x) => x.toFixed(1)).join('/')};`
    + ` medians of ${r.seqPods} pods each; then ${r.pods} pods kept attached`);
  const rows = [
    ['ADD, median', r.add.ours, r.add.ref],
    ['DEL, median', r.del.ours, r.del.ref],
    [`burst of ${BURST} ADDs, p50 per pod`, r.burst.ours.p50, r.burst.ref.p50],
    [`burst of ${BURST} ADDs, p99 per pod`, r.burst.ours.p99, r.burst.ref.p99],
    [`ADD, pods 1-${r.tenth} of ${r.pods}, median`, r.flat.ours.first, r.flat.ref.first],
    [`ADD, pods ${r.pods - r.tenth + 1}-${r.pods} of ${r.pods}, median`, r.flat.ours.last, r.flat.ref.last],
  ];
  say(`  ${'call'.padEnd(34)} ${'ours'.padStart(8)} ${'reference'.padStart(10)} ${'ratio'.padStart(7)}`);
  for (const [name, a, b] of rows) say(`  ${name.padEnd(34)} ${f(a).padStart(8)} ${f(b).padStart(10)} ${`${f(a / b, 2)}x`.padStart(7)}`);
  say(`  shim without a daemon (execs pipework-cni): ADD median ${f(r.fallback.shim)} ms; pipework-cni alone ${f(r.fallback.node)} ms;`
    + ` what the shim adds to the program it execs: ${f(r.fallback.overhead, 2)} ms`);
  say(`  pipework daemon RSS: ${f(r.rss.start)} MB idle after start, ${f(r.rss.end)} MB idle after all the calls`);

  const half = (name, a, b) => T(name, a <= 0.5 * b ? 'PASS' : 'MISS', `${f(a)} vs ${f(b)} ms = ${f(a / b, 2)}x (target 0.5x)`);
  half('CNI ADD through shim + daemon at most 0.5x the reference bridge plugin (median)', r.add.ours, r.add.ref);
  half('CNI DEL through shim + daemon at most 0.5x the reference (median)', r.del.ours, r.del.ref);
  half(`CNI burst of ${BURST} parallel ADDs, p50 per pod at most 0.5x the reference`, r.burst.ours.p50, r.burst.ref.p50);
  half(`CNI burst of ${BURST} parallel ADDs, p99 per pod at most 0.5x the reference`, r.burst.ours.p99, r.burst.ref.p99);
  // Flat = no growth of our own: what grows as pods pile up (bridge ports, the reservations host-local
  // reads on every call) grows for the reference alike; ours may not add more on top.
  const growth = r.flat.ours.last - r.flat.ours.first;
  const refGrowth = r.flat.ref.last - r.flat.ref.first;
  T(`CNI ${r.pods} pods one after another: per-pod cost flat (no growth beyond the reference's)`, growth <= Math.max(2, refGrowth) ? 'PASS' : 'MISS',
    `ours ${f(r.flat.ours.first)} -> ${f(r.flat.ours.last)} ms (+${f(growth)}), reference ${f(r.flat.ref.first)} -> ${f(r.flat.ref.last)} ms (+${f(refGrowth)})`);
  T('CNI shim without a daemon at most pipework-cni + 5 ms', r.fallback.overhead <= 5 ? 'PASS' : 'MISS',
    `the shim adds ${f(r.fallback.overhead, 2)} ms to the program it execs; ADD ${f(r.fallback.shim)} vs ${f(r.fallback.node)} ms end to end (noise of this machine included)`);
  const rss = Math.max(r.rss.start, r.rss.end);
  T('pipework daemon idle RSS under 80 MB', rss < 80 ? 'PASS' : 'MISS', `${f(r.rss.start)} MB after start, ${f(r.rss.end)} MB after ${r.calls} calls`);
}

module.exports = { run, report };

// ---- the measurement, in its own sandbox ----

if (require.main === module) measure().catch((e) => {
  process.stderr.write(`bench cni-daemon: ${e.stack || e}\n`);
  process.exit(1);
});

async function measure() {
  const { enterSandbox, sh } = require('./lib/sandbox');
  const { buildC, median } = require('./lib/common');
  const burstLauncher = buildC('burst');
  const W = enterSandbox(__filename);
  const os = require('node:os');
  const load = os.loadavg();
  const pods = Number(process.env.BENCH_CNI_PODS || 1000);
  const seqPods = Number(process.env.BENCH_CNI_SEQ || 100);
  const bursts = Number(process.env.BENCH_CNI_BURSTS || 3);
  const fallbackReps = Number(process.env.BENCH_CNI_FALLBACK_REPS || 21);
  const overheadReps = Number(process.env.BENCH_CNI_OVERHEAD_REPS || 200);
  const socket = `${W}/pipework.sock`;
  let calls = 0;

  // Named netns for every pod of every phase, made in one go (untimed).
  const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const all = [...names('o', seqPods + pods), ...names('r', seqPods + pods), ...names('bo', BURST), ...names('br', BURST), ...names('fs', fallbackReps), ...names('fn', fallbackReps)];
  sh('ip', ['-batch', '-'], { input: all.map((n) => `netns add ${n}\n`).join('') });

  const conf = (type, bridge, net, subnet) => JSON.stringify({
    cniVersion: '1.0.0', name: net, type, bridge, ...(type === 'bridge' ? { isGateway: false, ipMasq: false, hairpinMode: false } : {}),
    ipam: { type: 'host-local', subnet, dataDir: `${W}/ipam` },
  });
  const ours = conf('pipework', 'pwbr0', 'ours', '10.211.0.0/16');
  const ref = conf('bridge', 'refbr0', 'ref', '10.210.0.0/16');
  const fallbackConf = conf('pipework', 'pwbr1', 'fallback', '10.212.0.0/16');

  /** One plugin process: resolves with ms from spawn to exit; throws on a non-zero exit. */
  const call = (bin, command, netns, input, extraEnv = {}) => new Promise((resolve, reject) => {
    const env = {
      PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: `id-${netns}`, CNI_NETNS: `/run/netns/${netns}`,
      CNI_IFNAME: 'eth0', CNI_PATH: REF, PIPEWORK_SOCKET: socket, ...extraEnv,
    };
    const t0 = process.hrtime.bigint();
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      calls++;
      if (code !== 0) reject(new Error(`${path.basename(bin)} ${command} ${netns}: exit ${code}: ${out.trim()} ${err.trim()}`));
      else resolve({ ms, out });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
  const withPrev = (input, out) => JSON.stringify({ ...JSON.parse(input), prevResult: JSON.parse(out) });

  // The daemon, ready when its socket accepts.
  const daemon = spawn(process.execPath, [path.join(ROOT, 'bin', 'pipework.js'), 'daemon', '--socket', socket, '-q'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const daemonGone = new Promise((r) => daemon.once('exit', r));
  for (let i = 0; ; i++) {
    if (daemon.exitCode !== null) throw new Error(`pipework daemon exited ${daemon.exitCode}`);
    const up = await new Promise((r) => net.connect(socket).once('connect', function () { this.destroy(); r(true); }).once('error', () => r(false)));
    if (up) break;
    if (i > 600) throw new Error('pipework daemon did not listen within 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  const rssMb = () => Number(/** @type {RegExpExecArray} */ (/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${daemon.pid}/status`, 'utf8')))[1]) / 1024;
  await new Promise((r) => setTimeout(r, 1000));
  const rssStart = rssMb();

  // Warm-up: the first calls pay for cold caches on both sides.
  const w1 = await call(SHIM, 'ADD', 'bo0', ours);
  const w2 = await call(`${REF}/bridge`, 'ADD', 'br0', ref);
  await call(SHIM, 'DEL', 'bo0', withPrev(ours, w1.out));
  await call(`${REF}/bridge`, 'DEL', 'br0', withPrev(ref, w2.out));

  // 1. Pods one after another, alternating which goes first; then their DELs, alternating too.
  const addO = [];
  const addR = [];
  const delO = [];
  const delR = [];
  const sequence = async (first, count, adds, dels) => {
    const outO = [];
    const outR = [];
    for (let i = first; i < first + count; i++) {
      const a = () => call(SHIM, 'ADD', `o${i}`, ours).then((r) => { adds.o.push(r.ms); outO.push(r.out); });
      const b = () => call(`${REF}/bridge`, 'ADD', `r${i}`, ref).then((r) => { adds.r.push(r.ms); outR.push(r.out); });
      if (i % 2) { await b(); await a(); } else { await a(); await b(); }
    }
    if (!dels) return;
    for (let i = 0; i < count; i++) {
      const a = () => call(SHIM, 'DEL', `o${first + i}`, withPrev(ours, outO[i])).then((r) => dels.o.push(r.ms));
      const b = () => call(`${REF}/bridge`, 'DEL', `r${first + i}`, withPrev(ref, outR[i])).then((r) => dels.r.push(r.ms));
      if (i % 2) { await b(); await a(); } else { await a(); await b(); }
    }
  };
  await sequence(0, seqPods, { o: addO, r: addR }, { o: delO, r: delR });

  // 2. Bursts: BURST ADDs at once, started by bench/burst.c as a runtime
  //    starts them, per-pod latency; DELs after each, untimed.
  const burstO = [];
  const burstR = [];
  const burstOut = `${W}/burst`;
  fs.mkdirSync(burstOut);
  const burst = async (bin, prefix, input, into) => {
    const pods = names(prefix, BURST);
    const r = spawnSync(burstLauncher, [bin, 'ADD', burstOut, ...pods], {
      input, encoding: 'utf8', env: { PATH: process.env.PATH, CNI_PATH: REF, PIPEWORK_SOCKET: socket },
    });
    if (r.status !== 0) throw new Error(`burst: exit ${r.status}: ${r.stderr.trim()}`);
    for (const line of r.stdout.trim().split('\n')) {
      const [ns, ms, status] = line.split(' ');
      if (status !== '0') throw new Error(`${path.basename(bin)} ADD ${ns}: exit ${status}: ${fs.readFileSync(`${burstOut}/${ns}.out`, 'utf8').trim()} ${fs.readFileSync(`${burstOut}/${ns}.err`, 'utf8').trim()}`);
      into.push(Number(ms));
      calls++;
    }
    await Promise.all(pods.map((ns) => call(bin, 'DEL', ns, withPrev(input, fs.readFileSync(`${burstOut}/${ns}.out`, 'utf8')))));
  };
  for (let k = 0; k < bursts; k++) {
    if (k % 2) { await burst(`${REF}/bridge`, 'br', ref, burstR); await burst(SHIM, 'bo', ours, burstO); }
    else { await burst(SHIM, 'bo', ours, burstO); await burst(`${REF}/bridge`, 'br', ref, burstR); }
  }

  // 4. RSS idle after all of it.
  await new Promise((r) => setTimeout(r, 2000));
  const rssEnd = rssMb();

  // 3. No daemon: the shim execs the Node plugin; against the Node plugin run directly.
  const nowhere = { PIPEWORK_SOCKET: `${W}/no-daemon.sock` };
  const fbS = [];
  const fbN = [];
  for (let i = 0; i < fallbackReps; i++) {
    const a = () => call(SHIM, 'ADD', `fs${i}`, fallbackConf, nowhere).then((r) => fbS.push(r.ms));
    const b = () => call(NODE_PLUGIN, 'ADD', `fn${i}`, fallbackConf, nowhere).then((r) => fbN.push(r.ms));
    if (i % 2) { await b(); await a(); } else { await a(); await b(); }
  }

  const viaShim = [];
  const alone = [];
  for (let i = 0; i < overheadReps; i++) {
    const a = () => call(SHIM, 'VERSION', 'none', '', { ...nowhere, PIPEWORK_CNI_PLUGIN: '/bin/true' }).then((r) => viaShim.push(r.ms));
    const b = () => call('/bin/true', 'VERSION', 'none', '').then((r) => alone.push(r.ms));
    if (i % 2) { await b(); await a(); } else { await a(); await b(); }
  }

  // 5. PODS pods one after another, left attached (the 1000th pod joins a bridge with 999 others and
  // host-local reads 999 reservations): per-pod ADD cost of the first and the last tenth.
  const flatO = [];
  const flatR = [];
  await sequence(seqPods, pods, { o: flatO, r: flatR });

  daemon.kill('SIGTERM');
  await daemonGone;

  const q = (xs, p) => {
    const s = [...xs].sort((x, y) => x - y);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  };
  const tenth = Math.max(1, Math.floor(pods / 10));
  process.stdout.write(`${JSON.stringify({
    pods, seqPods, tenth, calls, load, loadEnd: os.loadavg(),
    add: { ours: median(addO), ref: median(addR) },
    del: { ours: median(delO), ref: median(delR) },
    burst: { ours: { p50: q(burstO, 50), p99: q(burstO, 99) }, ref: { p50: q(burstR, 50), p99: q(burstR, 99) } },
    flat: {
      ours: { first: median(flatO.slice(0, tenth)), last: median(flatO.slice(-tenth)) },
      ref: { first: median(flatR.slice(0, tenth)), last: median(flatR.slice(-tenth)) },
    },
    fallback: { shim: median(fbS), node: median(fbN), overhead: median(viaShim) - median(alone) },
    rss: { start: rssStart, end: rssEnd },
  })}\n`);
}
