import { MalformedMessageError } from '../errors';
import { NLA_F_NESTED, NLA_TYPE_MASK } from './constants';

// Wire bytes are plain Uint8Arrays read and written a byte at a time: Node's
// Buffer methods (readUInt32LE, subarray, alloc, ...) are JavaScript with
// argument checks, and in a bulk run they were most of the code V8 had to
// interpret and then optimize per container.

/** Little-endian unsigned 16 bits at o. */
export const get16 = (b: Uint8Array, o: number): number => b[o] | (b[o + 1] << 8);
/** Little-endian unsigned 32 bits at o. */
export const get32 = (b: Uint8Array, o: number): number => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
/** Little-endian signed 32 bits at o. */
export const getS32 = (b: Uint8Array, o: number): number => b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}
/** Little-endian 32 bits at o (signed or unsigned: the same bytes). */
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

const utf8 = new TextDecoder();
const utf8Out = new TextEncoder();

/** Bytes start..end as text, up to the first NUL (names, kinds, the kernel's messages). */
export function text(b: Uint8Array, start = 0, end = b.length): string {
  let s = '';
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (c === 0) return s;
    if (c >= 0x80) {
      const nul = b.indexOf(0, i);
      return s + utf8.decode(b.subarray(i, nul < 0 || nul > end ? end : nul));
    }
    s += String.fromCharCode(c);
  }
  return s;
}

/** s as UTF-8, with `nul` one zero byte after it. */
export function encodeText(s: string, nul: boolean): Uint8Array {
  const n = s.length;
  const out = new Uint8Array(n + (nul ? 1 : 0));
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      const u = utf8Out.encode(s);
      if (!nul) return u;
      const z = new Uint8Array(u.length + 1);
      z.set(u);
      return z;
    }
    out[i] = c;
  }
  return out;
}

/** One netlink attribute: raw bytes, or a nest of further attributes. */
export interface Attr {
  type: number;
  value: Uint8Array | Attr[];
  /** Set NLA_F_NESTED on a nest (iproute2 does for some nests, not for others). */
  flagNested?: boolean;
}

const align4 = (n: number) => (n + 3) & ~3;

export function u8(type: number, v: number): Attr {
  return { type, value: Uint8Array.of(v) };
}
export function u16(type: number, v: number): Attr {
  return { type, value: Uint8Array.of(v, v >>> 8) };
}
export function u32(type: number, v: number): Attr {
  return { type, value: Uint8Array.of(v, v >>> 8, v >>> 16, v >>> 24) };
}
export const s32 = u32;
/** A NUL-terminated string, as the kernel expects for names and kinds. */
export function str(type: number, s: string): Attr {
  return { type, value: encodeText(s, true) };
}
export function bytes(type: number, b: Uint8Array): Attr {
  return { type, value: b };
}
export function nest(type: number, attrs: Attr[], flagNested = false): Attr {
  return { type, value: attrs, flagNested };
}

export function attrsLength(attrs: Attr[]): number {
  let n = 0;
  for (let i = 0; i < attrs.length; i++) {
    const v = attrs[i].value;
    n += align4(4 + (v instanceof Uint8Array ? v.length : attrsLength(v)));
  }
  return n;
}

/**
 * Writes attrs at offset, each padded with zeros to 4 bytes; returns the end
 * offset. b must have attrsLength(attrs) bytes of room there.
 */
export function writeAttrs(b: Uint8Array, offset: number, attrs: Attr[]): number {
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i];
    const v = a.value;
    const start = offset;
    if (v instanceof Uint8Array) {
      b.set(v, offset + 4);
      offset += 4 + v.length;
    } else {
      offset = writeAttrs(b, offset + 4, v);
    }
    put16(b, start, offset - start);
    put16(b, start + 2, a.type | (a.flagNested ? NLA_F_NESTED : 0));
    while (offset & 3) b[offset++] = 0;
  }
  return offset;
}

/** Attributes by type (flags stripped); a repeated type keeps the last. */
export type AttrMap = Map<number, Uint8Array>;

/** The attributes from offset to end; with `wanted`, only those types (a link message carries ~50, a reader needs a few). */
export function parseAttrs(buf: Uint8Array, offset = 0, end = buf.length, wanted?: ReadonlySet<number>): AttrMap {
  const out: AttrMap = new Map();
  forEachAttr(buf, offset, end, (type, value) => out.set(type, value), wanted);
  return out;
}

/** Calls fn for every attribute in order, repeated types included (with `wanted`, for those types only). */
export function forEachAttr(buf: Uint8Array, offset: number, end: number, fn: (type: number, value: Uint8Array) => void, wanted?: ReadonlySet<number>): void {
  while (offset + 4 <= end) {
    const len = get16(buf, offset);
    if (len < 4 || offset + len > end) throw new MalformedMessageError(`malformed netlink attribute at byte ${offset}`);
    const type = get16(buf, offset + 2) & NLA_TYPE_MASK;
    if (!wanted || wanted.has(type)) fn(type, buf.subarray(offset + 4, offset + len));
    offset += align4(len);
  }
}

export function cstring(b: Uint8Array | undefined): string | undefined {
  return b && text(b);
}
