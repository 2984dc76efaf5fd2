/**
 * STATUS and GC (CNI 1.1.0). pipework keeps no state outside the container's
 * netns (a veth or macvlan dies with it), so both come down to the host side
 * of the mode and the IPAM plugin, which gets the same command when it knows
 * it (a plugin that implements only 1.0.0 has neither).
 */
import { CniError, ErrorCode } from './errors';
import type { NetConf } from './config';
import { named } from './ipam';
import { delegate, findPlugin, pluginVersions, supportsAtLeast, type CniCall, type Delegation } from './delegate';

/** The IPAM plugin, when it implements 1.1.0 (STATUS and GC); undefined for one that predates them. */
async function modernIpam(conf: NetConf, call: CniCall, unavailable: number | undefined): Promise<Delegation | undefined> {
  const type = conf.ipam?.type;
  // host-local runs in this process (host-local.ts): nothing to find or ask.
  if (!type || type === 'host-local') return undefined;
  let file: string;
  let versions: string[];
  try {
    file = findPlugin(type, call.env);
    versions = await pluginVersions(file, type, call);
  } catch (e) {
    if (unavailable === undefined || !(e instanceof CniError)) throw e;
    throw new CniError(unavailable, e.message, e.details);
  }
  return supportsAtLeast(versions, '1.1.0') ? { type, file, call, cniVersion: conf.cniVersion } : undefined;
}

/**
 * STATUS: ready for ADD when the mode's host side is usable (a bridge name
 * that is free or a Linux bridge; a master that exists and fits the mode) and
 * the IPAM plugin is installed and, if it knows STATUS, says it is ready.
 */
export async function status(conf: NetConf, call: CniCall): Promise<void> {
  if (conf.mode !== 'dummy') {
    const { RtnlSocket }: typeof import('../netlink/socket') = require('../netlink/socket');
    const { findLink }: typeof import('../netlink/link') = require('../netlink/link');
    const { ARPHRD_INFINIBAND }: typeof import('../netlink/constants') = require('../netlink/constants');
    const host = RtnlSocket.open();
    try {
      if (conf.mode === 'bridge') {
        const link = await findLink(host, conf.bridge!);
        if (link && link.kind !== 'bridge')
          throw new CniError(ErrorCode.PluginNotAvailable, `${conf.bridge} exists and is not a Linux bridge`);
      } else {
        const link = await findLink(host, conf.master!);
        if (!link) throw new CniError(ErrorCode.PluginNotAvailable, `master ${conf.master} not found on the host`);
        if ((link.hwType === ARPHRD_INFINIBAND) !== (conf.mode === 'ipoib'))
          throw new CniError(ErrorCode.PluginNotAvailable, `master ${conf.master} does not fit mode ${conf.mode}`);
      }
    } finally {
      host.close();
    }
  }
  const ipam = await modernIpam(conf, call, ErrorCode.PluginNotAvailable);
  if (ipam) await delegate(ipam, 'STATUS');
}

/** GC: checks `cni.dev/valid-attachments` and hands it to the IPAM plugin (its reservations are the only state). */
export async function gc(conf: NetConf, call: CniCall): Promise<void> {
  const valid = conf['cni.dev/valid-attachments'];
  if (valid !== undefined && !(Array.isArray(valid) && valid.every((v) =>
    typeof v === 'object' && v !== null && typeof v.containerID === 'string' && typeof v.ifname === 'string')))
    throw new CniError(ErrorCode.InvalidConfig, 'cni.dev/valid-attachments must be a list of {containerID, ifname}');
  if (conf.ipam?.type === 'host-local') {
    // Without the list every reservation would look stale: nothing is released then.
    if (valid === undefined) return;
    const hl: typeof import('./host-local') = require('./host-local');
    await named('host-local', 'GC', () => hl.hostLocalGc(hl.parseHostLocal(conf, []), valid as { containerID: string; ifname: string }[]));
    return;
  }
  const ipam = await modernIpam(conf, call, undefined);
  if (ipam) await delegate(ipam, 'GC');
}
