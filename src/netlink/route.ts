import { type Attr, bytes, get32, nest, parseAttrs, u32 } from './attributes';
import {
  AF_INET, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, RTAX_MTU, RTA_DST,
  RTA_GATEWAY, RTA_METRICS, RTA_OIF, RTA_PREFSRC, RTA_PRIORITY, RTA_TABLE, RTM_DELROUTE, RTM_GETROUTE,
  RTM_NEWROUTE, RTNH_F_ONLINK, RTN_UNICAST, RTPROT_BOOT, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN,
  RT_TABLE_UNSPEC, RTN_UNSPEC,
} from './constants';
import { type Reply, type Request, rtmsg, request } from './message';
import type { RtnlSocket } from './socket';

export type RouteCommand = 'add' | 'replace' | 'change' | 'append' | 'del';

export interface RouteSpec {
  family: number;
  /** Destination prefix; `default` is dstLen 0 (with or without an all-zero dst). */
  dst?: Buffer;
  dstLen: number;
  gateway?: Buffer;
  oif?: number;
  prefsrc?: Buffer;
  metric?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  mtu?: number;
  onlink?: boolean;
}

const COMMAND_FLAGS: Record<RouteCommand, number> = {
  add: NLM_F_CREATE | NLM_F_EXCL,
  replace: NLM_F_CREATE | NLM_F_REPLACE,
  change: NLM_F_REPLACE,
  append: NLM_F_CREATE | NLM_F_APPEND,
  del: 0,
};

/** Scope 255: the kernel matches any scope on delete. */
const RT_SCOPE_NOWHERE = 255;

/**
 * `ip route CMD PREFIX|default [via GW] [dev IF] [src S] [metric N] [table T] [proto P] [scope S] [mtu M] [onlink]`,
 * with iproute2's defaults: protocol boot, table main, scope link for a
 * gateway-less unicast route (universe for IPv6), any scope and type on delete.
 */
export function routeRequest(cmd: RouteCommand, r: RouteSpec, label = 'route'): Request {
  const del = cmd === 'del';
  const table = r.table ?? RT_TABLE_MAIN;
  const scope = r.scope ?? (del ? RT_SCOPE_NOWHERE : r.gateway || r.family !== AF_INET ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  const attrs: Attr[] = [];
  if (table >= 256) attrs.push(u32(RTA_TABLE, table));
  if (r.dst) attrs.push(bytes(RTA_DST, r.dst));
  if (r.gateway) attrs.push(bytes(RTA_GATEWAY, r.gateway));
  if (r.prefsrc) attrs.push(bytes(RTA_PREFSRC, r.prefsrc));
  if (r.metric !== undefined) attrs.push(u32(RTA_PRIORITY, r.metric));
  if (r.mtu !== undefined) attrs.push(nest(RTA_METRICS, [u32(RTAX_MTU, r.mtu)]));
  if (r.oif !== undefined) attrs.push(u32(RTA_OIF, r.oif));
  const header = rtmsg({
    family: r.family,
    dstLen: r.dstLen,
    table: table < 256 ? table : RT_TABLE_UNSPEC,
    protocol: r.protocol ?? (del ? 0 : RTPROT_BOOT),
    scope,
    type: r.type ?? (del ? RTN_UNSPEC : RTN_UNICAST),
    flags: r.onlink ? RTNH_F_ONLINK : 0,
  });
  return request(del ? RTM_DELROUTE : RTM_NEWROUTE, COMMAND_FLAGS[cmd], header, attrs, `${del ? 'RTM_DELROUTE' : 'RTM_NEWROUTE'} ${label}`);
}

/** RTM_F_FIB_MATCH: answer with the matching table entry (its real prefix), not a /32 clone. */
const RTM_F_FIB_MATCH = 0x2000;

/** `ip route get fibmatch ADDR`: the route entry the kernel would use, or ENETUNREACH. */
export function getRoute(family: number, dst: Buffer): Request {
  const header = rtmsg({ family, dstLen: dst.length * 8, table: 0, protocol: 0, scope: 0, type: 0, flags: RTM_F_FIB_MATCH });
  return request(RTM_GETROUTE, 0, header, [bytes(RTA_DST, dst)], 'RTM_GETROUTE');
}

/** `ip route show table all`: every route of a family. */
export function dumpRoutes(family: number): Request {
  const header = rtmsg({ family, dstLen: 0, table: 0, protocol: 0, scope: 0, type: 0 });
  return { type: RTM_GETROUTE, flags: NLM_F_REQUEST | NLM_F_DUMP, header, attrs: [], op: 'RTM_GETROUTE dump' };
}

/** A route as a dump (RTM_NEWROUTE) reports it: the fields an attach or a CNI result sets. */
export interface RouteEntry {
  family: number;
  dstLen: number;
  /** Absent for a default route (dstLen 0). */
  dst?: Uint8Array;
  gateway?: Uint8Array;
  oif?: number;
  /** RTA_TABLE where the table id is over 255, else rtm_table. */
  table: number;
  /** RTN_*: unicast (1), local (2), broadcast (3), ... */
  type: number;
  /** RTA_PRIORITY: `ip route ... metric N`. */
  metric?: number;
}

const ROUTE_ATTRS: ReadonlySet<number> = new Set([RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_TABLE, RTA_PRIORITY]);

/** The route in an RTM_NEWROUTE (rtmsg, then attributes), as `ip route show` reads it. */
export function parseRouteEntry(reply: Reply): RouteEntry {
  const p = reply.payload;
  const attrs = parseAttrs(p, 12, p.length, ROUTE_ATTRS);
  const u32Of = (v?: Uint8Array) => (v && v.length >= 4 ? get32(v, 0) : undefined);
  return {
    family: p[0], dstLen: p[1], dst: attrs.get(RTA_DST), gateway: attrs.get(RTA_GATEWAY), oif: u32Of(attrs.get(RTA_OIF)),
    table: u32Of(attrs.get(RTA_TABLE)) ?? p[4], type: p[7], metric: u32Of(attrs.get(RTA_PRIORITY)),
  };
}

/** Every route of one family (AF_UNSPEC: all) in the socket's netns, all tables. */
export async function readRoutes(sock: RtnlSocket, family: number): Promise<RouteEntry[]> {
  return (await sock.request(dumpRoutes(family))).map(parseRouteEntry);
}
