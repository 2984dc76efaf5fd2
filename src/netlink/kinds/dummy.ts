import { LinkAttrs, createLink } from '../link';
import { Request } from '../message';

/** `ip link add name NAME [address MAC] [netns NS] type dummy` */
export function createDummy(a: LinkAttrs): Request {
  return createLink(a, { kind: 'dummy' });
}
