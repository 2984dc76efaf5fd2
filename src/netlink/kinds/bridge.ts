import { LinkAttrs, createLink } from '../link';
import { Request } from '../message';

/** `ip link add name NAME [up] type bridge` */
export function createBridge(a: LinkAttrs): Request {
  return createLink(a, { kind: 'bridge' });
}
