import { NLA_F_NESTED, NLA_TYPE_MASK } from './constants';

/** One netlink attribute: raw bytes, or a nest of further attributes. */
export interface Attr {
  type: number;
  value: Buffer | Attr[];
  /** Set NLA_F_NESTED on a nest (iproute2 does for some nests, not for others). */
  flagNested?: boolean;
}

const align4 = (n: number) => (n + 3) & ~3;

export function u8(type: number, v: number): Attr {
  return { type, value: Buffer.of(v) };
}
export function u16(type: number, v: number): Attr {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return { type, value: b };
}
export function u32(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return { type, value: b };
}
export function s32(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return { type, value: b };
}
/** A NUL-terminated string, as the kernel expects for names and kinds. */
export function str(type: number, s: string): Attr {
  return { type, value: Buffer.from(s + '\0') };
}
export function bytes(type: number, b: Buffer): Attr {
  return { type, value: b };
}
export function nest(type: number, attrs: Attr[], flagNested = false): Attr {
  return { type, value: attrs, flagNested };
}

export function attrsLength(attrs: Attr[]): number {
  let n = 0;
  for (const a of attrs) n += align4(4 + valueLength(a));
  return n;
}

function valueLength(a: Attr): number {
  return Buffer.isBuffer(a.value) ? a.value.length : attrsLength(a.value);
}

/** Writes attrs at offset (padding each to 4 bytes); returns the end offset. */
export function writeAttrs(buf: Buffer, offset: number, attrs: Attr[]): number {
  for (const a of attrs) {
    const len = 4 + valueLength(a);
    buf.writeUInt16LE(len, offset);
    buf.writeUInt16LE(a.type | (a.flagNested ? NLA_F_NESTED : 0), offset + 2);
    if (Buffer.isBuffer(a.value)) a.value.copy(buf, offset + 4);
    else writeAttrs(buf, offset + 4, a.value);
    offset += align4(len);
  }
  return offset;
}

/** Attributes by type (flags stripped); a repeated type keeps the last. */
export type AttrMap = Map<number, Buffer>;

/** The attributes from offset to end; with `wanted`, only those types (a link message carries ~50, a reader needs a few). */
export function parseAttrs(buf: Buffer, offset = 0, end = buf.length, wanted?: ReadonlySet<number>): AttrMap {
  const out: AttrMap = new Map();
  forEachAttr(buf, offset, end, (type, value) => out.set(type, value), wanted);
  return out;
}

/** Calls fn for every attribute in order, repeated types included (with `wanted`, for those types only). */
export function forEachAttr(buf: Buffer, offset: number, end: number, fn: (type: number, value: Buffer) => void, wanted?: ReadonlySet<number>): void {
  while (offset + 4 <= end) {
    const len = buf.readUInt16LE(offset);
    if (len < 4 || offset + len > end) throw new RangeError(`malformed netlink attribute at byte ${offset}`);
    const type = buf.readUInt16LE(offset + 2) & NLA_TYPE_MASK;
    if (!wanted || wanted.has(type)) fn(type, buf.subarray(offset + 4, offset + len));
    offset += align4(len);
  }
}

export function cstring(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}
