import { u16 } from '../attributes';
import { type LinkAttrs, createLink } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

const IFLA_VLAN_ID = 1;

/** `ip link add link PARENT name NAME [mtu M] type vlan id VID` */
export function createVlan(a: LinkAttrs & { parent: number }, vid: number): Request {
  if (!Number.isInteger(vid) || vid < 1 || vid > 4094) throw new RangeError(`VLAN id ${vid} is not in 1-4094`);
  return createLink(a, { kind: 'vlan', data: [u16(IFLA_VLAN_ID, vid)] });
}

export const vlan: KindRecord = { kind: 'vlan', module: '8021q', deletedOnDetach: true, sharesLower: false };
