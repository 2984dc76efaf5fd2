import { type AttrMap, get16 } from '../attributes';
import type { KindRecord } from './record';

const IFLA_IPVLAN_MODE = 1;
const IFLA_IPVLAN_FLAGS = 2;
/** IPVLAN_MODE_* from <linux/if_link.h>. */
const IPVLAN_MODES: Record<number, IpvlanData['mode']> = { 0: 'l2', 1: 'l3', 2: 'l3s' };
const IPVLAN_F_PRIVATE = 0x1;
const IPVLAN_F_VEPA = 0x2;

/** An ipvlan's data: `ip -d link show` prints `ipvlan mode l2 bridge`. */
export interface IpvlanData {
  mode?: 'l2' | 'l3' | 'l3s';
  /**
   * How its slaves reach each other: `bridge` (the default), `private` or
   * `vepa`, the word `ip -d link show` prints after the mode (its JSON has a
   * key of that name, set true).
   */
  flags?: 'bridge' | 'private' | 'vepa';
}

export function decodeIpvlan(data: AttrMap): IpvlanData {
  const out: IpvlanData = {};
  const mode = data.get(IFLA_IPVLAN_MODE);
  if (mode && mode.length >= 2) out.mode = IPVLAN_MODES[get16(mode, 0)];
  const flags = data.get(IFLA_IPVLAN_FLAGS);
  if (flags && flags.length >= 2) {
    const f = get16(flags, 0);
    out.flags = f & IPVLAN_F_PRIVATE ? 'private' : f & IPVLAN_F_VEPA ? 'vepa' : 'bridge';
  }
  return out;
}

/** Not made by pipework; met in containers (deleted on detach like a macvlan). */
export const ipvlan = { kind: 'ipvlan', module: 'ipvlan', deletedOnDetach: true, sharesLower: true, decode: decodeIpvlan } satisfies KindRecord;
