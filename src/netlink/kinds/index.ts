import { type AttrMap, parseAttrs } from '../attributes';
import type { Link } from '../link';
import type { KindRecord } from './record';
import * as table from './table';

export type { KindRecord } from './record';

/** The IFLA_INFO_KIND of every kind in the table. */
export type KindName = keyof typeof table;

/** What a kind's record decodes its IFLA_INFO_DATA to. */
export type KindData<K extends KindName> = (typeof table)[K] extends { decode: (data: AttrMap) => infer D } ? D : never;

/** The kinds whose IFLA_INFO_DATA pipework reads (their records have `decode`). */
export type DecodedKind = { [K in KindName]: [KindData<K>] extends [never] ? never : K }[KindName];

const byKind = new Map<string, KindRecord>(Object.values(table).map((k: KindRecord) => [k.kind, k]));

/** The record of a link kind; undefined for a kind not in the table (or a link without one: a physical NIC). */
export const linkKind = (kind: string | undefined): KindRecord | undefined => (kind === undefined ? undefined : byKind.get(kind));

/**
 * The link's IFLA_INFO_DATA as its kind's record decodes it (`ip -d link
 * show`); undefined when the link is not of that kind or came without data.
 */
export function kindData<K extends DecodedKind>(link: Link, kind: K): KindData<K> | undefined {
  const decode = byKind.get(kind)?.decode;
  if (link.kind !== kind || !link.infoData || !decode) return undefined;
  return decode(parseAttrs(link.infoData)) as KindData<K>;
}
