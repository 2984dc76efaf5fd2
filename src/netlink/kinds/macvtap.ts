import { decodeMacvlan } from './macvlan';
import type { KindRecord } from './record';

/** Not made by pipework; met in containers (deleted on detach like a macvlan). Its data is a macvlan's. */
export const macvtap = { kind: 'macvtap', module: 'macvtap', deletedOnDetach: true, sharesLower: true, decode: decodeMacvlan } satisfies KindRecord;
