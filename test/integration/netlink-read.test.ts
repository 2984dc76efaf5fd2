// netlink/'s read side against the kernel: findLink, the parsers of address
// and route replies, dumps taken while another process changes the table,
// and the link kinds' IFLA_INFO_DATA decoders, each compared with `ip -j`
// read back.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { type Transport, transact } from '../../src/netlink/socket';
import { dumpLinks, findLink, getLinkByName, linkOf, parseLink } from '../../src/netlink/link';
import { DumpInterruptedError, NetlinkError, refusedWith } from '../../src/netlink/error';
import { parseReplies } from '../../src/netlink/message';
import { native } from '../../src/native';
import { NLM_F_DUMP_INTR } from '../../src/netlink/constants';
import { ENODEV } from '../../src/netlink/errno';
import { readAddresses } from '../../src/netlink/address';
import { readRoutes } from '../../src/netlink/route';
import { AF_INET, AF_INET6, AF_UNSPEC } from '../../src/netlink/constants';
import { formatIp } from '../../src/addressing';
import { type DecodedKind, kindData } from '../../src/netlink/kinds';
import { type LinkJson, ip, ipBatch, ipj, links, nsPath, socketInFreshNetns } from '../helpers/kernel';

const t = socketInFreshNetns();

describe('findLink', () => {
  it('finds a link by name and by ifindex, as ip lists it; undefined for one that is not there', async () => {
    ip(t.fd, 'link', 'add', 'fa0', 'type', 'veth', 'peer', 'name', 'fa1');
    const [shown] = ipj<{ ifname: string; ifindex: number; address: string }[]>(t.fd, 'link', 'show', 'fa1');
    const byName = await findLink(t.sock, 'fa1');
    expect(byName).toMatchObject({ name: 'fa1', index: shown.ifindex, mac: shown.address, kind: 'veth' });
    expect(await findLink(t.sock, shown.ifindex)).toEqual(byName);
    expect(await findLink(t.sock, 'nope0')).toBeUndefined();
    expect(await findLink(t.sock, 999999)).toBeUndefined();
  });

  it('a refusal other than "no such device" is thrown, not taken for absence', async () => {
    // A name longer than IFNAMSIZ: the kernel refuses the request itself.
    const err = await findLink(t.sock, 'x'.repeat(40)).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(refusedWith(err, ENODEV)).toBe(false);
  });

  it('linkOf reads the outcomes of lookups sent together in one sendmsg', async () => {
    ip(t.fd, 'link', 'add', 'fb0', 'type', 'veth', 'peer', 'name', 'fb1');
    const outcomes = await t.sock.send(['fb0', 'gone', 'fb1'].map(getLinkByName));
    expect(outcomes.map(linkOf).map((l) => l?.name)).toEqual(['fb0', undefined, 'fb1']);
  });
});

/** A link with IPv4 and IPv6 addresses (no link-local) (a point-to-point one among them), routes in main and in table 1000. */
function addressedLink(): void {
  ip(t.fd, 'link', 'add', 'ra0', 'type', 'veth', 'peer', 'name', 'ra1');
  // No link-local addresses: they would come with carrier, at a moment of the kernel's choosing.
  for (const l of ['ra0', 'ra1']) ip(t.fd, 'link', 'set', l, 'addrgenmode', 'none', 'up');
  ip(t.fd, 'addr', 'add', '10.9.0.2/24', 'dev', 'ra0');
  ip(t.fd, 'addr', 'add', '10.9.1.2', 'peer', '10.9.1.1/32', 'dev', 'ra0');
  ip(t.fd, 'addr', 'add', 'fd00:9::2/64', 'dev', 'ra0', 'nodad');
  ip(t.fd, 'route', 'add', 'default', 'via', '10.9.0.1', 'dev', 'ra0', 'metric', '7');
  ip(t.fd, 'route', 'add', '10.8.0.0/16', 'dev', 'ra0', 'table', '1000');
  ip(t.fd, '-6', 'route', 'add', 'fd00:8::/48', 'via', 'fd00:9::1', 'dev', 'ra0');
}

describe('address and route replies', () => {
  it('readAddresses gives every address as ip addr lists it: the local one (not the peer), prefix, scope, link', async () => {
    addressedLink();
    const shown = ipj<{ ifindex: number; addr_info: { family: string; local: string; prefixlen: number; scope: string }[] }[]>(t.fd, 'addr', 'show')
      .flatMap((l) => l.addr_info.map((a) => ({ index: l.ifindex, family: a.family === 'inet' ? AF_INET : AF_INET6, address: a.local, prefixLen: a.prefixlen, scope: a.scope })));
    const scopes: Record<number, string> = { 0: 'global', 253: 'link', 254: 'host' };
    const read = (await readAddresses(t.sock)).map((a) => ({ index: a.index, family: a.family, address: formatIp(a.address), prefixLen: a.prefixLen, scope: scopes[a.scope] }));
    const key = (a: { index: number; address: string }) => `${a.index} ${a.address}`;
    expect(read.sort((a, b) => key(a).localeCompare(key(b)))).toEqual(shown.sort((a, b) => key(a).localeCompare(key(b))));
    expect(read.map((a) => a.address)).toContain('10.9.1.2');
    expect((await readAddresses(t.sock, AF_INET)).every((a) => a.family === AF_INET)).toBe(true);
  });

  it('readRoutes gives every route of all tables as ip route lists it: destination, gateway, link, table, type, metric', async () => {
    addressedLink();
    const tables: Record<string, number> = { main: 254, local: 255 };
    const types: Record<string, number> = { unicast: 1, local: 2, broadcast: 3, multicast: 5 };
    const ifindex = Object.fromEntries(ipj<{ ifname: string; ifindex: number }[]>(t.fd, 'link', 'show').map((l) => [l.ifname, l.ifindex]));
    const shown = [...ipj<any[]>(t.fd, '-4', 'route', 'show', 'table', 'all'), ...ipj<any[]>(t.fd, '-6', 'route', 'show', 'table', 'all')].map((r) => ({
      dst: r.dst === 'default' ? 'default' : r.dst.includes('/') ? r.dst : `${r.dst}/${r.dst.includes(':') ? 128 : 32}`,
      gateway: r.gateway, oif: ifindex[r.dev], table: tables[r.table ?? 'main'] ?? Number(r.table), type: types[r.type ?? 'unicast'], metric: r.metric,
    }));
    const read = (await readRoutes(t.sock, AF_UNSPEC)).filter((r) => r.family === AF_INET || r.family === AF_INET6).map((r) => ({
      dst: r.dstLen === 0 ? 'default' : `${formatIp(r.dst!)}/${r.dstLen}`,
      gateway: r.gateway && formatIp(r.gateway), oif: r.oif, table: r.table, type: r.type, metric: r.metric,
    }));
    const key = (r: { dst: string; table: number; type: number }) => `${r.table} ${r.type} ${r.dst}`;
    const strip = (r: object) => JSON.parse(JSON.stringify(r));
    expect(read.map(strip).sort((a, b) => key(a).localeCompare(key(b)))).toEqual(shown.map(strip).sort((a, b) => key(a).localeCompare(key(b))));
    expect(read).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '10.9.0.1', metric: 7, table: 254 }));
    expect(read).toContainEqual(expect.objectContaining({ dst: '10.8.0.0/16', table: 1000 }));
  });
});

describe('dumps while the table changes (NLM_F_DUMP_INTR)', () => {
  it('dumps taken while another process adds and deletes links are interrupted, asked again, and come whole: as ip lists them after', async () => {
    // 200 veth pairs that stay: ~400 link messages, a dump of many parts (the kernel checks for changes between parts).
    ipBatch(t.fd, Array.from({ length: 200 }, (_, i) => `link add sa${i} type veth peer name sb${i}`));
    // The churn: pairs made and deleted again, 300 times, by ip in another process; the last 5 stay.
    const churn = Array.from({ length: 300 }, (_, i) => [`link add ca${i} type veth peer name cb${i}`, ...(i < 295 ? [`link del ca${i}`] : [])]).flat().join('\n');
    const churner = spawn('nsenter', [`--net=${nsPath(t.fd)}`, 'ip', '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
    const churned = new Promise<number | null>((resolve) => churner.on('exit', resolve));
    let running = true;
    void churned.then(() => (running = false));
    churner.stdin.end(churn);

    // The socket's own transport, watched: how many answers came flagged.
    const raw = native.openNetlinkSocket(t.fd);
    let flagged = 0;
    const watched: Transport = async (bytes) => {
      const answer = await native.netlinkTransact(raw, bytes);
      if (parseReplies(answer).some((r) => r.flags & NLM_F_DUMP_INTR)) flagged++;
      return answer;
    };
    let seq = 0;
    const whole: string[][] = [];
    const stable = new Map<string, number>();
    let gaveUp = 0;
    try {
      while (running) {
        const [o] = await transact(watched, [dumpLinks()], () => ++seq);
        if (o.error) {
          expect(o.error).toBeInstanceOf(DumpInterruptedError);
          gaveUp++;
          continue;
        }
        const links = o.replies.map(parseLink);
        whole.push(links.map((l) => l.name));
        for (const l of links) if (/^s[ab]\d+$|^lo$/.test(l.name)) stable.set(l.name, l.index);
      }
    } finally {
      closeSync(raw);
    }
    expect(await churned).toBe(0);
    expect(flagged, 'no dump was interrupted: the churn did not overlap them').toBeGreaterThan(0);
    expect(whole.length).toBeGreaterThan(0);

    // After the churn: what ip lists.
    const after = ipj<{ ifname: string; ifindex: number }[]>(t.fd, 'link', 'show');
    const stayed = after.filter((l) => !/^c[ab]\d+$/.test(l.ifname));
    expect(stayed).toHaveLength(401);
    for (const names of whole) {
      // Each dump that came whole holds every link that stayed, each once, and no name twice.
      expect(new Set(names).size).toBe(names.length);
      for (const l of stayed) expect(names, l.ifname).toContain(l.ifname);
    }
    expect(Object.fromEntries(stable)).toEqual(Object.fromEntries(stayed.map((l) => [l.ifname, l.ifindex])));
    // And a dump now is exactly what ip lists.
    const now = (await t.sock.request(dumpLinks())).map(parseLink);
    expect(now.map((l) => [l.name, l.index]).sort()).toEqual(after.map((l) => [l.ifname, l.ifindex]).sort());
    console.log(`churn: ${whole.length} whole dumps, ${flagged} answers flagged interrupted, ${gaveUp} dumps given up after every attempt`);
  }, 120_000);
});

describe('IFLA_INFO_DATA decoders (netlink/kinds)', () => {
  /** Each link of a decoded kind: our kindData against the same keys of ip -d's info_data (a flag ip leaves out is false). */
  async function compareAll(kinds: DecodedKind[]): Promise<number> {
    const shown = new Map(links(t.fd).map((l: LinkJson) => [l.ifname, l.linkinfo?.info_data ?? {}]));
    let compared = 0;
    for (const l of (await t.sock.request(dumpLinks())).map(parseLink)) {
      const kind = kinds.find((k) => k === l.kind);
      if (!kind) continue;
      const ours = kindData(l, kind) as Record<string, unknown>;
      const shown1 = shown.get(l.name)!;
      // ip's JSON gives an ipvlan's flags as a key set true (private, vepa or bridge), its text as the word.
      const theirs = kind === 'ipvlan' ? { ...shown1, flags: ['private', 'vepa', 'bridge'].find((k) => shown1[k] === true) } : shown1;
      expect(ours, l.name).toBeDefined();
      const picked = Object.fromEntries(Object.keys(ours).map((k) => [k, theirs[k] ?? (ours[k] === false ? false : undefined)]));
      expect(ours, `${l.name} (${kind})`).toEqual(picked);
      compared++;
    }
    return compared;
  }

  it('macvlan and macvtap: the mode (each of them) and nopromisc, as ip -d link show reads them', async () => {
    ip(t.fd, 'link', 'add', 'lw0', 'type', 'veth', 'peer', 'name', 'lw1');
    for (const mode of ['private', 'vepa', 'bridge', 'source']) ip(t.fd, 'link', 'add', 'link', 'lw0', 'name', `mv-${mode}`, 'type', 'macvlan', 'mode', mode);
    ip(t.fd, 'link', 'add', 'link', 'lw1', 'name', 'mv-pass', 'type', 'macvlan', 'mode', 'passthru', 'nopromisc');
    ip(t.fd, 'link', 'add', 'link', 'lw0', 'name', 'mt-vepa', 'type', 'macvtap', 'mode', 'vepa');
    expect(await compareAll(['macvlan', 'macvtap'])).toBe(6);
    const pass = (await findLink(t.sock, 'mv-pass'))!;
    expect(kindData(pass, 'macvlan')).toEqual({ mode: 'passthru', nopromisc: true });
    // A link of another kind has no data of this one.
    expect(kindData(pass, 'vlan')).toBeUndefined();
    expect(kindData((await findLink(t.sock, 'mt-vepa'))!, 'macvtap')).toMatchObject({ mode: 'vepa' });
  });

  // vlan and ipvlan (this kernel has neither): the kernel VM's kind-decoders-lib.
});
