import { type AttrMap, get16, get32, u32 } from '../attributes';
import { type LinkAttrs, createLink } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

const IFLA_MACVLAN_MODE = 1;
const IFLA_MACVLAN_FLAGS = 2;
const MACVLAN_FLAG_NOPROMISC = 1;

/** MACVLAN_MODE_* from <linux/if_link.h>. */
export const MACVLAN_MODES = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;
export type MacvlanMode = keyof typeof MACVLAN_MODES;
/** The modes a link can be found in: pipework makes none in mode source (its MACs are listed one by one). */
const MODE_NAMES: Record<number, MacvlanMode | 'source'> = { 1: 'private', 2: 'vepa', 4: 'bridge', 8: 'passthru', 16: 'source' };

/** `ip link add link PARENT name NAME [mtu M] [netns NS] type macvlan mode MODE` */
export function createMacvlan(a: LinkAttrs & { parent: number }, mode: MacvlanMode = 'bridge'): Request {
  return createLink(a, { kind: 'macvlan', data: [u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode])] });
}

/** A macvlan's (or macvtap's) data: `ip -d link show` prints `macvlan mode bridge [nopromisc]`. */
export interface MacvlanData {
  mode?: MacvlanMode | 'source';
  nopromisc?: boolean;
}

export function decodeMacvlan(data: AttrMap): MacvlanData {
  const out: MacvlanData = {};
  const mode = data.get(IFLA_MACVLAN_MODE);
  if (mode && mode.length >= 4) out.mode = MODE_NAMES[get32(mode, 0)];
  const flags = data.get(IFLA_MACVLAN_FLAGS);
  if (flags && flags.length >= 2) out.nopromisc = (get16(flags, 0) & MACVLAN_FLAG_NOPROMISC) !== 0;
  return out;
}

export const macvlan = { kind: 'macvlan', module: 'macvlan', deletedOnDetach: true, sharesLower: true, decode: decodeMacvlan } satisfies KindRecord;
