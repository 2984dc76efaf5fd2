import { PipeworkError } from '../errors';
import { MAX_IFNAME, ifnameFault } from '../addressing/ifname';

/** Refuses a user-chosen interface name the kernel would reject, saying why. */
export function checkIfname(name: string, what: string): string {
  const fault = ifnameFault(name);
  if (fault === 'empty') throw new PipeworkError(`The ${what} name is empty.`);
  if (fault === 'too long')
    throw new PipeworkError(`The ${what} name '${name}' is ${Buffer.byteLength(name)} characters long; Linux allows at most ${MAX_IFNAME}.`);
  if (fault) throw new PipeworkError(`The ${what} name '${name}' is not valid: no '/', ':' or whitespace, and not '.' or '..'.`);
  return name;
}

/** Bytes of a cut name kept from its start, and base32 digits of its md5 after the '-': 6 + 1 + 8 = MAX_IFNAME. */
const CUT_KEEP = 6;
const CUT_DIGITS = 8;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * A generated name, as the original builds it when it fits; otherwise its
 * first 6 bytes (whole characters), '-' and 8 base32 digits (40 bits) of its
 * md5, always the same for the same inputs. 40 bits keep distinct long names
 * apart: two among 10,000 share one with odds of about 1 in 20,000 (the 5 hex
 * digits used before collided about 2 times in 5 among 1000).
 */
export function fitName(name: string): string {
  if (Buffer.byteLength(name) <= MAX_IFNAME) return name;
  const { createHash }: typeof import('node:crypto') = require('node:crypto');
  const digest = createHash('md5').update(name).digest();
  let hash = '';
  for (let bit = 0; bit < CUT_DIGITS * 5; bit += 5) {
    const pair = (digest[bit >> 3] << 8) | digest[(bit >> 3) + 1];
    hash += BASE32[(pair >> (11 - (bit & 7))) & 31];
  }
  let kept = '';
  for (const c of name) {
    if (Buffer.byteLength(kept + c) > CUT_KEEP) break;
    kept += c;
  }
  return `${kept}-${hash}`;
}

/** The original's veth host-end name: v<cif>pl<pid>. */
export const vethHostName = (cif: string, tag: string) => fitName(`v${cif}pl${tag}`);
