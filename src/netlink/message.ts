import { MalformedMessageError } from '../errors';
import { type Attr, attrsLength, get16, get32, put16, put32, writeAttrs } from './attributes';
import { AF_UNSPEC, NLM_F_ACK, NLM_F_REQUEST } from './constants';

/**
 * One rtnetlink request, not yet numbered: its type, flags, fixed family
 * header (ifinfomsg, ifaddrmsg, rtmsg, fib_rule_hdr) and attributes, plus
 * what it does in words for errors ("RTM_NEWLINK veth1pl42").
 */
export interface Request {
  type: number;
  flags: number;
  header: Uint8Array;
  attrs: Attr[];
  op: string;
}

export const NLMSG_HDRLEN = 16;

export function request(type: number, flags: number, header: Uint8Array, attrs: Attr[], op: string): Request {
  return { type, flags: flags | NLM_F_REQUEST | NLM_F_ACK, header, attrs, op };
}

/** Bytes of the whole message: nlmsghdr, family header, attributes. */
export function requestLength(req: Request): number {
  return NLMSG_HDRLEN + req.header.length + attrsLength(req.attrs);
}

/** Writes the message numbered seq at offset (room: requestLength); returns its end. */
export function encodeInto(b: Uint8Array, offset: number, req: Request, seq: number, pid = 0): number {
  const end = writeAttrs(b, offset + NLMSG_HDRLEN + req.header.length, req.attrs);
  put32(b, offset, end - offset);
  put16(b, offset + 4, req.type);
  put16(b, offset + 6, req.flags);
  put32(b, offset + 8, seq);
  put32(b, offset + 12, pid);
  b.set(req.header, offset + NLMSG_HDRLEN);
  return end;
}

/** The whole message as one buffer. */
export function encodeRequest(req: Request, seq: number, pid = 0): Buffer {
  const buf = Buffer.alloc(requestLength(req));
  encodeInto(buf, 0, req, seq, pid);
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
export function ifinfomsg(m: IfInfo = {}): Uint8Array {
  const b = new Uint8Array(16);
  b[0] = m.family ?? AF_UNSPEC;
  put16(b, 2, m.type ?? 0);
  put32(b, 4, m.index ?? 0);
  put32(b, 8, m.flags ?? 0);
  put32(b, 12, m.change ?? 0);
  return b;
}

/** struct ifaddrmsg (8 bytes). */
export function ifaddrmsg(family: number, prefixLen: number, flags: number, scope: number, index: number): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = family;
  b[1] = prefixLen;
  b[2] = flags;
  b[3] = scope;
  put32(b, 4, index);
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
export function rtmsg(m: RtMsg): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = m.family;
  b[1] = m.dstLen;
  b[2] = m.srcLen ?? 0;
  b[3] = m.tos ?? 0;
  b[4] = m.table;
  b[5] = m.protocol;
  b[6] = m.scope;
  b[7] = m.type;
  put32(b, 8, m.flags ?? 0);
  return b;
}

/** One received message, its payload after the nlmsghdr. */
export interface Reply {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Uint8Array;
}

/** The messages in buf, in order (one datagram, or several laid end to end). */
export function parseReplies(buf: Uint8Array): Reply[] {
  const out: Reply[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = get32(buf, off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new MalformedMessageError(`malformed netlink message at byte ${off}`);
    out.push({
      type: get16(buf, off + 4),
      flags: get16(buf, off + 6),
      seq: get32(buf, off + 8),
      pid: get32(buf, off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += (len + 3) & ~3;
  }
  return out;
}
