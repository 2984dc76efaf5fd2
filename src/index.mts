/**
 * The ES module entry (`import { Session } from 'pipework'`): the CommonJS
 * build re-exported, so both entries share one module instance.
 */
export * from './index.js';
