#!/usr/bin/env node
// `pipework daemon` under CNI ADD/DEL pairs, as the shim sends them (one
// connection per call): the daemon's RSS must stay flat, its fds and sockets come back to idle, and
// no interface or IP reservation may be left. `npm run soak:daemon` (10,000
// pairs by default, SOAK_PAIRS to change); host-local IPAM from Debian's
// containernetworking-plugins. Run inside scripts/in-netns.js only.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } = require('node:fs');
const { request } = require('node:http');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { fdCount, quietFdCount } = require('./lib/common');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function post(socketPath, path, body) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: body ? 'POST' : 'GET', agent: false, headers: body ? { 'Content-Type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The daemon's resident memory (MB). */
function rssMB(pid) {
  // A live process's status always has VmRSS.
  const rss = Number(/** @type {RegExpExecArray} */ (/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8')))[1]) / 1024;
  return +rss.toFixed(1);
}

/** The daemon's open fds, sockets among them, and resident memory (MB). */
const sample = (pid) => ({ ...fdCount(pid), rssMB: rssMB(pid) });

async function soak(pairs) {
  if (process.env.PIPEWORK_IN_NETNS !== '1') throw new Error('run inside scripts/in-netns.js (npm run soak:daemon)');
  const dir = mkdtempSync(join(tmpdir(), 'pw-dsoak-'));
  const socket = join(dir, 'pipework.sock');
  // Started as users start it: the launcher gives the daemon its V8 options.
  const daemon = spawn(join(__dirname, '..', 'bin', 'pipework.js'), ['daemon', '--socket', socket], { stdio: 'inherit' });
  const ns = `pwsoak${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  const conf = JSON.stringify({
    cniVersion: '1.0.0', name: 'soak', type: 'pipework', bridge: 'brsoak',
    ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: '10.66.0.0/16' }]] },
  });
  const call = async (command, i) => {
    const env = { CNI_COMMAND: command, CNI_CONTAINERID: `soak-${i}`, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
    const r = await post(socket, '/v1/cni', JSON.stringify({ env, stdin: conf }));
    const out = JSON.parse(r.text);
    if (r.status !== 200 || out.exitCode !== 0) throw new Error(`${command} ${i}: ${r.status} ${r.text}`);
  };
  try {
    for (let t = 0; !existsSync(socket); t++) {
      if (t > 200 || daemon.exitCode !== null) throw new Error('the daemon did not start');
      await sleep(50);
    }
    await sleep(500);
    const idle = sample(daemon.pid);
    // RSS settles over the first few thousand calls (JIT, allocator arenas): 10,000 pairs on a 2-core
    // machine went 50 (idle) -> 63 MB at 500 pairs -> 71.5 MB at 3,750, then stayed at 71-73 MB to the end.
    const warmup = Math.floor(pairs * 0.3);
    const every = Math.max(1, Math.floor((pairs - warmup) / 20));
    const samples = [];
    const t0 = Date.now();
    for (let i = 0; i < pairs; i++) {
      if (i >= warmup && (i - warmup) % every === 0) samples.push(sample(daemon.pid));
      await call('ADD', i);
      await call('DEL', i);
    }
    const seconds = (Date.now() - t0) / 1000;
    // fds and sockets are compared once nothing is in flight (see
    // quietFdCount): mid-run samples carry 0-10 sockets of DELs already answered.
    const end = { ...(await quietFdCount(daemon.pid)), rssMB: rssMB(daemon.pid) };
    samples.push(end);
    const first = samples.slice(0, 5);
    const last = samples.slice(-5);
    const m = (xs, k) => median(xs.map((x) => x[k]));
    const leftovers = {
      links: JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' })).filter((l) => l.ifname !== 'lo').length,
      reservations: readdirSync(join(dir, 'ipam', 'soak')).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip')).length,
    };
    return {
      pairs, seconds, msPerPair: +((seconds * 1000) / pairs).toFixed(2), idle,
      first: { fds: m(first, 'fds'), sockets: m(first, 'sockets'), rssMB: m(first, 'rssMB') },
      last: { fds: m(last, 'fds'), sockets: m(last, 'sockets'), rssMB: m(last, 'rssMB') },
      end,
      leftovers,
    };
  } finally {
    daemon.kill('SIGTERM');
    await /** @type {Promise<void>} */ (new Promise((r) => (daemon.exitCode !== null ? r() : daemon.once('exit', r))));
    execFileSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { soak };

if (require.main === module) {
  soak(Number(process.env.SOAK_PAIRS ?? 10000)).then((r) => {
    console.log(JSON.stringify(r));
    const ok = r.idle.rssMB < 80 && r.end.fds <= r.idle.fds && r.end.sockets <= r.idle.sockets
      && r.last.rssMB < r.first.rssMB * 1.1 && r.leftovers.links === 0 && r.leftovers.reservations === 0;
    console.log(ok ? 'PASS: idle RSS under 80 MB; RSS flat; fds and sockets back to idle; nothing left' : 'FAIL');
    process.exit(ok ? 0 : 1);
  }, (e) => {
    console.error(e);
    process.exit(1);
  });
}
