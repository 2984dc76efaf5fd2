// The table of link kinds (src/netlink/kinds/table.ts) against what iproute2
// sends: every kind `ip link add ... type KIND` creates in the fixtures has a
// record, found under the name iproute2 puts in IFLA_INFO_KIND.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { kindData, linkKind } from '../../src/netlink/kinds';
import { parseLink } from '../../src/netlink/link';
import { parseReplies } from '../../src/netlink/message';
import * as table from '../../src/netlink/kinds/table';
import { parseAttrs } from '../../src/netlink/attributes';
import { IFLA_INFO_KIND, IFLA_LINKINFO, RTM_NEWLINK } from '../../src/netlink/constants';

const dir = path.join(__dirname, '../fixtures/iproute2');

interface Fixture { command: string; requests: string[] }
const fixtures = (): Fixture[] =>
  readdirSync(dir).filter((n) => n.endsWith('.json')).map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Fixture);

/** IFLA_INFO_KIND of each RTM_NEWLINK request in the fixtures that creates a link of a kind. */
function fixtureKinds(): Set<string> {
  const kinds = new Set<string>();
  for (const f of fixtures()) {
    for (const hex of f.requests) {
      const msg = Buffer.from(hex, 'hex');
      if (msg.readUInt16LE(4) !== RTM_NEWLINK) continue;
      const info = parseAttrs(msg.subarray(16 + 16)).get(IFLA_LINKINFO);
      const kind = info && parseAttrs(info).get(IFLA_INFO_KIND);
      if (kind) kinds.add(Buffer.from(kind).toString('latin1').replace(/\0+$/, ''));
    }
  }
  return kinds;
}

describe('link kinds', () => {
  it('every kind iproute2 creates in the fixtures has a record naming its module', () => {
    const kinds = fixtureKinds();
    expect([...kinds].sort()).toEqual(['bridge', 'dummy', 'ipoib', 'macvlan', 'veth', 'vlan']);
    for (const k of kinds) expect(linkKind(k)?.module, k).toMatch(/^[a-z0-9_]+$/);
  });

  it('each line of the table is named as its IFLA_INFO_KIND (KindName is the kinds the kernel names)', () => {
    for (const [name, record] of Object.entries(table)) expect(record.kind).toBe(name);
  });

  it('a link without a kind (a physical NIC) or of a kind not in the table has no record', () => {
    expect(linkKind(undefined)).toBeUndefined();
    expect(linkKind('no-such-kind')).toBeUndefined();
  });

  it('the kinds that share a lower device by address (users of a VLAN link for gc and converge) are the macvlan family', () => {
    expect(Object.values(table).filter((k) => k.sharesLower).map((k) => k.kind).sort()).toEqual(['ipvlan', 'macvlan', 'macvtap']);
  });

  it('each kind whose IFLA_INFO_DATA iproute2 fills decodes iproute2\'s bytes back to the command\'s arguments', () => {
    // `type vlan id 10`, `type macvlan mode vepa`, `type ipoib pkey 0x8001 mode datagram`: what `ip -d link show` would print.
    const expected = (args: string[]): Record<string, unknown> => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i + 1 < args.length; i += 2) out[args[i]] = /^(0x[0-9a-f]+|\d+)$/.test(args[i + 1]) ? Number(args[i + 1]) : args[i + 1];
      return out;
    };
    const seen = new Set<string>();
    for (const f of fixtures()) {
      const [, kind, ...args] = /type (\w+)(.*)$/.exec(f.command) ?? [];
      if (kind !== 'vlan' && kind !== 'macvlan' && kind !== 'ipoib') continue;
      const link = parseLink(parseReplies(Buffer.from(f.requests[0], 'hex'))[0]);
      expect(kindData(link, kind), f.command).toEqual(expected(args.join('').trim().split(/\s+/)));
      seen.add(kind);
    }
    expect([...seen].sort()).toEqual(['ipoib', 'macvlan', 'vlan']);
  });
});
