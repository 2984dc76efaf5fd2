/**
 * The IPAM of a configuration: `host-local` runs inside this process (see
 * host-local.ts: same files and lock as the reference plugin); any other type
 * is the plugin of that name on CNI_PATH, exec'd (delegate.ts).
 */
import { CniError } from './errors';
import type { Attachment, NetConf, Result } from './config';
import { delegate, findPlugin, ipamAdd, type CniCall } from './delegate';

export interface Ipam {
  type: string;
  add(): Promise<Result>;
  del(): Promise<void>;
  check(): Promise<void>;
}

/** An in-process failure named like a delegated plugin's (`host-local (ADD): ...`). */
export async function named<T>(type: string, command: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CniError) throw new CniError(e.code, `${type} (${command}): ${e.message}`, e.details);
    throw e;
  }
}

/** The IPAM of this configuration for one attachment, if it names one. */
export function ipamOf(conf: NetConf, a: Attachment, call: CniCall): Ipam | undefined {
  const type = conf.ipam?.type;
  if (!type) return undefined;
  if (type === 'host-local') {
    const hl: typeof import('./host-local') = require('./host-local');
    const parse = () => hl.parseHostLocal(conf, conf.requestedIps);
    return {
      type,
      add: () => named(type, 'ADD', () => hl.hostLocalAdd(parse(), conf.cniVersion, a.containerId, a.ifname)),
      del: () => named(type, 'DEL', () => hl.hostLocalDel(parse(), a.containerId, a.ifname)),
      check: () => named(type, 'CHECK', () => hl.hostLocalCheck(parse(), a.containerId, a.ifname)),
    };
  }
  const d = { type, file: findPlugin(type, call.env), call, cniVersion: conf.cniVersion };
  return {
    type,
    add: () => ipamAdd(d),
    del: async () => void (await delegate(d, 'DEL')),
    check: async () => void (await delegate(d, 'CHECK')),
  };
}
