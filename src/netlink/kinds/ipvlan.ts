import type { KindRecord } from './record';

/** Not made by pipework; met in containers (deleted on detach like a macvlan). */
export const ipvlan: KindRecord = { kind: 'ipvlan', module: 'ipvlan', deletedOnDetach: true, sharesLower: true };
