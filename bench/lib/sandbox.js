'use strict';
// bench/lib/sandbox.js: run a bench worker in throwaway namespaces.
//
// enterSandbox() re-execs the calling script under
// `unshare --net --mount --propagation private` (the same recipe as the
// shell baselines), then, in the child, refuses to go on unless the network
// and mount namespaces really differ from the ones it started in and the
// new netns holds nothing but `lo`. Only then does it mount a private tmpfs
// on /run (named netns, CNI IPAM state, batch files) and a fresh sysfs on
// /sys (so /sys/class/net shows the private netns, as the original
// pipework script expects). When the worker exits, everything it made
// vanishes with its namespaces.
const { spawnSync } = require('node:child_process');
const { readlinkSync, mkdirSync } = require('node:fs');

const nsId = (kind) => readlinkSync(`/proc/self/ns/${kind}`);

/** @returns {never} */
function die(msg) {
  process.stderr.write(`bench sandbox: ${msg}\n`);
  process.exit(1);
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error) die(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) die(`${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || '').trim()}`);
  return r.stdout;
}

/** Call first thing in a worker script. Returns only inside the sandbox. Node flags (e.g. --cpu-prof) carry over. */
function enterSandbox(script) {
  if (process.env.PW_BENCH_INNER !== '1') {
    if (process.getuid?.() !== 0) die('must run as root (it only touches a private netns)');
    const r = spawnSync('unshare', ['--net', '--mount', '--propagation', 'private', '--',
      process.execPath, ...process.execArgv, script, ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, PW_BENCH_INNER: '1', PW_BENCH_OUTER_NET: nsId('net'), PW_BENCH_OUTER_MNT: nsId('mnt') },
    });
    if (r.error) die(`unshare: ${r.error.message}`);
    process.exit(r.status ?? 1);
  }
  const outerNet = process.env.PW_BENCH_OUTER_NET;
  const outerMnt = process.env.PW_BENCH_OUTER_MNT;
  if (!outerNet || !outerMnt) die('refusing to run: outer namespaces unknown');
  if (nsId('net') === outerNet) die('refusing to run: not in a private network namespace');
  if (nsId('mnt') === outerMnt) die('refusing to run: not in a private mount namespace');
  const links = JSON.parse(sh('ip', ['-j', 'link', 'show'])).map((l) => l.ifname);
  if (links.length !== 1 || links[0] !== 'lo') die(`refusing to run: new netns is not empty (${links.join(' ')})`);
  // Do not leak the marker to the baselines we might start from here.
  delete process.env.PW_BENCH_INNER;
  delete process.env.PW_BENCH_OUTER_NET;
  delete process.env.PW_BENCH_OUTER_MNT;
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('mount', ['-t', 'tmpfs', '-o', 'mode=755', 'pw-bench', '/run']);
  sh('mount', ['-t', 'sysfs', 'sysfs', '/sys']);
  mkdirSync('/run/netns', { recursive: true });
  mkdirSync('/run/pw-bench', { recursive: true });
  return '/run/pw-bench';
}

module.exports = { enterSandbox, sh, die };
