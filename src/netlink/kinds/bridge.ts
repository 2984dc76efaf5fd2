import { type LinkAttrs, createLink } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

/** `ip link add name NAME [up] type bridge` */
export function createBridge(a: LinkAttrs): Request {
  return createLink(a, { kind: 'bridge' });
}

/** A Linux bridge holds at most this many ports (port number 0 is reserved); the next enslave fails with EXFULL. */
export const BRIDGE_MAX_PORTS = 1023;

export const bridge: KindRecord = { kind: 'bridge', module: 'bridge', deletedOnDetach: false, sharesLower: false };
