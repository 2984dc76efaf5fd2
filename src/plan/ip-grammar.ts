import { parseIp } from '../addressing';
import { PipeworkError } from '../errors';
import { AF_INET, AF_INET6 } from '../netlink/constants';
import type { RouteCommand, RouteSpec } from '../netlink/route';
import type { RuleSpec } from '../netlink/rule';
import { checkIfname } from './names';

// The common iproute2 grammar users hand to `pipework route|rule GUEST ...`,
// parsed into request specs. Words we do not handle are refused by name.

const TABLES: Record<string, number> = { default: 253, main: 254, local: 255 };
const PROTOCOLS: Record<string, number> = { redirect: 1, kernel: 2, boot: 3, static: 4, ra: 9, dhcp: 16 };
const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };

function next(args: string[], i: number, word: string): string {
  if (i >= args.length) throw new PipeworkError(`"${word}" needs an argument.`);
  return args[i];
}

function number(text: string, word: string, max = 0xffffffff): number {
  const n = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > max) throw new PipeworkError(`Invalid ${word}: ${text}`);
  return n;
}

const named = (table: Record<string, number>, text: string, word: string) =>
  text in table ? table[text] : number(text, word);

interface Prefix {
  family: 4 | 6;
  bytes: Buffer;
  len: number;
}

function prefix(text: string, word: string): Prefix {
  const [addr, lenText, extra] = text.split('/');
  if (extra !== undefined) throw new PipeworkError(`Invalid ${word}: ${text}`);
  const ip = parseIp(addr, word);
  const max = ip.family === 4 ? 32 : 128;
  const len = lenText === undefined ? max : number(lenText, `${word} prefix length`, max);
  return { family: ip.family, bytes: ip.bytes, len };
}

function sameFamily(a: number | undefined, b: 4 | 6, text: string): 4 | 6 {
  if (a !== undefined && a !== b) throw new PipeworkError(`Mixed IPv4 and IPv6 in: ${text}`);
  return b;
}

const afOf = (f: 4 | 6 | undefined) => (f === 6 ? AF_INET6 : AF_INET);

/** A route with the device still named: the executor resolves it in the guest. */
export interface ParsedRoute {
  cmd: RouteCommand;
  spec: RouteSpec;
  dev?: string;
}

const ROUTE_COMMANDS: Record<string, RouteCommand> = {
  add: 'add', del: 'del', delete: 'del', replace: 'replace', change: 'change', append: 'append',
};

/** `[add|del|replace|change|append] PREFIX|default [via A] [dev IF] [src A] [metric N] [table T] [proto P] [scope S] [mtu N] [onlink]` */
export function parseRoute(args: string[]): ParsedRoute {
  if (args.length === 0) throw new PipeworkError('route: missing arguments (e.g. add 10.1.0.0/16 via 10.0.0.1).');
  const cmd = ROUTE_COMMANDS[args[0]];
  if (!cmd) throw new PipeworkError(`route: unsupported command "${args[0]}" (add, del, replace, change or append).`);
  const text = args.join(' ');
  let family: 4 | 6 | undefined;
  let dst: Prefix | undefined;
  let isDefault = false;
  let dev: string | undefined;
  const spec: Partial<RouteSpec> = {};
  for (let i = 1; i < args.length; i++) {
    const word = args[i];
    switch (word) {
      case 'to':
        break;
      case 'via': {
        let v = next(args, ++i, word);
        if (v === 'inet' || v === 'inet6') v = next(args, ++i, word);
        const gw = parseIp(v, 'gateway');
        family = sameFamily(family, gw.family, text);
        spec.gateway = gw.bytes;
        break;
      }
      case 'dev':
      case 'oif':
        dev = checkIfname(next(args, ++i, word), 'device');
        break;
      case 'src': {
        const src = parseIp(next(args, ++i, word), 'source address');
        family = sameFamily(family, src.family, text);
        spec.prefsrc = src.bytes;
        break;
      }
      case 'metric':
      case 'priority':
      case 'preference':
        spec.metric = number(next(args, ++i, word), word);
        break;
      case 'table':
        spec.table = named(TABLES, next(args, ++i, word), word);
        break;
      case 'proto':
      case 'protocol':
        spec.protocol = named(PROTOCOLS, next(args, ++i, word), word);
        if (spec.protocol > 255) throw new PipeworkError(`Invalid protocol: ${args[i]}`);
        break;
      case 'scope':
        spec.scope = named(SCOPES, next(args, ++i, word), word);
        if (spec.scope > 255) throw new PipeworkError(`Invalid scope: ${args[i]}`);
        break;
      case 'mtu': {
        let m = next(args, ++i, word);
        if (m === 'lock') throw new PipeworkError('route: "mtu lock" is not supported.');
        spec.mtu = number(m, word);
        break;
      }
      case 'onlink':
        spec.onlink = true;
        break;
      default:
        if (dst || isDefault) throw new PipeworkError(`route: unsupported word "${word}".`);
        if (word === 'default' || word === 'all') isDefault = true;
        else {
          dst = prefix(word, 'destination');
          family = sameFamily(family, dst.family, text);
        }
    }
  }
  if (!dst && !isDefault) throw new PipeworkError('route: missing destination (a prefix or "default").');
  return {
    cmd,
    dev,
    spec: {
      ...spec,
      family: afOf(family),
      dst: dst ? dst.bytes : Buffer.alloc(family === 6 ? 16 : 4),
      dstLen: dst ? dst.len : 0,
    },
  };
}

/** `add|del [not] [from P|all] [to P|all] [fwmark M[/MASK]] [iif IF] [oif IF] [table|lookup T] [pref|priority N]` */
export function parseRule(args: string[]): { cmd: 'add' | 'del'; spec: RuleSpec } {
  const cmd = args[0] === 'add' ? 'add' : args[0] === 'del' || args[0] === 'delete' ? 'del' : undefined;
  if (!cmd) throw new PipeworkError(`rule: unsupported command "${args[0] ?? ''}" (add or del).`);
  const text = args.join(' ');
  let family: 4 | 6 | undefined;
  const spec: Partial<RuleSpec> = {};
  for (let i = 1; i < args.length; i++) {
    const word = args[i];
    switch (word) {
      case 'not':
        spec.not = true;
        break;
      case 'from':
      case 'to': {
        const v = next(args, ++i, word);
        if (v === 'all') break;
        const p = prefix(v, word === 'from' ? 'source' : 'destination');
        family = sameFamily(family, p.family, text);
        if (word === 'from') Object.assign(spec, { src: p.bytes, srcLen: p.len });
        else Object.assign(spec, { dst: p.bytes, dstLen: p.len });
        break;
      }
      case 'fwmark': {
        const [mark, mask] = next(args, ++i, word).split('/');
        spec.fwmark = number(mark, 'fwmark');
        if (mask !== undefined) spec.fwmask = number(mask, 'fwmark mask');
        break;
      }
      case 'iif':
      case 'dev':
        spec.iif = checkIfname(next(args, ++i, word), 'iif');
        break;
      case 'oif':
        spec.oif = checkIfname(next(args, ++i, word), 'oif');
        break;
      case 'table':
      case 'lookup':
        spec.table = named(TABLES, next(args, ++i, word), word);
        break;
      case 'pref':
      case 'priority':
      case 'preference':
        spec.priority = number(next(args, ++i, word), word);
        break;
      default:
        throw new PipeworkError(`rule: unsupported word "${word}".`);
    }
  }
  return { cmd, spec: { ...spec, family: afOf(family) } };
}
