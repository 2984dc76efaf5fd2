/**
 * What the CNI commands read or change themselves, on top of src/netlink:
 * opening CNI_NETNS, matching a result's routes against those read back
 * (CHECK), and adding the routes an IPAM plugin returned (ADD).
 */
import { closeSync } from 'node:fs';
import { native, type SyscallError } from '../native';
import { nest, u32 } from '../netlink/attributes';
import { AF_INET, AF_INET6, RTA_METRICS, RTAX_MTU, RTN_UNICAST } from '../netlink/constants';
import { type RouteEntry, type RouteSpec, routeRequest } from '../netlink/route';
import type { Request } from '../netlink/message';
import { openGuest, type Guest } from '../guest';
import { parseCidr, parseIp } from '../addressing';
import { CniError, ErrorCode } from './errors';
import type { ResultRoute } from './config';

const RTAX_ADVMSS = 8;

/**
 * CNI_NETNS opened by fd, or undefined when it is gone: no such file, a
 * /proc/PID/ns/net whose process exited, or a bind mount left as a plain file
 * after the netns was unmounted. Other failures (permissions) are errors.
 */
export function openNetnsIfPresent(path: string): Guest | undefined {
  if (!path) return undefined;
  let fd: number;
  try {
    fd = native.openNetnsPath(path);
  } catch (e) {
    const code = (e as SyscallError).code;
    if (code === 'ENOENT' || code === 'ESRCH' || code === 'EINVAL' || code === 'ENOTTY') return undefined;
    throw e;
  }
  const g = openGuest({ fd });
  let open = true;
  return { ...g, path, label: path, close: () => { if (open) closeSync(fd); open = false; } };
}

/** CNI_NETNS opened by fd; code 3 when there is no such network namespace. */
export function openNetns(path: string): Guest {
  try {
    return openGuest({ path });
  } catch (e) {
    const msg = (e as Error).message;
    if (/not found|is not a network namespace/.test(msg))
      throw new CniError(ErrorCode.UnknownContainer, `network namespace ${path} does not exist`, msg);
    throw e;
  }
}

/** A route of a result, parsed: its destination, and its next hop (own or the IP's gateway). */
export interface ParsedRoute { route: ResultRoute; family: 4 | 6; dst: Buffer; dstLen: number; gateway?: Buffer }

export function parseRoute(r: ResultRoute, gateways: { 4?: Buffer; 6?: Buffer }): ParsedRoute {
  let dst;
  try {
    dst = parseCidr(r.dst);
  } catch (e) {
    throw new CniError(ErrorCode.InvalidConfig, `invalid route dst ${JSON.stringify(r.dst)}`, (e as Error).message);
  }
  let gateway: Buffer | undefined;
  if (r.gw) {
    const gw = parseIp(r.gw, 'route gw');
    if (gw.family !== dst.family) throw new CniError(ErrorCode.InvalidConfig, `route ${r.dst} via ${r.gw} mixes IP families`);
    gateway = gw.bytes;
  } else {
    gateway = gateways[dst.family];
  }
  // The destination as a network address (host bits cleared), as the kernel keeps it.
  const net = Buffer.from(dst.bytes);
  for (let bit = dst.prefixLen; bit < net.length * 8; bit++) net[bit >> 3] &= ~(0x80 >> (bit & 7));
  return { route: r, family: dst.family, dst: net, dstLen: dst.prefixLen, gateway };
}

/** `ip route add DST [via GW] dev IF [metric P] [table T] [scope S] [mtu M] [advmss A]` */
export function addRouteRequest(p: ParsedRoute, oif: number, ifname: string): Request {
  const spec: RouteSpec = {
    family: p.family === 4 ? AF_INET : AF_INET6,
    dst: p.dst,
    dstLen: p.dstLen,
    gateway: p.gateway,
    oif,
    metric: p.route.priority,
    table: p.route.table,
    scope: p.route.scope,
    type: RTN_UNICAST,
  };
  const req = routeRequest('add', spec, `${p.route.dst}${p.gateway ? ` via ${p.route.gw ?? 'gateway'}` : ''} dev ${ifname}`);
  const metrics = [
    ...(p.route.mtu !== undefined ? [u32(RTAX_MTU, p.route.mtu)] : []),
    ...(p.route.advmss !== undefined ? [u32(RTAX_ADVMSS, p.route.advmss)] : []),
  ];
  return metrics.length ? { ...req, attrs: [...req.attrs, nest(RTA_METRICS, metrics)] } : req;
}

/** True when `rows` hold the route (same destination, next hop and table). */
export function hasRoute(rows: RouteEntry[], p: ParsedRoute): boolean {
  const table = p.route.table ?? 254;
  return rows.some((r) => r.dstLen === p.dstLen
    && (p.dstLen === 0 || (r.dst !== undefined && p.dst.equals(r.dst)))
    && (p.gateway === undefined || (r.gateway !== undefined && p.gateway.equals(r.gateway)))
    && r.table === table);
}
