// Random and mutated input to the argv parser, the route/rule grammar and the
// netlink reply decoder: only clean errors, never a crash or a hang.
// FUZZ_ITERATIONS sets the length (npm run fuzz runs a long one); the seed is
// printed so a failure can be replayed with FUZZ_SEED.
import { describe, it } from 'vitest';
import { parseArgs } from '../../src/cli/args';
import { splitLine } from '../../src/cli/batch';
import { parseRoute, parseRule } from '../../src/plan/ip-grammar';
import { parseReplies } from '../../src/netlink/message';
import { parseLink } from '../../src/netlink/link';
import { parseAttrs } from '../../src/netlink/attributes';
import { MalformedMessageError, PipeworkError } from '../../src/errors';
import { encodeRequest } from '../../src/netlink/message';
import { createVeth } from '../../src/netlink/kinds/veth';
import { routeRequest } from '../../src/netlink/route';
import { AF_INET } from '../../src/netlink/constants';
import { mulberry32 } from '../helpers/random';

const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 3000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9);

const rng = mulberry32;

const WORDS = ['br0', 'eth0', 'mac:02:00:00:00:00:01', '-i', '-l', '-a', '4', '6', '--dry-run', '--json', '--wait', '--batch', '-',
  '--direct-phys', '--macvlan-mode', 'vepa', '--timeout', '1', 'unplug', 'route', 'rule', 'tc', 'c1', '1234', '/run/netns/x',
  '10.0.0.2/24', '10.0.0.2/24@10.0.0.1', '2001:db8::2/64@2001:db8::1', '0/0', 'dhcp', 'udhcpc-f:-t 3', 'dhclient', 'U:host',
  '02:00:00:00:00:01@10', '@8001', 'add', 'del', 'default', 'via', 'dev', 'table', 'main', 'metric', 'proto', 'static', 'scope',
  'link', 'mtu', 'onlink', 'from', 'to', 'fwmark', '0x10/0xff', 'iif', 'oif', 'lookup', 'pref', 'not', 'all', '10.0.0.0/8', '', '@', '/', ':'];

function randomWord(r: () => number): string {
  if (r() < 0.8) return WORDS[Math.floor(r() * WORDS.length)];
  const len = Math.floor(r() * 12);
  return Array.from({ length: len }, () => String.fromCharCode(32 + Math.floor(r() * 95))).join('');
}

/** Fine outcomes: a value, or one of our clean errors (exactly that class: a subclass such as an engine error is not fine). */
function clean(fn: () => unknown, allowed: (new (...a: any[]) => Error)[] = [PipeworkError]) {
  try {
    fn();
  } catch (e) {
    if (!allowed.some((c) => Object.getPrototypeOf(e) === c.prototype)) throw e;
  }
}

describe(`fuzz (seed ${SEED}, ${ITERATIONS} iterations)`, () => {
  it('argv parser and batch line splitter', () => {
    const r = rng(SEED);
    for (let i = 0; i < ITERATIONS; i++) {
      const argv = Array.from({ length: Math.floor(r() * 9) }, () => randomWord(r));
      clean(() => parseArgs(argv));
      clean(() => splitLine(argv.join(r() < 0.5 ? ' ' : '"\'\\# ')));
    }
  });

  it('route and rule grammar', () => {
    const r = rng(SEED + 1);
    for (let i = 0; i < ITERATIONS; i++) {
      const args = Array.from({ length: Math.floor(r() * 10) }, () => randomWord(r));
      clean(() => parseRoute(args));
      clean(() => parseRule(args));
    }
  });

  it('netlink reply decoder: random and mutated messages', () => {
    const r = rng(SEED + 2);
    const samples = [
      encodeRequest(createVeth({ name: 'veth1pl42', mtu: 1500, master: 2, up: true }, { name: 'eth1', netnsFd: 5 }), 1),
      encodeRequest(routeRequest('add', { family: AF_INET, dst: Buffer.alloc(4), dstLen: 0, gateway: Buffer.from([10, 0, 0, 1]), oif: 3 }), 2),
    ];
    for (let i = 0; i < ITERATIONS; i++) {
      let buf: Buffer;
      if (r() < 0.3) buf = Buffer.from(Array.from({ length: Math.floor(r() * 200) }, () => Math.floor(r() * 256)));
      else {
        buf = Buffer.from(samples[Math.floor(r() * samples.length)]);
        for (let k = 0, n = 1 + Math.floor(r() * 6); k < n; k++) buf[Math.floor(r() * buf.length)] = Math.floor(r() * 256);
        if (r() < 0.2) buf = buf.subarray(0, Math.floor(r() * buf.length));
      }
      clean(() => {
        for (const reply of parseReplies(buf)) {
          parseLink(reply);
          parseAttrs(reply.payload, 16);
        }
      }, [MalformedMessageError]);
    }
  });
});
