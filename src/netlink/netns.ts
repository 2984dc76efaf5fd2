import { parseAttrs, u32 } from './attributes';
import { AF_UNSPEC, NETNSA_FD, NETNSA_NSID, RTM_GETNSID } from './constants';
import { Reply, Request, request } from './message';

/**
 * The id the socket's netns gives the netns held by fd (`ip netns list-id`
 * for one netns): the IFLA_LINK_NETNSID its links' peers there carry.
 */
export function getNsid(netnsFd: number): Request {
  const rtgenmsg = Buffer.alloc(4); // family, padded as iproute2 aligns it
  rtgenmsg.writeUInt8(AF_UNSPEC, 0);
  return request(RTM_GETNSID, 0, rtgenmsg, [u32(NETNSA_FD, netnsFd)], `RTM_GETNSID fd ${netnsFd}`);
}

/** The id from an RTM_NEWNSID answer; undefined when the kernel has assigned none (-1). */
export function parseNsid(reply: Reply): number | undefined {
  const id = parseAttrs(reply.payload, 4).get(NETNSA_NSID)?.readInt32LE(0);
  return id === undefined || id < 0 ? undefined : id;
}
