'use strict';
// Shared bits of the bench workers: address scheme, timing, output, checks.
const { spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, readdirSync, readlinkSync, statSync } = require('node:fs');
const path = require('node:path');

/** Address scheme of all benches (see bench/README.md); our runs use the last address of the /16 as the gateway. */
const bridgeOf = (i, pb) => Math.floor(i / pb);
const hostAddr = (i, pb) => {
  const k = bridgeOf(i, pb);
  const h = (i % pb) + 2;
  return `10.${k}.${h >> 8}.${h & 255}`;
};
const gatewayOf = (k) => `10.${k}.255.254`;
const broadcastOf = (k) => `10.${k}.255.255`;

const now = () => Number(process.hrtime.bigint()) / 1e6;
const fmt = (x, d = 1) => x.toFixed(d);

/** One key=value output line (the format of the baselines). */
function out(fields) {
  process.stdout.write(Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ') + '\n');
}

/** @returns {never} */
function fail(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  return r;
}

function must(cmd, args, opts = {}) {
  const r = run(cmd, args, opts);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ').slice(0, 200)} failed (${r.status}): ${(r.stderr || '').trim().slice(0, 2000)}`);
  return r.stdout;
}

/** Bridges br0..br<nbr-1>, each with its gateway address, up (untimed setup). */
function makeBridges(nbr) {
  let b = '';
  for (let k = 0; k < nbr; k++)
    b += `link add br${k} type bridge\naddr add ${gatewayOf(k)}/16 brd ${broadcastOf(k)} dev br${k}\nlink set br${k} up\n`;
  must('ip', ['-batch', '-'], { input: b });
}

/** N named netns c0..c<N-1> with one `ip -batch`, timed: prints netns_ms (netns_kind=named). */
function makeNamedNetns(n) {
  let b = '';
  for (let i = 0; i < n; i++) b += `netns add c${i}\n`;
  const t0 = now();
  must('ip', ['-batch', '-'], { input: b });
  out({ netns_ms: fmt(now() - t0), netns_kind: 'named' });
}

/**
 * Checks what an attach left, from outside the implementation, for every
 * container: `floor check` (bench/floor.c, built by run.js, path in
 * PW_BENCH_FLOOR) reads back over netlink, in this netns and in each
 * container's, every bridge's ports (count, UP and LOWER_UP), the number of
 * host links, and each eth1 (UP and LOWER_UP, address, prefix and broadcast,
 * the default route via the gateway on eth1). `nsPath(i)` names container
 * i's netns. expect: { hostIpv6Off, containerIpv6Off } also checks that
 * those ends have addrgenmode none and no IPv6 address. Returns the fields of
 * its verify=ok line.
 */
function verifyAttach(n, pb, nsPath, expect = {}) {
  const floor = process.env.PW_BENCH_FLOOR;
  if (!floor) fail('PW_BENCH_FLOOR is not set (the floor binary, which checks every container; run.js sets it)');
  let paths = '';
  for (let i = 0; i < n; i++) paths += `${nsPath(i)}\n`;
  const args = ['check', String(n), String(pb), '--gateway-last',
    ...(expect.hostIpv6Off ? ['--host-addrgen-none'] : []), ...(expect.containerIpv6Off ? ['--guest-addrgen-none'] : [])];
  const r = run(floor, args, { input: paths });
  if (r.status !== 0) fail(`verify: ${(r.stderr || '').trim() || `floor check exited ${r.status}`}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('verify=ok'));
  if (!line) fail(`verify: floor check printed no verify=ok: ${r.stdout.trim()}`);
  return Object.fromEntries(line.split(' ').slice(1).map((t) => t.split('=')));
}

/** After teardown only lo and the bridges may be left. */
function verifyTeardown(nbr) {
  const links = JSON.parse(must('ip', ['-j', 'link', 'show']));
  if (links.length !== 1 + nbr) fail(`verify: ${links.length} links left after teardown, want ${1 + nbr}`);
  return links.length;
}

/**
 * bench/NAME.c built into bench/out/NAME (gcc -O2 and `flags`) when missing
 * or older than its source; returns the program's path.
 */
function buildC(name, flags = []) {
  const src = path.join(__dirname, '..', `${name}.c`);
  const bin = path.join(__dirname, '..', 'out', name);
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return bin;
  mkdirSync(path.dirname(bin), { recursive: true });
  const r = spawnSync('gcc', ['-O2', ...flags, '-o', bin, src], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`gcc failed to build bench/${name}.c`);
  return bin;
}

/** Open fds of process `pid` (/proc/<pid>/fd), and how many of them are sockets. */
function fdCount(pid) {
  const dir = `/proc/${pid}/fd`;
  const links = readdirSync(dir).map((fd) => { try { return readlinkSync(`${dir}/${fd}`); } catch { return ''; } });
  return { fds: links.length, sockets: links.filter((l) => l.startsWith('socket:')).length };
}

/**
 * fdCount(pid) once nothing is in flight: a detach (a CNI DEL) is done when
 * the kernel announces the link gone, and its socket stays open ~20 ms
 * longer, until the kernel's RCU barrier returns. Three equal readings 50 ms
 * apart (at most 5 s).
 * @returns {Promise<ReturnType<typeof fdCount>>}
 */
async function quietFdCount(pid) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let seen = [];
  for (let t = 0; t < 100; t++) {
    seen = [...seen.slice(-2), JSON.stringify(fdCount(pid))];
    if (seen.length === 3 && seen.every((x) => x === seen[0])) break;
    await sleep(50);
  }
  return JSON.parse(seen[seen.length - 1]);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

module.exports = {
  bridgeOf, hostAddr, gatewayOf, broadcastOf, now, fmt, out, fail, run, must,
  makeBridges, makeNamedNetns, verifyAttach, verifyTeardown, buildC, fdCount, quietFdCount, median,
};
