// RtnlSocket over the addon's netlinkTransact: every reply is read in the
// same call as the sendmsg, dumps spanning many datagrams included.
import { describe, expect, it } from 'vitest';
import { deleteLinkByName, dumpLinks, getLinkByIndex, getLinkByName, parseLink } from '../../src/netlink/link';
import { parseAttrs } from '../../src/netlink/attributes';
import { AF_INET6, IFLA_AF_SPEC, IFLA_INET6_ADDR_GEN_MODE } from '../../src/netlink/constants';
import { NetlinkError } from '../../src/netlink/error';
import { createBridge } from '../../src/netlink/kinds/bridge';
import { getNsid, parseNsid } from '../../src/netlink/netns';
import { native } from '../../src/native';
import { closeSync, fstatSync, openSync, readdirSync } from 'node:fs';
import { ip, ipBatch, ipj, netnsSet, nsPath, socketInFreshNetns } from '../helpers/kernel';

/** The IPv6 counters in IFLA_AF_SPEC (linux/if_link.h), which our requests ask the kernel to leave out. */
const IFLA_INET6_STATS = 3;
const IFLA_INET6_ICMP6STATS = 6;

const t = socketInFreshNetns();

describe('RtnlSocket', () => {
  it('a dump larger than one datagram comes back whole, as ip lists it', async () => {
    // 150 veth pairs: ~300 link messages of ~1.5 KiB, many 32 KiB datagrams.
    ipBatch(t.fd, Array.from({ length: 150 }, (_, i) => `link add sa${i} type veth peer name sb${i}`));
    const names = (await t.sock.request(dumpLinks())).map((m) => parseLink(m).name).sort();
    expect(names).toHaveLength(301);
    expect(names).toEqual(ipj<{ ifname: string }[]>(t.fd, 'link', 'show').map((l) => l.ifname).sort());
  });

  it('several requests in one sendmsg: one outcome each, in order, a refusal among them with its errno and text', async () => {
    ip(t.fd, 'link', 'add', 'x0', 'type', 'veth', 'peer', 'name', 'x1');
    const [a, b, c] = await t.sock.send([getLinkByName('x0'), deleteLinkByName('nope'), getLinkByName('x1')]);
    expect(parseLink(a.replies[0]).name).toBe('x0');
    expect(b.error).toBeInstanceOf(NetlinkError);
    expect(b.error).toMatchObject({ code: 'ENODEV', operation: 'RTM_DELLINK nope' });
    expect(parseLink(c.replies[0]).name).toBe('x1');
  });

  it('a link comes back without its IPv6 counters (IFLA_EXT_MASK: RTEXT_FILTER_SKIP_STATS), by name, by index and in a dump', async () => {
    ip(t.fd, 'link', 'add', 'st0', 'type', 'veth', 'peer', 'name', 'st1');
    const [byName] = await t.sock.request(getLinkByName('st0'));
    const [byIndex] = await t.sock.request(getLinkByIndex(parseLink(byName).index));
    const inDump = (await t.sock.request(dumpLinks())).find((m) => parseLink(m).name === 'st0')!;
    for (const m of [byName, byIndex, inDump]) {
      const afSpec = parseAttrs(m.payload, 16).get(IFLA_AF_SPEC)!;
      const inet6 = [...parseAttrs(parseAttrs(afSpec).get(AF_INET6)!).keys()];
      expect(inet6).toContain(IFLA_INET6_ADDR_GEN_MODE);
      expect(inet6).not.toContain(IFLA_INET6_STATS);
      expect(inet6).not.toContain(IFLA_INET6_ICMP6STATS);
    }
  });

  it('RTM_GETNSID gives the id a veth peered into another netns carries as IFLA_LINK_NETNSID', async () => {
    const other = netnsSet(1);
    try {
      ip(other.fds[0], 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1', 'netns', nsPath(t.fd));
      const [link, nsid] = await t.sock.send([getLinkByName('p1'), getNsid(other.fds[0])]);
      const p1 = parseLink(link.replies[0]);
      expect(p1.linkNetnsid).toBeGreaterThanOrEqual(0);
      expect(parseNsid(nsid.replies[0])).toBe(p1.linkNetnsid);
      expect(p1.parent).toBe(ipj<{ ifindex: number }[]>(other.fds[0], 'link', 'show', 'p0')[0].ifindex);
      // A link whose peer is in the same netns carries no id.
      ip(t.fd, 'link', 'add', 'q0', 'type', 'veth', 'peer', 'name', 'q1');
      expect(parseLink((await t.sock.request(getLinkByName('q1')))[0]).linkNetnsid).toBeUndefined();
    } finally {
      other.close();
    }
  });

  it('sends in flight together on one socket take turns: each gets its own replies, dumps included', async () => {
    ipBatch(t.fd, Array.from({ length: 40 }, (_, i) => `link add ca${i} type veth peer name cb${i}`));
    const lookups = Array.from({ length: 40 }, (_, i) => t.sock.request(getLinkByName(`ca${i}`)));
    const dumps = [t.sock.request(dumpLinks()), t.sock.request(dumpLinks())];
    const refused = t.sock.request(deleteLinkByName('nope'));
    expect((await Promise.all(lookups)).map(([r]) => parseLink(r).name)).toEqual(Array.from({ length: 40 }, (_, i) => `ca${i}`));
    for (const dump of await Promise.all(dumps)) expect(dump).toHaveLength(81);
    await expect(refused).rejects.toMatchObject({ code: 'ENODEV' });
  });

  it('close() while a transaction runs lets it finish, then closes the fd', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const open = fds();
    const created = t.sock.request(createBridge({ name: 'cbr0' }));
    t.sock.close();
    expect(fds()).toBe(open);
    await expect(created).resolves.toEqual([]);
    await new Promise((resume) => setImmediate(resume));
    expect(fds()).toBe(open - 1);
    expect(ipj<{ ifname: string }[]>(t.fd, 'link', 'show', 'cbr0')).toHaveLength(1);
  });

  it('a transaction sent alone runs beside the queued ones, and close() waits for whichever ends last', async () => {
    ip(t.fd, 'link', 'add', 'al0', 'type', 'veth', 'peer', 'name', 'al1');
    const fds = () => readdirSync('/proc/self/fd').length;
    const open = fds();
    // The deletion waits in the kernel for an RCU barrier; the lookup asked after it is not queued behind it.
    const deleted = t.sock.request(deleteLinkByName('al0'), { alone: true });
    const looked = t.sock.request(getLinkByName('lo'));
    t.sock.close();
    const order: string[] = [];
    await Promise.all([deleted.then(() => order.push('deleted')), looked.then(() => order.push('looked'))]);
    expect(order).toHaveLength(2);
    await new Promise((resume) => setImmediate(resume));
    expect(fds()).toBe(open - 1);
    expect(ipj<unknown[]>(t.fd, 'link', 'show')).toHaveLength(1);
  });

  it('a closed socket refuses to send', async () => {
    t.sock.close();
    await expect(t.sock.request(getLinkByName('lo'))).rejects.toThrow('netlink socket is closed');
  });
});

describe('native.netnsInode', () => {
  it('gives a netns fd its inode, and refuses a closed fd, a file and another kind of namespace', () => {
    expect(native.netnsInode(t.fd)).toBe(fstatSync(t.fd).ino);
    const file = openSync('/proc/self/stat', 'r');
    const mnt = openSync('/proc/self/ns/mnt', 'r');
    try {
      expect(() => native.netnsInode(file)).toThrow(expect.objectContaining({ syscall: 'ioctl(NS_GET_NSTYPE)' }));
      expect(() => native.netnsInode(mnt)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      closeSync(file);
      closeSync(mnt);
    }
    expect(() => native.netnsInode(file)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});
