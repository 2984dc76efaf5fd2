import { PipeworkError } from '../errors';

/** IFNAMSIZ - 1: the longest interface name Linux accepts. */
export const MAX_IFNAME = 15;

/** Refuses a user-chosen interface name the kernel would reject, saying why. */
export function checkIfname(name: string, what: string): string {
  const len = Buffer.byteLength(name);
  if (len === 0) throw new PipeworkError(`The ${what} name is empty.`);
  if (len > MAX_IFNAME)
    throw new PipeworkError(`The ${what} name '${name}' is ${len} characters long; Linux allows at most ${MAX_IFNAME}.`);
  if (name === '.' || name === '..' || /[/:\s]/.test(name))
    throw new PipeworkError(`The ${what} name '${name}' is not valid: no '/', ':' or whitespace, and not '.' or '..'.`);
  return name;
}

/**
 * A generated name, as the original builds it when it fits; otherwise cut to
 * 9 characters plus '-' and 5 hex digits of its md5, so it stays unique and
 * always the same for the same inputs.
 */
export function fitName(name: string): string {
  if (Buffer.byteLength(name) <= MAX_IFNAME) return name;
  const { createHash }: typeof import('node:crypto') = require('node:crypto');
  const hash = createHash('md5').update(name).digest('hex').slice(0, 5);
  return `${Buffer.from(name).subarray(0, 9).toString()}-${hash}`;
}

/** The original's veth host-end name: v<cif>pl<pid>. */
export const vethHostName = (cif: string, tag: string) => fitName(`v${cif}pl${tag}`);
