// Decodes an rtnetlink request into a comparable tree: header bytes and
// attributes sorted by type, nests decoded, so two encoders can be compared
// attribute for attribute whatever order they emit attributes in.

export interface Node {
  type: number;
  hex?: string;
  children?: Node[];
}
export interface Decoded {
  nlmsgType: number;
  nlmsgFlags: number;
  header: string;
  attrs: Node[];
}

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const RTA_METRICS = 8;
const HEADER_LEN: Record<number, number> = { 16: 16, 17: 16, 18: 16, 20: 8, 21: 8, 24: 12, 25: 12, 32: 12, 33: 12 };

function raw(buf: Buffer): { type: number; value: Buffer }[] {
  const out = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4) throw new Error(`bad attribute length ${len}`);
    out.push({ type: buf.readUInt16LE(off + 2), value: buf.subarray(off + 4, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}

const sorted = (nodes: Node[]) => nodes.sort((a, b) => a.type - b.type || (a.hex ?? '').localeCompare(b.hex ?? ''));

function linkAttrs(buf: Buffer): Node[] {
  return sorted(raw(buf).map(({ type, value }) => {
    if (type !== IFLA_LINKINFO) return { type, hex: value.toString('hex') };
    const info = raw(value);
    const kind = info.find((a) => a.type === IFLA_INFO_KIND)?.value.toString().replace(/\0+$/, '');
    return {
      type,
      children: sorted(info.map((a) => {
        if (a.type !== IFLA_INFO_DATA) return { type: a.type, hex: a.value.toString('hex') };
        return {
          type: a.type,
          children: sorted(raw(a.value).map((d) => kind === 'veth' && d.type === VETH_INFO_PEER
            ? { type: d.type, hex: d.value.subarray(0, 16).toString('hex'), children: linkAttrs(d.value.subarray(16)) }
            : { type: d.type, hex: d.value.toString('hex') })),
        };
      })),
    };
  }));
}

export function decode(msg: Buffer): Decoded {
  const type = msg.readUInt16LE(4);
  const hlen = HEADER_LEN[type];
  if (hlen === undefined) throw new Error(`no header length known for message type ${type}`);
  const body = msg.subarray(16 + hlen, msg.readUInt32LE(0));
  const attrs = type === RTM_NEWLINK || type === RTM_DELLINK
    ? linkAttrs(body)
    : sorted(raw(body).map(({ type: t, value }) => t === RTA_METRICS && (type === 24 || type === 25)
      ? { type: t, children: sorted(raw(value).map((m) => ({ type: m.type, hex: m.value.toString('hex') }))) }
      : { type: t, hex: value.toString('hex') }));
  return { nlmsgType: type, nlmsgFlags: msg.readUInt16LE(6), header: msg.subarray(16, 16 + hlen).toString('hex'), attrs };
}
