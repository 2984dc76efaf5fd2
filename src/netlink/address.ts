import { bytes, get32, parseAttrs } from './attributes';
import {
  AF_INET, IFA_ADDRESS, IFA_BROADCAST, IFA_F_NODAD, IFA_LOCAL, NLM_F_CREATE, NLM_F_EXCL, RTM_DELADDR,
  RTM_GETADDR, RTM_NEWADDR, NLM_F_DUMP, NLM_F_REQUEST,
} from './constants';
import { type Reply, type Request, ifaddrmsg, request } from './message';
import type { RtnlSocket } from './socket';

export interface AddressSpec {
  index: number;
  family: number;
  address: Uint8Array;
  prefixLen: number;
  broadcast?: Uint8Array;
  /** Skip IPv6 duplicate address detection (IFA_F_NODAD). */
  nodad?: boolean;
}

/** `ip addr add ADDR/LEN [brd B] dev IF [nodad]` */
export function addAddress(a: AddressSpec, label = `${a.index}`): Request {
  const flags = a.nodad ? IFA_F_NODAD : 0;
  const attrs = [bytes(IFA_LOCAL, a.address), bytes(IFA_ADDRESS, a.address)];
  if (a.broadcast && a.family === AF_INET) attrs.push(bytes(IFA_BROADCAST, a.broadcast));
  return request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifaddrmsg(a.family, a.prefixLen, flags, 0, a.index), attrs,
    `RTM_NEWADDR ${label}`);
}

/** `ip addr del ADDR/LEN dev IF` */
export function deleteAddress(a: AddressSpec, label = `${a.index}`): Request {
  return request(RTM_DELADDR, 0, ifaddrmsg(a.family, a.prefixLen, 0, 0, a.index), [bytes(IFA_LOCAL, a.address), bytes(IFA_ADDRESS, a.address)],
    `RTM_DELADDR ${label}`);
}

/** `ip addr show`: every address of a netns (one family or all). */
export function dumpAddresses(family = 0): Request {
  return { type: RTM_GETADDR, flags: NLM_F_REQUEST | NLM_F_DUMP, header: ifaddrmsg(family, 0, 0, 0, 0), attrs: [], op: 'RTM_GETADDR dump' };
}

/** An address as a dump (RTM_NEWADDR) reports it. */
export interface AddressEntry {
  index: number;
  family: number;
  prefixLen: number;
  /** RT_SCOPE_*: universe (0) for a global address, link (253) for an IPv6 link-local one. */
  scope: number;
  /**
   * The link's own address: IFA_LOCAL, or IFA_ADDRESS where there is none (IPv6
   * without a peer). On a point-to-point link IFA_ADDRESS is the peer's.
   */
  address: Uint8Array;
}

const ADDRESS_ATTRS: ReadonlySet<number> = new Set([IFA_ADDRESS, IFA_LOCAL]);

/** The address in an RTM_NEWADDR (ifaddrmsg, then attributes), as `ip addr show` reads it. */
export function parseAddress(reply: Reply): AddressEntry {
  const p = reply.payload;
  const attrs = parseAttrs(p, 8, p.length, ADDRESS_ATTRS);
  return {
    family: p[0], prefixLen: p[1], scope: p[3], index: get32(p, 4),
    address: attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS) ?? new Uint8Array(),
  };
}

/** Every address of the socket's netns (one family, or all with 0). */
export async function readAddresses(sock: RtnlSocket, family = 0): Promise<AddressEntry[]> {
  return (await sock.request(dumpAddresses(family))).map(parseAddress);
}
