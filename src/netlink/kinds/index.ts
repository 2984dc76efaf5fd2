import type { KindRecord } from './record';
import * as table from './table';

export type { KindRecord } from './record';

/** The IFLA_INFO_KIND of every kind in the table. */
export type KindName = keyof typeof table;

const byKind = new Map<string, KindRecord>(Object.values(table).map((k: KindRecord) => [k.kind, k]));

/** The record of a link kind; undefined for a kind not in the table (or a link without one: a physical NIC). */
export const linkKind = (kind: string | undefined): KindRecord | undefined => (kind === undefined ? undefined : byKind.get(kind));
