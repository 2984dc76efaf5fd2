import { type AttrMap, get16, u16 } from '../attributes';
import { type LinkAttrs, createLink } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

const IFLA_IPOIB_PKEY = 1;
const IFLA_IPOIB_MODE = 2;
const IFLA_IPOIB_UMCAST = 3;
export const IPOIB_MODES = { datagram: 0, connected: 1 } as const;
export type IpoibMode = keyof typeof IPOIB_MODES;

/** `ip link add link PARENT name NAME type ipoib [pkey PKEY] [mode MODE]` */
export function createIpoib(a: LinkAttrs & { parent: number }, pkey?: number, mode?: IpoibMode): Request {
  const data = [];
  if (pkey !== undefined) {
    if (!Number.isInteger(pkey) || pkey < 1 || pkey > 0xffff) throw new RangeError(`pkey ${pkey} is not in 0x0001-0xffff`);
    data.push(u16(IFLA_IPOIB_PKEY, pkey));
  }
  if (mode !== undefined) data.push(u16(IFLA_IPOIB_MODE, IPOIB_MODES[mode]));
  return createLink(a, { kind: 'ipoib', data });
}

/** An IPoIB child's data: `ip -d link show` prints `ipoib pkey 0x8001 mode connected umcast 0000`. */
export interface IpoibData {
  pkey?: number;
  mode?: IpoibMode;
  /** User multicast allowed. */
  umcast?: boolean;
}

export function decodeIpoib(data: AttrMap): IpoibData {
  const out: IpoibData = {};
  const u16Of = (type: number) => {
    const v = data.get(type);
    return v && v.length >= 2 ? get16(v, 0) : undefined;
  };
  const pkey = u16Of(IFLA_IPOIB_PKEY);
  if (pkey !== undefined) out.pkey = pkey;
  const mode = u16Of(IFLA_IPOIB_MODE);
  if (mode !== undefined) out.mode = mode === IPOIB_MODES.connected ? 'connected' : 'datagram';
  const umcast = u16Of(IFLA_IPOIB_UMCAST);
  if (umcast !== undefined) out.umcast = umcast !== 0;
  return out;
}

export const ipoib = { kind: 'ipoib', module: 'ib_ipoib', deletedOnDetach: true, sharesLower: false, decode: decodeIpoib } satisfies KindRecord;
