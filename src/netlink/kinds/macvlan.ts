import { u32 } from '../attributes';
import { type LinkAttrs, createLink } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

const IFLA_MACVLAN_MODE = 1;

/** MACVLAN_MODE_* from <linux/if_link.h>. */
export const MACVLAN_MODES = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;
export type MacvlanMode = keyof typeof MACVLAN_MODES;

/** `ip link add link PARENT name NAME [mtu M] [netns NS] type macvlan mode MODE` */
export function createMacvlan(a: LinkAttrs & { parent: number }, mode: MacvlanMode = 'bridge'): Request {
  return createLink(a, { kind: 'macvlan', data: [u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode])] });
}

export const macvlan: KindRecord = { kind: 'macvlan', module: 'macvlan', deletedOnDetach: true, sharesLower: true };
