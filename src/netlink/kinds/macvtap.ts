import type { KindRecord } from './record';

/** Not made by pipework; met in containers (deleted on detach like a macvlan). */
export const macvtap: KindRecord = { kind: 'macvtap', module: 'macvtap', deletedOnDetach: true, sharesLower: true };
