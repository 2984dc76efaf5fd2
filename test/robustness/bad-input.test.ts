// Bad input is refused before anything changes: exit 1, one short message on
// stderr (no stack trace), host and guest exactly as before.
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = path.join(__dirname, '../../bin/pipework.js');
const GUEST = 'badin';

function ipj(args: string[], netns?: string): unknown {
  const out = execFileSync('ip', [...(netns ? ['-n', netns] : []), '-j', ...args], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : [];
}
const snapshot = () => [undefined, GUEST].map((n) => ({
  links: ipj(['-d', 'link', 'show'], n),
  addrs: ipj(['addr', 'show'], n),
  routes: ipj(['route', 'show', 'table', 'all'], n),
  rules: ipj(['rule', 'show'], n),
}));

beforeAll(() => {
  execFileSync('ip', ['netns', 'add', GUEST]);
  execFileSync('ip', ['link', 'add', 'brbad', 'type', 'bridge']);
  execFileSync('ip', ['link', 'add', 'physbad', 'type', 'veth', 'peer', 'name', 'physbadp']);
});
afterAll(() => {
  execFileSync('ip', ['netns', 'del', GUEST]);
  execFileSync('ip', ['link', 'del', 'brbad']);
  execFileSync('ip', ['link', 'del', 'physbad']);
});

/** The whole line for a guest that is nothing we know: the Docker half depends on whether Docker is installed here. */
const noContainer = (name: string) =>
  new RegExp(`^Container ${name.replace(/\./g, '\\.')} not found, and Docker (is not running \\(no socket at /nonexistent\\.sock\\)|not installed)\\.\n$`);

/** [argv, the whole of stderr without its final newline, or a pattern for all of it]. */
const cases: [string[], string | RegExp][] = [
  // IP addresses
  [['brbad', GUEST, '10.0.0.256/24'], 'Invalid IP address: 10.0.0.256'],
  [['brbad', GUEST, 'garbage/24'], 'Invalid IP address: garbage'],
  [['brbad', GUEST, '1.2.3/24'], 'Invalid IP address: 1.2.3'],
  [['brbad', GUEST, '10.0.0.2/33'], 'Invalid prefix length /33 for 10.0.0.2 (0-32)'],
  [['brbad', GUEST, '2001:db8::1/129'], 'Invalid prefix length /129 for 2001:db8::1 (0-128)'],
  [['brbad', GUEST, '10.0.0.2/'], 'Invalid prefix length / for 10.0.0.2 (0-32)'],
  [['brbad', GUEST, '10.0.0.2/24x'], 'Invalid prefix length /24x for 10.0.0.2 (0-32)'],
  [['brbad', GUEST, '10.0.0.2'], 'The IP address should include a netmask.\nMaybe you meant 10.0.0.2/24 ?'],
  // gateways
  [['brbad', GUEST, '10.0.0.2/24@garbage'], 'Invalid gateway: garbage'],
  [['brbad', GUEST, '10.0.0.2/24@10.0.0.300'], 'Invalid gateway: 10.0.0.300'],
  [['brbad', GUEST, '10.0.0.2/24@2001:db8::1'], 'The gateway 2001:db8::1 is not of the same IP family as the address.'],
  // MAC addresses
  [['brbad', GUEST, '10.0.0.2/24', 'zz:zz:zz:zz:zz:zz'], 'Invalid MAC address: zz:zz:zz:zz:zz:zz'],
  [['brbad', GUEST, '10.0.0.2/24', '02:00:00:00:00'], 'Invalid MAC address: 02:00:00:00:00'],
  [['brbad', GUEST, '10.0.0.2/24', '01:00:5e:00:00:01'], 'Invalid MAC address: 01:00:5e:00:00:01 is a multicast address'],
  [['brbad', GUEST, '10.0.0.2/24', '00:00:00:00:00:00'], 'Invalid MAC address: 00:00:00:00:00:00 is all zeros'],
  // VLAN ids
  [['physbad', GUEST, '10.0.0.2/24', '@0'], 'Invalid VLAN id: 0 (1-4094)'],
  [['physbad', GUEST, '10.0.0.2/24', '@4095'], 'Invalid VLAN id: 4095 (1-4094)'],
  [['physbad', GUEST, '10.0.0.2/24', '@abc'], 'Invalid VLAN id: abc (1-4094)'],
  [['physbad', GUEST, '10.0.0.2/24', '@x1'], 'Invalid VLAN id: x1'],
  [['brbad', GUEST, '10.0.0.2/24', '@5'], 'VLAN configuration currently unsupported for Linux bridge.'],
  // interface names
  [['brbad', '-i', 'averyveryverylongname', GUEST, '10.0.0.2/24'], "The container interface name 'averyveryverylongname' is 21 characters long; Linux allows at most 15."],
  [['brbad', '-i', 'a/b', GUEST, '10.0.0.2/24'], "The container interface name 'a/b' is not valid: no '/', ':' or whitespace, and not '.' or '..'."],
  [['brbad', '-i', 'a b', GUEST, '10.0.0.2/24'], "The container interface name 'a b' is not valid: no '/', ':' or whitespace, and not '.' or '..'."],
  [['brbad', '-i', '', GUEST, '10.0.0.2/24'], 'The container interface name is empty.'],
  [['brbad', '-l', 'averyveryverylongname', GUEST, '10.0.0.2/24'], "The local interface name 'averyveryverylongname' is 21 characters long; Linux allows at most 15."],
  [['br-this-is-too-long', GUEST, '10.0.0.2/24'], "The host interface name 'br-this-is-too-long' is 19 characters long; Linux allows at most 15."],
  // address family
  [['brbad', '-a', '5', GUEST, '10.0.0.2/24'], 'Invalid address family: -a 5 (4 or 6)'],
  [['brbad', '-a', '6', GUEST, '10.0.0.2/24'], 'The address 10.0.0.2/24 is not an IPv6 address (-a 6).'],
  // guests
  [['brbad', '999999', '10.0.0.2/24'], 'Container 999999 not found.'],
  [['brbad', '0', '10.0.0.2/24'], 'Invalid PID: 0'],
  [['brbad', '', '10.0.0.2/24'], 'The guest is empty.'],
  [['brbad', '../etc', '10.0.0.2/24'], noContainer('../etc')],
  [['brbad', '/run/netns/../../etc/passwd', '10.0.0.2/24'], '/run/netns/../../etc/passwd is not a network namespace.'],
  [['brbad', 'no-such-container', '10.0.0.2/24'], noContainer('no-such-container')],
  // host interfaces
  [['zz0', GUEST, '10.0.0.2/24'], 'I do not know how to setup interface zz0.'],
  [['mac:garbage', GUEST, '10.0.0.2/24'], 'Mac address garbage specified for interface but no host interface matched.'],
  [['mac:02:00:00:00:00:99', GUEST, '10.0.0.2/24'], 'Mac address 02:00:00:00:00:99 specified for interface but no host interface matched.'],
  // route / rule grammar
  [['route', GUEST, 'add', '10.0.0.0/8', 'nexthop', 'x'], 'route: unsupported word "nexthop".'],
  [['route', GUEST, 'frobnicate', '10.0.0.0/8'], 'route: unsupported command "frobnicate" (add, del, replace, change or append).'],
  [['route', GUEST, 'add', '10.1.0.0/16', 'via', '2001:db8::1'], 'Mixed IPv4 and IPv6 in: add 10.1.0.0/16 via 2001:db8::1'],
  [['route', GUEST, 'add', 'via', '10.0.0.1'], 'route: missing destination (a prefix or "default").'],
  [['rule', GUEST, 'add', 'from', '10.0.0.0/33'], 'Invalid source prefix length: 33'],
  [['rule', GUEST, 'add', 'fwmark', 'xyz'], 'Invalid fwmark: xyz'],
  [['rule', GUEST, 'insert', 'from', 'all'], 'rule: unsupported command "insert" (add or del).'],
  // DHCP
  [['brbad', GUEST, 'dhcp'], "You asked for a Docker-specific DHCP method.\nHowever, badin doesn't seem to be a Docker container.\nTry to replace 'dhcp' with another option?\nAborting."],
  // options and arity
  [['--frobnicate', 'brbad', GUEST, '10.0.0.2/24'], 'Unknown option: --frobnicate (see pipework --help)'],
  [['--macvlan-mode', 'foo', 'physbad', GUEST, '10.0.0.2/24'], 'Invalid macvlan mode: foo (private, vepa, bridge or passthru)'],
  [['--wait', '--timeout', 'abc'], 'Invalid --timeout: abc (seconds)'],
  [['brbad', GUEST, '10.0.0.2/24', '02:00:00:00:00:01', 'extra'], 'Unexpected argument: extra'],
  [['brbad', GUEST], /^Syntax:\npipework <hostinterface>/],
  [[], /^Syntax:\n/],
];

describe('bad input', () => {
  for (const [argv, message] of cases) {
    it(`pipework ${argv.map((a) => (a === '' || /\s/.test(a) ? `'${a}'` : a)).join(' ')}`, () => {
      const before = snapshot();
      const r = spawnSync(process.execPath, [bin, ...argv], { encoding: 'utf8', env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent.sock' } });
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      // The whole of stderr: the message and a newline (one line; the original's multi-line texts where it had them).
      if (typeof message === 'string') expect(r.stderr).toBe(`${message}\n`);
      else expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stderr).not.toContain('internal error');
      expect(snapshot()).toEqual(before);
    });
  }
});
