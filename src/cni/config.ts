/**
 * The network configuration pipework-cni reads on stdin, checked before
 * anything is changed. Loads nothing heavy: VERSION and bad input never pull
 * in the netlink library.
 */
import { isIP } from 'node:net';
import { CniError, ErrorCode } from './errors';
import { MAX_IFNAME, ifnameFault } from '../addressing/ifname';
import { SUPPORTED_VERSIONS, compareVersions, isSemver, isSupported } from './version';

export type Mode = 'bridge' | 'macvlan' | 'vlan' | 'dummy' | 'ipoib';
const MODES: readonly Mode[] = ['bridge', 'macvlan', 'vlan', 'dummy', 'ipoib'];
const MACVLAN_MODES = ['private', 'vepa', 'bridge', 'passthru'] as const;
export type MacvlanMode = (typeof MACVLAN_MODES)[number];

/** Default bridge name in mode bridge (the reference bridge plugin's). */
export const DEFAULT_BRIDGE = 'cni0';

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface ResultIp {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** A CNI 1.x ADD result (an IPAM plugin returns one without interfaces). */
export interface Result {
  cniVersion: string;
  interfaces?: ResultInterface[];
  ips?: ResultIp[];
  routes?: ResultRoute[];
  dns?: Dns;
}

/** The plugin configuration, as given (unknown keys are kept and ignored). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  mode: Mode;
  /** Mode bridge: the Linux bridge (created if absent). */
  bridge?: string;
  /** Modes macvlan, vlan, ipoib: the parent interface on the host. */
  master?: string;
  /** Mode vlan: the VLAN id (1-4094) of the parent's `<master>.<vid>` link. */
  vlan?: number;
  /** Mode ipoib: the partition key, hex digits. */
  pkey?: string;
  mtu?: number;
  /** The container interface's MAC: `mac`, then CNI_ARGS `MAC=`, `args.cni.mac`, `runtimeConfig.mac` (the last one given wins). */
  mac?: string;
  /**
   * Addresses the runtime asked for (CNI_ARGS `IP=`, `args.cni.ips`,
   * `runtimeConfig.ips`), without prefix length. The IPAM plugin reads them
   * itself from the environment and configuration we pass it unchanged; ADD
   * checks that it assigned each of them.
   */
  requestedIps: string[];
  macvlanMode?: MacvlanMode;
  /** Gratuitous ARP for IPv4 addresses (default true). */
  announce: boolean;
  /** IPv6 addresses without duplicate address detection (default true: IPAM made them unique). */
  nodad: boolean;
  ipam?: { type?: string; [k: string]: unknown };
  dns?: Dns;
  prevResult?: Result;
  runtimeConfig?: { mac?: string; ips?: string[]; [k: string]: unknown };
  [k: string]: unknown;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MAC_RE = /^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$/;

const invalid = (msg: string, details = '') => new CniError(ErrorCode.InvalidConfig, msg, details);
const unsupported = (key: string, value: unknown, why: string) =>
  new CniError(ErrorCode.UnsupportedField, `unsupported field ${key}=${JSON.stringify(value)}: ${why}`);

/** stdin as JSON (code 6 when it is not a JSON object). */
export function decodeJson(stdin: Buffer): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(stdin.toString('utf8'));
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, 'error decoding network config', (e as Error).message);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CniError(ErrorCode.DecodingFailure, 'error decoding network config', 'the network config must be a JSON object');
  return v as Record<string, unknown>;
}

/** The cniVersion asked for, refused with code 1 unless we implement it. */
export function checkVersion(raw: Record<string, unknown>, minimum?: { version: string; command: string }): string {
  const v = raw.cniVersion;
  // A configuration without cniVersion is 0.1.0 (the spec's first version).
  const version = v === undefined ? '0.1.0' : v;
  if (!isSemver(version)) throw new CniError(ErrorCode.DecodingFailure, `invalid cniVersion ${JSON.stringify(v)}`, 'cniVersion must be a semantic version such as "1.0.0"');
  if (minimum && compareVersions(version, minimum.version) < 0)
    throw new CniError(ErrorCode.IncompatibleVersion, `config version ${version} does not allow ${minimum.command}`,
      `${minimum.command} needs cniVersion ${minimum.version} or later`);
  if (!isSupported(version))
    throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI versions',
      `config is "${version}", plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`);
  return version;
}

/** What is wrong with an interface name the kernel would refuse, in the words of the CNI plugins' own check. */
const IFNAME_PROBLEM = {
  empty: 'is empty', 'too long': `is longer than ${MAX_IFNAME} characters`, dot: 'is . or ..', character: 'contains / or : or whitespace',
};

/** Why the kernel would refuse an interface name (from the configuration or CNI_IFNAME); undefined when it would not. */
export function ifnameProblem(name: string): string | undefined {
  const fault = ifnameFault(name);
  return fault && IFNAME_PROBLEM[fault];
}

function ifname(raw: Record<string, unknown>, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(`${key} must be a string`);
  const problem = ifnameProblem(v);
  if (problem) throw invalid(`${key} "${v}" is not a valid interface name: it ${problem}`);
  return v;
}

function bool(raw: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = raw[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw invalid(`${key} must be true or false`);
  return v;
}

function checkMac(v: unknown, key: string, refuse = invalid): string {
  if (typeof v !== 'string' || !(MAC_RE.test(v) || (v.startsWith('U:') && v.length > 2)))
    throw refuse(`${key} ${JSON.stringify(v)} is not a MAC address (aa:bb:cc:dd:ee:ff, or U:<text>)`);
  if (!v.startsWith('U:')) {
    const first = parseInt(v.split(':')[0], 16);
    if (first & 1) throw refuse(`${key} ${v} is a multicast address`);
    if (/^[0:]+$/.test(v)) throw refuse(`${key} ${v} is all zeros`);
  }
  return v;
}

/** An IP address with or without `/prefix` (as host-local takes them), returned without the prefix. */
function checkIp(v: unknown, key: string, refuse = invalid): string {
  const [addr, len, ...rest] = typeof v === 'string' ? v.trim().split('/') : [];
  const family = addr === undefined ? 0 : isIP(addr);
  const max = family === 4 ? 32 : 128;
  if (!family || rest.length || (len !== undefined && !(/^\d{1,3}$/.test(len) && Number(len) <= max)))
    throw refuse(`${key} ${JSON.stringify(v)} is not an IP address (10.1.2.3, 10.1.2.3/24, 2001:db8::3)`);
  return addr;
}

function checkIps(v: unknown, key: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalid(`${key} must be a list of IP addresses`);
  return v.map((x, i) => checkIp(x, `${key}[${i}]`));
}

const invalidArgs = (msg: string) => new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_ARGS: ${msg}`);

/**
 * CNI_ARGS (`K1=V1;K2=V2`, CNI's CONVENTIONS.md), read as the reference
 * plugins read them: `MAC=` (the bridge and macvlan plugins) and `IP=` (for
 * the IPAM plugin: host-local and static read it themselves; a comma-separated
 * list) are known; any other key is an error unless `IgnoreUnknown=1` (or
 * `true`) is among them, as runtimes send it (Kubernetes, Podman). Keys are
 * case-sensitive; a pair without exactly one `=` is an error.
 */
export function parseCniArgs(args: string | undefined): { mac?: string; ips: string[] } {
  const out: { mac?: string; ips: string[] } = { ips: [] };
  if (!args) return out;
  const unknown: string[] = [];
  let ignoreUnknown = false;
  for (const pair of args.split(';')) {
    const kv = pair.split('=');
    if (kv.length !== 2) throw invalidArgs(`${JSON.stringify(pair)} is not KEY=VALUE`);
    const [key, value] = kv;
    switch (key) {
      case 'IgnoreUnknown': {
        const b = value.toLowerCase();
        if (!['1', 'true', '0', 'false'].includes(b)) throw invalidArgs(`IgnoreUnknown=${value}: 1, true, 0 or false`);
        ignoreUnknown = b === '1' || b === 'true';
        break;
      }
      case 'MAC':
        out.mac = checkMac(value, 'MAC', invalidArgs);
        break;
      case 'IP':
        out.ips = value.split(',').map((ip) => checkIp(ip, 'IP', invalidArgs));
        break;
      default:
        unknown.push(pair);
    }
  }
  if (unknown.length && !ignoreUnknown)
    throw invalidArgs(`unknown args ${JSON.stringify(unknown)} (known: MAC, IP; IgnoreUnknown=1 ignores the others)`);
  return out;
}

/** `args.cni` of the configuration (CONVENTIONS.md): `mac` as the bridge plugin reads it, `ips` as host-local does. */
function parseConfigArgs(v: unknown): { mac?: string; ips: string[] } {
  if (v === undefined) return { ips: [] };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('args must be an object');
  const cni = (v as Record<string, unknown>).cni;
  if (cni === undefined) return { ips: [] };
  if (typeof cni !== 'object' || cni === null || Array.isArray(cni)) throw invalid('args.cni must be an object');
  const { mac, ips } = cni as Record<string, unknown>;
  return { mac: mac === undefined ? undefined : checkMac(mac, 'args.cni.mac'), ips: checkIps(ips, 'args.cni.ips') };
}

function checkDns(v: unknown, key: string): Dns | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${key} must be an object`);
  const d = v as Record<string, unknown>;
  for (const k of ['nameservers', 'search', 'options']) {
    if (d[k] !== undefined && !(Array.isArray(d[k]) && (d[k] as unknown[]).every((x) => typeof x === 'string')))
      throw invalid(`${key}.${k} must be a list of strings`);
  }
  if (d.domain !== undefined && typeof d.domain !== 'string') throw invalid(`${key}.domain must be a string`);
  return d;
}

/** A previous result (CNI 1.x format), checked for shape only. */
export function checkResult(v: unknown, what: string): Result {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${what} must be an object`);
  const r = v as Record<string, unknown>;
  const list = (k: string) => {
    if (r[k] === undefined) return;
    if (!Array.isArray(r[k]) || !(r[k] as unknown[]).every((x) => typeof x === 'object' && x !== null))
      throw invalid(`${what}.${k} must be a list of objects`);
  };
  list('interfaces');
  list('ips');
  list('routes');
  for (const [i, x] of ((r.interfaces ?? []) as Record<string, unknown>[]).entries())
    if (typeof x.name !== 'string') throw invalid(`${what}.interfaces[${i}].name must be a string`);
  for (const [i, x] of ((r.ips ?? []) as Record<string, unknown>[]).entries()) {
    if (typeof x.address !== 'string') throw invalid(`${what}.ips[${i}].address must be a string`);
    if (x.interface !== undefined && !(Number.isInteger(x.interface) && (x.interface as number) >= 0))
      throw invalid(`${what}.ips[${i}].interface must be an index into interfaces`);
  }
  for (const [i, x] of ((r.routes ?? []) as Record<string, unknown>[]).entries())
    if (typeof x.dst !== 'string') throw invalid(`${what}.routes[${i}].dst must be a string`);
  checkDns(r.dns, `${what}.dns`);
  return r as unknown as Result;
}

/**
 * The whole configuration, checked (code 7 for bad values, 2 for fields the
 * mode cannot use), with the per-container values of `cniArgs` (CNI_ARGS, on
 * ADD; code 4 when malformed).
 */
export function parseConfig(raw: Record<string, unknown>, version: string, cniArgs?: string): NetConf {
  const name = raw.name;
  if (typeof name !== 'string' || name === '') throw invalid('missing network name');
  if (!NAME_RE.test(name)) throw invalid('invalid characters found in network name', name);
  if (typeof raw.type !== 'string' || raw.type === '') throw invalid('missing plugin type');

  const mode = raw.mode ?? 'bridge';
  if (typeof mode !== 'string' || !MODES.includes(mode as Mode))
    throw invalid(`unknown mode ${JSON.stringify(mode)}`, `mode must be one of ${MODES.join(', ')}`);
  const m = mode as Mode;

  const bridge = ifname(raw, 'bridge');
  const master = ifname(raw, 'master');
  if (bridge !== undefined && m !== 'bridge') throw unsupported('bridge', bridge, `only mode bridge uses a bridge (mode is ${m})`);
  if (master !== undefined && !['macvlan', 'vlan', 'ipoib'].includes(m))
    throw unsupported('master', master, `mode ${m} has no parent interface`);
  if (master === undefined && ['macvlan', 'vlan', 'ipoib'].includes(m)) throw invalid(`mode ${m} needs "master": the parent interface on the host`);

  let vlan: number | undefined;
  if (raw.vlan !== undefined) {
    if (m !== 'vlan') throw unsupported('vlan', raw.vlan, `only mode vlan uses a VLAN id (mode is ${m})`);
    const n = typeof raw.vlan === 'string' && /^\d+$/.test(raw.vlan) ? Number(raw.vlan) : raw.vlan;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 4094) throw invalid(`invalid vlan ${JSON.stringify(raw.vlan)}: 1-4094`);
    vlan = n;
  } else if (m === 'vlan') throw invalid('mode vlan needs "vlan": the VLAN id (1-4094)');

  let pkey: string | undefined;
  if (raw.pkey !== undefined) {
    if (m !== 'ipoib') throw unsupported('pkey', raw.pkey, `only mode ipoib uses a partition key (mode is ${m})`);
    const p = typeof raw.pkey === 'number' && Number.isInteger(raw.pkey) ? raw.pkey.toString(16) : raw.pkey;
    if (typeof p !== 'string' || !/^(0x)?[0-9a-fA-F]{1,4}$/.test(p) || parseInt(p.replace(/^0x/, ''), 16) === 0)
      throw invalid(`invalid pkey ${JSON.stringify(raw.pkey)}: 1-ffff (hex)`);
    pkey = p.replace(/^0x/, '');
  }

  let mtu: number | undefined;
  if (raw.mtu !== undefined) {
    if (typeof raw.mtu !== 'number' || !Number.isInteger(raw.mtu) || raw.mtu < 68 || raw.mtu > 65535)
      throw invalid(`invalid mtu ${JSON.stringify(raw.mtu)}: 68-65535`);
    mtu = raw.mtu;
  }

  // Per-container values, later ones winning as in the reference plugins: the configuration's own `mac`, then
  // CNI_ARGS (macvlan: mac < CNI_ARGS < runtimeConfig), args.cni, and the capabilities in runtimeConfig (bridge:
  // CNI_ARGS < args.cni < runtimeConfig). Requested IPs are the union of all three, as host-local takes them.
  const envArgs = parseCniArgs(cniArgs);
  const confArgs = parseConfigArgs(raw.args);
  let runtimeConfig: NetConf['runtimeConfig'];
  if (raw.runtimeConfig !== undefined) {
    if (typeof raw.runtimeConfig !== 'object' || raw.runtimeConfig === null || Array.isArray(raw.runtimeConfig))
      throw invalid('runtimeConfig must be an object');
    runtimeConfig = raw.runtimeConfig as NetConf['runtimeConfig'];
  }
  const runtimeMac = runtimeConfig?.mac === undefined ? undefined : checkMac(runtimeConfig.mac, 'runtimeConfig.mac');
  const mac = runtimeMac ?? confArgs.mac ?? envArgs.mac ?? (raw.mac === undefined ? undefined : checkMac(raw.mac, 'mac'));
  if (mac !== undefined && m === 'ipoib') throw unsupported('mac', mac, 'IPoIB interfaces take no MAC address');
  const requestedIps = [...new Set([...envArgs.ips, ...confArgs.ips, ...checkIps(runtimeConfig?.ips, 'runtimeConfig.ips')])];

  let macvlanMode: MacvlanMode | undefined;
  if (raw.macvlanMode !== undefined) {
    if (m !== 'macvlan' && m !== 'vlan') throw unsupported('macvlanMode', raw.macvlanMode, `only modes macvlan and vlan make a macvlan (mode is ${m})`);
    if (!MACVLAN_MODES.includes(raw.macvlanMode as MacvlanMode))
      throw invalid(`invalid macvlanMode ${JSON.stringify(raw.macvlanMode)}`, `one of ${MACVLAN_MODES.join(', ')}`);
    macvlanMode = raw.macvlanMode as MacvlanMode;
  }

  let ipam: NetConf['ipam'];
  if (raw.ipam !== undefined) {
    if (typeof raw.ipam !== 'object' || raw.ipam === null || Array.isArray(raw.ipam)) throw invalid('ipam must be an object');
    ipam = raw.ipam as NetConf['ipam'];
    const t = ipam!.type;
    if (t !== undefined && (typeof t !== 'string' || t === '' || t.includes('/') || t === '.' || t === '..'))
      throw invalid(`invalid ipam.type ${JSON.stringify(t)}`, 'the name of an IPAM plugin executable on CNI_PATH');
  }
  if (requestedIps.length && !ipam?.type)
    throw invalid(`IP addresses asked for (${requestedIps.join(', ')}) on a network without IPAM`, 'the IPAM plugin (ipam.type) assigns them');

  return {
    ...raw,
    cniVersion: version,
    name,
    type: raw.type,
    mode: m,
    bridge: m === 'bridge' ? bridge ?? DEFAULT_BRIDGE : undefined,
    master,
    vlan,
    pkey,
    mtu,
    mac,
    requestedIps,
    macvlanMode,
    announce: bool(raw, 'announce', true),
    nodad: bool(raw, 'nodad', true),
    ipam,
    dns: checkDns(raw.dns, 'dns'),
    prevResult: raw.prevResult === undefined ? undefined : checkResult(raw.prevResult, 'prevResult'),
    runtimeConfig,
  };
}

/** The attachment parameters from the environment. */
export interface Attachment {
  containerId: string;
  netns: string;
  ifname: string;
}
