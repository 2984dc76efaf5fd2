#!/usr/bin/env node
'use strict';
// bench/lib/worker.js: one implementation, one N, in its own throwaway
// namespaces (see sandbox.js). Started by bench/run.js; prints key=value
// lines in the format of the baselines (impl=, netns_ms=, attach_ms=,
// per_container_ms=, verify=ok, teardown_ms=, ...).
//
//   node bench/lib/worker.js MODE N [PER_BRIDGE] [--no-teardown]
//   node bench/lib/worker.js single            (needs PIPEWORK_SH for the original)
//
// MODE:
//   lib       Session.attachMany (announce: false), default concurrency, guests are
//             anonymous netns fds from createNetns(); teardown detachMany
//   lib-arp   the same with announce on (the default)
//   lib-host-ipv6  the same as lib with hostIpv6: true (the bridge ports get
//             IPv6 link-local addresses, as before that default)
//   lib-no-ipv6    the same as lib with ipv6: false (no IPv6 on the container ends)
//   cli       `node bin/pipework.js --no-arp --batch FILE` as a whole process,
//             teardown `node bin/pipework.js unplug --batch FILE2`
//   cni       /usr/lib/cni/bridge + host-local, one ADD (DEL) per container
//   pyroute2  bench/lib/pyroute2_bench.py
//   single    one `pipework` call, fresh process, vs one run of the original
//             script; and `node -e 0`
const path = require('node:path');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const { enterSandbox } = require('./sandbox');
const C = require('./common');

const ROOT = path.resolve(__dirname, '..', '..');
// The installed `pipework` command (bin/pipework.js, which starts node without NODE_EXTRA_CA_CERTS).
const PIPEWORK_BIN = path.join(ROOT, 'bin', 'pipework.js');

// Read the original script before /run is covered (it might live there).
const ORIGINAL = process.env.PIPEWORK_SH && fs.existsSync(process.env.PIPEWORK_SH)
  ? fs.readFileSync(process.env.PIPEWORK_SH, 'utf8') : undefined;

const W = enterSandbox(__filename);

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const flags = new Set(process.argv.slice(2).filter((a) => a.startsWith('--')));
const mode = args[0];
const n = Number(args[1]);
const pb = Number(args[2] ?? 1000);
const teardown = !flags.has('--no-teardown');
const nbr = Math.ceil(n / pb);
const rssMb = () => process.resourceUsage().maxRSS / 1024;
/** Items in flight in attachMany/detachMany: the library's default, or BENCH_CONCURRENCY to try others. */
const CONCURRENCY = process.env.BENCH_CONCURRENCY ? Number(process.env.BENCH_CONCURRENCY) : undefined;

function header(impl, extra = {}) {
  C.out({ impl, n, bridges: nbr, per_bridge: pb, ...extra });
}

function attachLine(t0, t1, extra = {}) {
  C.out({ attach_ms: C.fmt(t1 - t0), per_container_ms: C.fmt((t1 - t0) / n, 4), ...extra });
}

function teardownLine(t0, t1, mode, extra = {}) {
  C.out({ teardown_ms: C.fmt(t1 - t0), teardown_per_container_ms: C.fmt((t1 - t0) / n, 4), teardown_mode: mode, ...extra });
}

function verifyLine(v) {
  C.out({ verify: 'ok', ...v });
}

/** Items for attachMany, made as they are pulled (memory stays flat). */
function* items(fds, options) {
  for (let i = 0; i < fds.length; i++) {
    const k = C.bridgeOf(i, pb);
    yield {
      guest: { fd: fds[i] },
      request: { hostInterface: `br${k}`, addresses: [`${C.hostAddr(i, pb)}/16`], gateway: C.gatewayOf(k), ...options },
    };
  }
}

/** options: the request fields of this variant (announce, hostIpv6, ipv6). */
async function lib(impl, options) {
  const { Session, createNetns } = require(path.join(ROOT, 'dist', 'index.js'));
  C.makeBridges(nbr);
  header(impl, options);
  const rss0 = rssMb();
  let t0 = C.now();
  const fds = [];
  for (let i = 0; i < n; i++) fds.push(createNetns());
  let t1 = C.now();
  C.out({ netns_ms: C.fmt(t1 - t0) });

  const s = new Session();
  let failed = 0;
  const errors = [];
  const cpu0 = process.cpuUsage();
  t0 = C.now();
  // What each attach did is read back from the kernel afterwards (verifyAttach), not taken from its result.
  for await (const r of s.attachMany(items(fds, options), { concurrency: CONCURRENCY })) {
    if (!r.ok) {
      failed++;
      if (errors.length < 3) errors.push(`#${r.index}: ${r.error.message}`);
    }
  }
  t1 = C.now();
  const cpu = process.cpuUsage(cpu0);
  const rssAttach = rssMb();
  // CPU time of this process while attaching (user = JS and our own code, sys = the kernel work done in our syscalls)
  attachLine(t0, t1, {
    max_rss_mb: C.fmt(rssAttach), rss_before_mb: C.fmt(rss0),
    cpu_user_ms: C.fmt(cpu.user / 1000), cpu_sys_ms: C.fmt(cpu.system / 1000),
  });
  if (failed) C.fail(`attach: ${failed} of ${n} failed: ${errors.join('; ')}`);
  const pid = process.pid;
  verifyLine(C.verifyAttach(n, pb, (i) => `/proc/${pid}/fd/${fds[i]}`, { hostIpv6Off: !options.hostIpv6, containerIpv6Off: options.ipv6 === false }));

  if (teardown) {
    failed = 0;
    t0 = C.now();
    for await (const r of s.detachMany(fds.map((fd) => ({ guest: { fd } })), { concurrency: CONCURRENCY })) {
      if (!r.ok) {
        failed++;
        if (errors.length < 3) errors.push(`#${r.index}: ${r.error.message}`);
      } else if (r.result.action !== 'deleted') {
        C.fail(`detach #${r.index}: ${r.result.action}`);
      }
    }
    t1 = C.now();
    teardownLine(t0, t1, 'group', { teardown_max_rss_mb: C.fmt(rssMb()) });
    if (failed) C.fail(`detach: ${failed} of ${n} failed: ${errors.join('; ')}`);
    C.out({ verify_teardown: 'ok', host_links: C.verifyTeardown(nbr) });
  }
  s.close();
  for (const fd of fds) fs.closeSync(fd);
  C.out({ final_max_rss_mb: C.fmt(rssMb()) });
}

/** Runs `node bin/pipework.js ARGS` under /usr/bin/time (for its peak RSS); returns wall ms, status, stderr. */
function timedCli(cliArgs) {
  const rssFile = `${W}/time.out`;
  const useTime = fs.existsSync('/usr/bin/time');
  const [cmd, argv] = useTime
    ? ['/usr/bin/time', ['-f', '%M', '-o', rssFile, PIPEWORK_BIN, ...cliArgs]]
    : [PIPEWORK_BIN, cliArgs];
  const t0 = C.now();
  const r = C.run(cmd, argv);
  const t1 = C.now();
  const rss = useTime ? Number(fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024 : NaN;
  return { t0, t1, status: r.status, stderr: r.stderr, stdout: r.stdout, rss };
}

function cli() {
  C.makeBridges(nbr);
  header('cli-batch');
  let attach = '';
  let unplug = '';
  for (let i = 0; i < n; i++) {
    const k = C.bridgeOf(i, pb);
    attach += `br${k} c${i} ${C.hostAddr(i, pb)}/16@${C.gatewayOf(k)}\n`;
    unplug += `c${i}\n`;
  }
  fs.writeFileSync(`${W}/attach.batch`, attach);
  fs.writeFileSync(`${W}/unplug.batch`, unplug);
  C.makeNamedNetns(n);

  let r = timedCli(['--no-arp', '--batch', `${W}/attach.batch`]);
  attachLine(r.t0, r.t1, { includes: 'process-start', max_rss_mb: C.fmt(r.rss) });
  if (r.status !== 0) C.fail(`pipework --batch exited ${r.status}: ${r.stderr.trim().slice(0, 2000)}`);
  verifyLine(C.verifyAttach(n, pb, (i) => `/run/netns/c${i}`, { hostIpv6Off: true }));
  if (teardown) {
    r = timedCli(['unplug', '--batch', `${W}/unplug.batch`]);
    teardownLine(r.t0, r.t1, 'group', { includes: 'process-start', teardown_max_rss_mb: C.fmt(r.rss) });
    if (r.status !== 0) C.fail(`pipework unplug --batch exited ${r.status}: ${r.stderr.trim().slice(0, 2000)}`);
    C.out({ verify_teardown: 'ok', host_links: C.verifyTeardown(nbr) });
  }
}

function cni() {
  const bin = '/usr/lib/cni';
  if (!fs.existsSync(`${bin}/bridge`) || !fs.existsSync(`${bin}/host-local`)) C.fail('CNI plugins not installed');
  C.makeBridges(nbr);
  header('cni-bridge');
  C.makeNamedNetns(n);
  // host-local keeps its allocations in dataDir: our private tmpfs, never /var/lib/cni.
  const conf = [];
  for (let k = 0; k < nbr; k++) {
    conf.push(JSON.stringify({
      cniVersion: '1.0.0', name: `bench${k}`, type: 'bridge', bridge: `br${k}`,
      isGateway: true, isDefaultGateway: true, ipMasq: false, hairpinMode: false,
      ipam: {
        type: 'host-local', dataDir: `${W}/cni-ipam`,
        ranges: [[{ subnet: `10.${k}.0.0/16`, rangeStart: `10.${k}.0.2`, gateway: C.gatewayOf(k) }]],
      },
    }));
  }
  const env = (cmd, i) => ({
    PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: `c${i}`, CNI_NETNS: `/run/netns/c${i}`,
    CNI_IFNAME: 'eth1', CNI_PATH: bin,
  });
  let t0 = C.now();
  for (let i = 0; i < n; i++) {
    const r = C.run(`${bin}/bridge`, [], { input: conf[C.bridgeOf(i, pb)], env: env('ADD', i) });
    if (r.status !== 0) C.fail(`CNI ADD c${i}: ${r.stdout.trim()} ${r.stderr.trim()}`);
  }
  let t1 = C.now();
  attachLine(t0, t1, { announces: 'gratuitous-arp' });
  verifyLine(C.verifyAttach(n, pb, (i) => `/run/netns/c${i}`));
  if (teardown) {
    t0 = C.now();
    for (let i = 0; i < n; i++) {
      const r = C.run(`${bin}/bridge`, [], { input: conf[C.bridgeOf(i, pb)], env: env('DEL', i) });
      if (r.status !== 0) C.fail(`CNI DEL c${i}: ${r.stdout.trim()} ${r.stderr.trim()}`);
    }
    t1 = C.now();
    teardownLine(t0, t1, 'per-container-DEL');
    C.out({ verify_teardown: 'ok', host_links: C.verifyTeardown(nbr) });
  }
}

function pyroute2() {
  const py = process.env.BENCH_PYTHON;
  if (!py) C.fail('BENCH_PYTHON not set (a python3 that can import pyroute2)');
  const script = path.join(__dirname, 'pyroute2_bench.py');
  C.makeBridges(nbr);
  header('pyroute2');
  C.makeNamedNetns(n);
  const group = 4242;
  const r = C.run(py, [script, 'attach', n, pb, group]);
  if (r.status !== 0) C.fail(`pyroute2 attach: ${r.stderr.trim().slice(-2000)}`);
  process.stdout.write(r.stdout);
  verifyLine(C.verifyAttach(n, pb, (i) => `/run/netns/c${i}`));
  if (teardown) {
    const d = C.run(py, [script, 'teardown', n, group]);
    if (d.status !== 0) C.fail(`pyroute2 teardown: ${d.stderr.trim().slice(-2000)}`);
    process.stdout.write(d.stdout);
    C.out({ verify_teardown: 'ok', host_links: C.verifyTeardown(nbr) });
  }
}

// ---- single invocation: our CLI vs the original script, and node startup ----

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A sleeper inside named netns `ns` (as a container's PID 1 would be); resolves with its PID once it is in. */
async function sleeperIn(ns) {
  const child = spawn('ip', ['netns', 'exec', ns, 'sleep', '120'], { stdio: 'ignore' });
  const want = fs.statSync(`/run/netns/${ns}`).ino;
  for (let t = 0; t < 500; t++) {
    try {
      if (fs.statSync(`/proc/${child.pid}/ns/net`).ino === want) return child;
    } catch { /* not yet */ }
    await sleep(5);
  }
  child.kill();
  C.fail(`sleeper never entered ${ns}`);
}

async function single() {
  const reps = Number(process.env.BENCH_SINGLE_REPS || 5);
  C.must('ip', ['-batch', '-'], { input: 'link add br0 type bridge\naddr add 10.9.0.1/24 dev br0\nlink set br0 up\n' });
  C.out({ impl: 'single', reps });
  let original;
  if (ORIGINAL) {
    original = `${W}/pipework`;
    fs.writeFileSync(original, ORIGINAL);
    fs.mkdirSync(`${W}/bin`, { recursive: true });
    // No Docker daemon here: on cgroup2 the original resolves a guest only via
    // `docker inspect`, so this shim answers with the PID (see pipework-original.sh).
    fs.writeFileSync(`${W}/bin/docker`, '#!/bin/sh\ncase "$2" in\n  *State.Pid*) echo "$3" ;;\n'
      + '  *.ID*) echo "pwbench$3" ;;\n  *.Name*) echo "/pwbench$3" ;;\n  *) exit 1 ;;\nesac\n', { mode: 0o755 });
  }
  const time = (cmd, argv, env) => {
    const t0 = C.now();
    const r = C.run(cmd, argv, env ? { env } : {});
    const ms = C.now() - t0;
    if (r.status !== 0) C.fail(`${cmd} ${argv.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout).trim()}`);
    return { ms, out: r.stdout + r.stderr };
  };
  /** @type {Record<'node' | 'ours' | 'ours_noarp' | 'original', number[]>} */
  const res = { node: [], ours: [], ours_noarp: [], original: [] };
  let arpingWarnings = 0;
  // Interleaved, so that noise hits every variant alike.
  for (let rep = 0; rep < reps; rep++) {
    res.node.push(time(process.execPath, ['-e', '0']).ms);
    for (const variant of ['ours', 'ours_noarp']) {
      const ns = `s${variant}${rep}`;
      C.must('ip', ['netns', 'add', ns]);
      const extra = variant === 'ours_noarp' ? ['--no-arp'] : [];
      res[variant].push(time(PIPEWORK_BIN, [...extra, 'br0', ns, '10.9.0.2/24@10.9.0.1']).ms);
      const ad = JSON.parse(C.must('ip', ['-n', ns, '-j', '-4', 'addr', 'show', 'dev', 'eth1']));
      if (!ad[0]?.addr_info?.some((a) => a.local === '10.9.0.2')) C.fail(`single: ${variant}: no address in ${ns}`);
      C.must('ip', ['-n', ns, 'link', 'del', 'eth1']);
      C.must('ip', ['netns', 'del', ns]);
    }
    if (original) {
      const ns = `sorig${rep}`;
      C.must('ip', ['netns', 'add', ns]);
      const sleeper = await sleeperIn(ns);
      const env = { ...process.env, PATH: `${W}/bin:${process.env.PATH}` };
      const r = time('sh', [original, 'br0', String(sleeper.pid), '10.9.0.2/24@10.9.0.1'], env);
      if (/arping/.test(r.out)) arpingWarnings++;
      res.original.push(r.ms);
      const ad = JSON.parse(C.must('ip', ['-n', ns, '-j', '-4', 'addr', 'show', 'dev', 'eth1']));
      if (!ad[0]?.addr_info?.some((a) => a.local === '10.9.0.2')) C.fail(`single: original: no address in ${ns}`);
      C.must('ip', ['link', 'del', `veth1pl${sleeper.pid}`]);
      sleeper.kill();
      await /** @type {Promise<void>} */ (new Promise((r) => sleeper.exitCode !== null || sleeper.signalCode !== null ? r() : sleeper.once('exit', r)));
      C.must('ip', ['netns', 'del', ns]);
    }
  }
  const med = (xs) => (xs.length ? C.fmt(C.median(xs)) : 'not-run');
  C.out({
    node_startup_ms: med(res.node), ours_ms: med(res.ours), ours_noarp_ms: med(res.ours_noarp), original_ms: med(res.original),
    arping_warnings: arpingWarnings,
  });
  C.out({ samples: JSON.stringify(Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v.map((x) => +x.toFixed(1))]))) });
}

const modes = {
  lib: () => lib('lib', { announce: false }),
  'lib-arp': () => lib('lib-arp', { announce: true }),
  'lib-host-ipv6': () => lib('lib-host-ipv6', { announce: false, hostIpv6: true }),
  'lib-no-ipv6': () => lib('lib-no-ipv6', { announce: false, ipv6: false }),
  cli, cni, pyroute2, single,
};
if (!modes[mode] || (mode !== 'single' && !(n >= 1 && pb >= 1 && pb <= 1023 && nbr <= 250)))
  C.fail(`usage: worker.js ${Object.keys(modes).join('|')} N [PER_BRIDGE<=1023] [--no-teardown]`);
Promise.resolve(modes[mode]()).catch((e) => C.fail(e.stack || e.message));
