import { getS32, parseAttrs, u32 } from './attributes';
import { AF_UNSPEC, NETNSA_FD, NETNSA_NSID, RTM_GETNSID } from './constants';
import { type Reply, type Request, request } from './message';

/**
 * The id the socket's netns gives the netns held by fd (`ip netns list-id`
 * for one netns): the IFLA_LINK_NETNSID its links' peers there carry.
 */
export function getNsid(netnsFd: number): Request {
  const rtgenmsg = Uint8Array.of(AF_UNSPEC, 0, 0, 0); // family, padded as iproute2 aligns it
  return request(RTM_GETNSID, 0, rtgenmsg, [u32(NETNSA_FD, netnsFd)], `RTM_GETNSID fd ${netnsFd}`);
}

/** The id from an RTM_NEWNSID answer; undefined when the kernel has assigned none (-1). */
export function parseNsid(reply: Reply): number | undefined {
  const id = parseAttrs(reply.payload, 4).get(NETNSA_NSID);
  return id === undefined || id.length < 4 || getS32(id, 0) < 0 ? undefined : getS32(id, 0);
}
