import ipaddr from 'ipaddr.js';
import { PipeworkError } from '../errors';

/** An address with its prefix length, as bytes ready for netlink. */
export interface Cidr {
  family: 4 | 6;
  address: string;
  bytes: Buffer;
  prefixLen: number;
}

/** Plain dotted-quad IPv4, no leading zeros: what ipaddr.js calls four-part decimal, and already canonical. */
const DOTTED_QUAD = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

export function parseIp(text: string, what = 'IP address'): { family: 4 | 6; address: string; bytes: Buffer } {
  // The common case without ipaddr.js, which would parse the text four times to validate it.
  const quad = DOTTED_QUAD.exec(text);
  if (quad) {
    const bytes = Buffer.from([+quad[1], +quad[2], +quad[3], +quad[4]]);
    if (bytes.join('.') !== text) throw new PipeworkError(`Invalid ${what}: ${text}`); // an octet over 255
    return { family: 4, address: text, bytes };
  }
  if (!ipaddr.isValid(text) || !(ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text)))
    throw new PipeworkError(`Invalid ${what}: ${text}`);
  const ip = ipaddr.parse(text);
  return { family: ip.kind() === 'ipv4' ? 4 : 6, address: ip.toString(), bytes: Buffer.from(ip.toByteArray()) };
}

/** `10.0.0.2/24` or `2001:db8::2/64`; the original's message when the prefix is missing. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) {
    parseIp(text);
    throw new PipeworkError(`The IP address should include a netmask.\nMaybe you meant ${text}/24 ?`);
  }
  const ip = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max)
    throw new PipeworkError(`Invalid prefix length /${lenText} for ${ip.address} (0-${max})`);
  return { ...ip, prefixLen: Number(lenText) };
}

/** The IPv4 broadcast address of a prefix (all host bits set). */
export function broadcastOf(c: Cidr): Uint8Array | undefined {
  if (c.family !== 4 || c.prefixLen >= 31) return undefined;
  const b = c.bytes;
  const host = 0xffffffff >>> c.prefixLen;
  return Uint8Array.of(b[0] | (host >>> 24), b[1] | (host >>> 16), b[2] | (host >>> 8), b[3] | host);
}

export function inPrefix(ip: Buffer, c: Cidr): boolean {
  if (ip.length !== c.bytes.length) return false;
  let bits = c.prefixLen;
  for (let i = 0; i < ip.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip[i] & mask) !== (c.bytes[i] & mask)) return false;
  }
  return true;
}

export function formatIp(b: Uint8Array): string {
  return b.length === 4 ? b.join('.') : ipaddr.fromByteArray([...b]).toString();
}

/** `aa:bb:cc:dd:ee:ff`, or `U:<text>` -> 02 + first 5 bytes of md5("<text>\n"), as the original. */
export function parseMac(text: string): Buffer {
  if (text.startsWith('U:')) {
    const { createHash }: typeof import('node:crypto') = require('node:crypto');
    const digest = createHash('md5').update(`${text.slice(2)}\n`).digest();
    return Buffer.concat([Buffer.of(0x02), digest.subarray(0, 5)]);
  }
  if (!/^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$/.test(text)) throw new PipeworkError(`Invalid MAC address: ${text}`);
  const mac = Buffer.from(text.split(':').map((x) => parseInt(x, 16)));
  if (mac[0] & 1) throw new PipeworkError(`Invalid MAC address: ${text} is a multicast address`);
  if (mac.every((x) => x === 0)) throw new PipeworkError(`Invalid MAC address: ${text} is all zeros`);
  return mac;
}
