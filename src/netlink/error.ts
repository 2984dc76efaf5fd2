import { getSystemErrorMap } from 'node:util';
import { native } from '../native';

/** Linux errnos rtnetlink returns that Node's table (libuv's) does not name. */
const MISSING_FROM_NODE: Record<number, string> = { 54: 'EXFULL' };

/** Node builds this map anew on each call: once is enough. */
let names: Map<number, [string, string]> | undefined;
const errnoNames = () => (names ??= getSystemErrorMap());

/**
 * A request the kernel refused: errno and its code, the operation in words
 * and the kernel's extended-ACK text when it gave one.
 */
export class NetlinkError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly operation: string;
  readonly extack?: string;

  constructor(errno: number, operation: string, extack?: string) {
    const code = errnoNames().get(-errno)?.[0] ?? MISSING_FROM_NODE[errno] ?? `E${errno}`;
    super(`${operation}: ${native.strerror(errno)}${extack ? ` (${extack})` : ''}`);
    this.name = 'NetlinkError';
    this.errno = errno;
    this.code = code;
    this.operation = operation;
    this.extack = extack;
  }
}
