'use strict';
// Shared bits of the bench workers: address scheme, timing, output, checks.
const { spawnSync } = require('node:child_process');

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
 * Checks what an attach left, from outside the implementation:
 * every bridge has its expected number of ports, all UP and LOWER_UP; the
 * host netns has exactly lo + bridges + N veth ends; and a few containers
 * (first, last and random ones) have eth1 up with the expected address and
 * broadcast, and the default route via the gateway. `inNs(i)` gives the
 * command that runs `ip` inside container i (without ip's arguments).
 */
function verifyAttach(n, pb, inNs, samples = 5) {
  const nbr = Math.ceil(n / pb);
  for (let k = 0; k < nbr; k++) {
    const want = k === nbr - 1 ? n - k * pb : pb;
    const ports = JSON.parse(must('ip', ['-j', 'link', 'show', 'master', `br${k}`]));
    const up = ports.filter((p) => p.flags.includes('UP') && p.flags.includes('LOWER_UP')).length;
    if (ports.length !== want || up !== want) fail(`verify: br${k} has ${ports.length} ports (${up} UP,LOWER_UP), want ${want}`);
  }
  const links = JSON.parse(must('ip', ['-j', 'link', 'show'])).length;
  if (links !== 1 + nbr + n) fail(`verify: ${links} host links, want ${1 + nbr + n}`);
  const picks = new Set([0, n - 1]);
  while (picks.size < Math.min(n, samples)) picks.add(Math.floor(Math.random() * n));
  for (const i of picks) {
    const k = bridgeOf(i, pb);
    const [cmd, ...pre] = inNs(i);
    const addr = JSON.parse(must(cmd, [...pre, '-j', '-4', 'addr', 'show', 'dev', 'eth1']));
    const a = addr[0] || {};
    const info = (a.addr_info || []).find((x) => x.local === hostAddr(i, pb));
    if (!a.flags?.includes('UP') || !a.flags?.includes('LOWER_UP')) fail(`verify: container ${i}: eth1 not UP,LOWER_UP`);
    if (!info || info.prefixlen !== 16 || info.broadcast !== broadcastOf(k))
      fail(`verify: container ${i}: eth1 lacks ${hostAddr(i, pb)}/16 brd ${broadcastOf(k)}: ${JSON.stringify(a.addr_info)}`);
    const routes = JSON.parse(must(cmd, [...pre, '-j', '-4', 'route', 'show', 'default']));
    if (!routes.some((r) => r.gateway === gatewayOf(k) && r.dev === 'eth1'))
      fail(`verify: container ${i}: no default route via ${gatewayOf(k)} dev eth1: ${JSON.stringify(routes)}`);
  }
  return { bridge_ports: n, host_links: links, containers_checked: picks.size };
}

/** After teardown only lo and the bridges may be left. */
function verifyTeardown(nbr) {
  const links = JSON.parse(must('ip', ['-j', 'link', 'show']));
  if (links.length !== 1 + nbr) fail(`verify: ${links.length} links left after teardown, want ${1 + nbr}`);
  return links.length;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

module.exports = {
  bridgeOf, hostAddr, gatewayOf, broadcastOf, now, fmt, out, fail, run, must,
  makeBridges, makeNamedNetns, verifyAttach, verifyTeardown, median,
};
