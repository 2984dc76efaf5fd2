import { getSystemErrorMap } from 'node:util';
import { native } from '../native';
import { EINTR, EXFULL } from './errno';

/** Linux errnos rtnetlink returns that Node's table (libuv's) does not name. */
const MISSING_FROM_NODE: Record<number, string> = { [EXFULL]: 'EXFULL' };

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

/**
 * A dump the kernel flagged interrupted (NLM_F_DUMP_INTR: the table changed
 * while it was read, so entries may be missing or repeated) each of the
 * `attempts` times it was asked.
 */
export class DumpInterruptedError extends NetlinkError {
  readonly attempts: number;

  constructor(operation: string, attempts: number) {
    super(EINTR, operation);
    this.name = 'DumpInterruptedError';
    this.message = `${operation}: interrupted by changes to the kernel's table in each of ${attempts} attempts (NLM_F_DUMP_INTR), no consistent reading`;
    this.attempts = attempts;
  }
}

/** e is the kernel's refusal with one of these errnos (from ./errno). */
export function refusedWith(e: unknown, ...errnos: number[]): e is NetlinkError {
  return e instanceof NetlinkError && errnos.includes(e.errno);
}
