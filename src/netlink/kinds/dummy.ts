import { type LinkAttrs, createLink } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

/** `ip link add name NAME [address MAC] [netns NS] type dummy` */
export function createDummy(a: LinkAttrs): Request {
  return createLink(a, { kind: 'dummy' });
}

export const dummy: KindRecord = { kind: 'dummy', module: 'dummy', deletedOnDetach: true, sharesLower: false };
