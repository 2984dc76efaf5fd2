import { Attr, attrsLength, writeAttrs } from './attributes';
import { AF_UNSPEC, NLM_F_ACK, NLM_F_REQUEST } from './constants';

/**
 * One rtnetlink request, not yet numbered: its type, flags, fixed family
 * header (ifinfomsg, ifaddrmsg, rtmsg, fib_rule_hdr) and attributes, plus
 * what it does in words for errors ("RTM_NEWLINK veth1pl42").
 */
export interface Request {
  type: number;
  flags: number;
  header: Buffer;
  attrs: Attr[];
  op: string;
}

export const NLMSG_HDRLEN = 16;

export function request(type: number, flags: number, header: Buffer, attrs: Attr[], op: string): Request {
  return { type, flags: flags | NLM_F_REQUEST | NLM_F_ACK, header, attrs, op };
}

/** The whole message: nlmsghdr, family header, attributes. */
export function encodeRequest(req: Request, seq: number, pid = 0): Buffer {
  const len = NLMSG_HDRLEN + req.header.length + attrsLength(req.attrs);
  const buf = Buffer.alloc(len);
  buf.writeUInt32LE(len, 0);
  buf.writeUInt16LE(req.type, 4);
  buf.writeUInt16LE(req.flags, 6);
  buf.writeUInt32LE(seq >>> 0, 8);
  buf.writeUInt32LE(pid >>> 0, 12);
  req.header.copy(buf, NLMSG_HDRLEN);
  writeAttrs(buf, NLMSG_HDRLEN + req.header.length, req.attrs);
  return buf;
}

export interface IfInfo {
  family?: number;
  type?: number;
  index?: number;
  flags?: number;
  change?: number;
}

/** struct ifinfomsg (16 bytes). */
export function ifinfomsg(m: IfInfo = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(m.family ?? AF_UNSPEC, 0);
  b.writeUInt16LE(m.type ?? 0, 2);
  b.writeInt32LE(m.index ?? 0, 4);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((m.change ?? 0) >>> 0, 12);
  return b;
}

/** struct ifaddrmsg (8 bytes). */
export function ifaddrmsg(family: number, prefixLen: number, flags: number, scope: number, index: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixLen, 1);
  b.writeUInt8(flags & 0xff, 2);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(index, 4);
  return b;
}

export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen?: number;
  tos?: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags?: number;
}

/** struct rtmsg (12 bytes); struct fib_rule_hdr has the same layout. */
export function rtmsg(m: RtMsg): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.dstLen, 1);
  b.writeUInt8(m.srcLen ?? 0, 2);
  b.writeUInt8(m.tos ?? 0, 3);
  b.writeUInt8(m.table, 4);
  b.writeUInt8(m.protocol, 5);
  b.writeUInt8(m.scope, 6);
  b.writeUInt8(m.type, 7);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  return b;
}

/** One received message, its payload after the nlmsghdr. */
export interface Reply {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

export function parseReplies(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new RangeError(`malformed netlink message at byte ${off}`);
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += (len + 3) & ~3;
  }
  return out;
}
