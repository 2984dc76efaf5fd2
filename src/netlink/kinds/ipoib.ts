import { u16 } from '../attributes';
import { type LinkAttrs, createLink } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

const IFLA_IPOIB_PKEY = 1;
const IFLA_IPOIB_MODE = 2;
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

export const ipoib: KindRecord = { kind: 'ipoib', module: 'ib_ipoib', deletedOnDetach: true, sharesLower: false };
