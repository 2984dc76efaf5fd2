// NLM_F_DUMP_INTR through transact (src/netlink/socket.ts): crafted kernel
// answers, laid out as the kernel lays them, given to the same code that
// sorts the real ones. A dump flagged interrupted is asked again; one that
// never comes clean ends in DumpInterruptedError.
import { describe, expect, it } from 'vitest';
import { DUMP_ATTEMPTS, type Transport, transact } from '../../src/netlink/socket';
import { DumpInterruptedError, NetlinkError } from '../../src/netlink/error';
import { dumpLinks, getLinkByName, parseLink } from '../../src/netlink/link';
import { type Reply, parseReplies } from '../../src/netlink/message';
import { put16, put32, str, writeAttrs, attrsLength } from '../../src/netlink/attributes';
import { IFLA_IFNAME, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_DUMP_INTR, RTM_NEWLINK } from '../../src/netlink/constants';

const NLM_F_MULTI = 0x2;

/** One netlink message: nlmsghdr, then payload, padded to 4 bytes. */
function message(type: number, flags: number, seq: number, payload: Uint8Array): Uint8Array {
  const len = 16 + payload.length;
  const b = new Uint8Array((len + 3) & ~3);
  put32(b, 0, len);
  put16(b, 4, type);
  put16(b, 6, flags);
  put32(b, 8, seq);
  b.set(payload, 16);
  return b;
}

/** RTM_NEWLINK of a link named name: ifinfomsg (index i), IFLA_IFNAME. */
function linkMessage(seq: number, i: number, name: string, flags: number): Uint8Array {
  const attrs = [str(IFLA_IFNAME, name)];
  const payload = new Uint8Array(16 + attrsLength(attrs));
  put32(payload, 4, i);
  writeAttrs(payload, 16, attrs);
  return message(RTM_NEWLINK, flags, seq, payload);
}

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
};

/**
 * A kernel that answers each dump with the links named, each request of
 * another kind with an ACK; `flag(n)` says which messages of the n-th dump
 * (from 1) carry NLM_F_DUMP_INTR: 'links', 'done' (only NLMSG_DONE, as the
 * kernel flags the last part) or none. Records every request it got.
 */
function fakeKernel(names: string[], flag: (n: number) => 'links' | 'done' | undefined) {
  const got: Reply[] = [];
  let dumps = 0;
  const transport: Transport = async (bytes) => {
    const answer: Uint8Array[] = [];
    for (const req of parseReplies(bytes)) {
      got.push(req);
      if ((req.flags & NLM_F_DUMP) !== NLM_F_DUMP) {
        answer.push(message(NLMSG_ERROR, 0, req.seq, new Uint8Array(4 + 16))); // errno 0: an ACK
        continue;
      }
      const f = flag(++dumps);
      names.forEach((n, i) => answer.push(linkMessage(req.seq, i + 1, n, NLM_F_MULTI | (f === 'links' ? NLM_F_DUMP_INTR : 0))));
      answer.push(message(NLMSG_DONE, NLM_F_MULTI | (f ? NLM_F_DUMP_INTR : 0), req.seq, new Uint8Array(4)));
    }
    return concat(answer);
  };
  return { transport, got, dumps: () => dumps };
}

let seq = 0;
const nextSeq = () => ++seq;

describe('dumps the kernel flags interrupted (NLM_F_DUMP_INTR)', () => {
  it('a clean dump is asked once', async () => {
    const k = fakeKernel(['lo', 'eth0'], () => undefined);
    const [o] = await transact(k.transport, [dumpLinks()], nextSeq);
    expect(o.error).toBeUndefined();
    expect(o.replies.map((r) => parseLink(r).name)).toEqual(['lo', 'eth0']);
    expect(k.dumps()).toBe(1);
  });

  it('a flagged dump is asked again until one comes clean; only the clean one is kept', async () => {
    const k = fakeKernel(['lo', 'eth0'], (n) => (n === 1 ? 'links' : n === 2 ? 'done' : undefined));
    const [o] = await transact(k.transport, [dumpLinks()], nextSeq);
    expect(o.error).toBeUndefined();
    expect(k.dumps()).toBe(3);
    expect(o.replies.map((r) => parseLink(r).name)).toEqual(['lo', 'eth0']);
    // Each attempt under a sequence number of its own.
    expect(new Set(k.got.map((r) => r.seq)).size).toBe(3);
  });

  it('only the dump is asked again, not the requests sent with it', async () => {
    const k = fakeKernel(['lo'], (n) => (n === 1 ? 'links' : undefined));
    const [lookup, dump] = await transact(k.transport, [getLinkByName('lo'), dumpLinks()], nextSeq);
    expect(lookup.error).toBeUndefined();
    expect(dump.error).toBeUndefined();
    expect(k.got.filter((r) => (r.flags & NLM_F_DUMP) !== NLM_F_DUMP)).toHaveLength(1);
    expect(k.dumps()).toBe(2);
  });

  it(`a dump never clean in ${DUMP_ATTEMPTS} attempts fails with DumpInterruptedError (a NetlinkError, EINTR)`, async () => {
    const k = fakeKernel(['lo', 'eth0'], () => 'links');
    const [o] = await transact(k.transport, [dumpLinks()], nextSeq);
    expect(k.dumps()).toBe(DUMP_ATTEMPTS);
    expect(o.replies).toEqual([]);
    expect(o.error).toBeInstanceOf(DumpInterruptedError);
    expect(o.error).toBeInstanceOf(NetlinkError);
    expect(o.error).toMatchObject({ code: 'EINTR', operation: 'RTM_GETLINK dump', attempts: DUMP_ATTEMPTS });
    expect(o.error!.message).toMatch(new RegExp(`^RTM_GETLINK dump: interrupted .* ${DUMP_ATTEMPTS} attempts`));
  });

  it('the flag on a reply to a request that is no dump means nothing', async () => {
    const transport: Transport = async (bytes) => {
      const [req] = parseReplies(bytes);
      return concat([linkMessage(req.seq, 1, 'lo', NLM_F_DUMP_INTR), message(NLMSG_ERROR, NLM_F_DUMP_INTR, req.seq, new Uint8Array(20))]);
    };
    let calls = 0;
    const [o] = await transact((b) => (calls++, transport(b)), [getLinkByName('lo')], nextSeq);
    expect(o.error).toBeUndefined();
    expect(calls).toBe(1);
  });
});
