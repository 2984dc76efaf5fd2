import { type AttrMap, get16, get32, u16 } from '../attributes';
import { type LinkAttrs, createLink } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

const IFLA_VLAN_ID = 1;
const IFLA_VLAN_FLAGS = 2;
const IFLA_VLAN_PROTOCOL = 5;

/** ETH_P_8021Q and ETH_P_8021AD (network byte order on the wire). */
const VLAN_PROTOCOLS: Record<number, string> = { 0x8100: '802.1Q', 0x88a8: '802.1ad' };
/** VLAN_FLAG_* from <linux/if_vlan.h>, as iproute2 prints them. */
const VLAN_FLAGS = { REORDER_HDR: 0x1, GVRP: 0x2, LOOSE_BINDING: 0x4, MVRP: 0x8, BRIDGE_BINDING: 0x10 } as const;

/** `ip link add link PARENT name NAME [mtu M] type vlan id VID` */
export function createVlan(a: LinkAttrs & { parent: number }, vid: number): Request {
  if (!Number.isInteger(vid) || vid < 1 || vid > 4094) throw new RangeError(`VLAN id ${vid} is not in 1-4094`);
  return createLink(a, { kind: 'vlan', data: [u16(IFLA_VLAN_ID, vid)] });
}

/** A VLAN link's data: `ip -d link show` prints `vlan protocol 802.1Q id 10 <REORDER_HDR>`. */
export interface VlanData {
  id?: number;
  /** `802.1Q`, `802.1ad`, or the ethertype in hex for another. */
  protocol?: string;
  /** The VLAN_FLAG_* set, by name. */
  flags?: (keyof typeof VLAN_FLAGS)[];
}

export function decodeVlan(data: AttrMap): VlanData {
  const out: VlanData = {};
  const id = data.get(IFLA_VLAN_ID);
  if (id && id.length >= 2) out.id = get16(id, 0);
  const protocol = data.get(IFLA_VLAN_PROTOCOL);
  if (protocol && protocol.length >= 2) {
    const p = (protocol[0] << 8) | protocol[1];
    out.protocol = VLAN_PROTOCOLS[p] ?? `0x${p.toString(16).padStart(4, '0')}`;
  }
  const flags = data.get(IFLA_VLAN_FLAGS); // struct ifla_vlan_flags { flags, mask }
  if (flags && flags.length >= 4) {
    const set = get32(flags, 0);
    out.flags = (Object.keys(VLAN_FLAGS) as (keyof typeof VLAN_FLAGS)[]).filter((name) => set & VLAN_FLAGS[name]);
  }
  return out;
}

export const vlan = { kind: 'vlan', module: '8021q', deletedOnDetach: true, sharesLower: false, decode: decodeVlan } satisfies KindRecord;
