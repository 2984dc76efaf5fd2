import { bytes } from '../attributes';
import { type LinkAttrs, createLink, headerWithAttrs, linkAttrs, linkHeader } from '../link';
import type { Request } from '../message';
import type { KindRecord } from './record';

const VETH_INFO_PEER = 1;

/**
 * `ip link add HOST [mtu M] [master BR] [up] type veth peer name PEER [mtu M] [address MAC] [netns NS] [up]`:
 * one message makes both ends, the peer born in its netns with its final name.
 */
export function createVeth(host: LinkAttrs, peer: LinkAttrs): Request {
  return createLink(host, {
    kind: 'veth',
    data: [bytes(VETH_INFO_PEER, headerWithAttrs(linkHeader(peer), linkAttrs(peer)))],
  });
}

export const veth: KindRecord = { kind: 'veth', module: 'veth', deletedOnDetach: true, sharesLower: false };
