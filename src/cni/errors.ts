/**
 * CNI error results: `{"cniVersion", "code", "msg", "details"}` on stdout and
 * a non-zero exit. Codes 0-99 are the spec's well-known ones.
 */
export const ErrorCode = {
  /** Incompatible CNI version. */
  IncompatibleVersion: 1,
  /** Unsupported field in the network configuration (the message names key and value). */
  UnsupportedField: 2,
  /** Container unknown or does not exist: the runtime need not clean up. */
  UnknownContainer: 3,
  /** Invalid or missing environment variables (the message names them). */
  InvalidEnvironment: 4,
  /** I/O failure, e.g. reading stdin. */
  IoFailure: 5,
  /** Failed to decode content (JSON). */
  DecodingFailure: 6,
  /** Invalid network configuration. */
  InvalidConfig: 7,
  /** A transient condition: retry later. */
  TryAgainLater: 11,
  /** STATUS: the plugin cannot service ADD requests. */
  PluginNotAvailable: 50,
  /** STATUS: not available, and existing containers may have limited connectivity. */
  LimitedConnectivity: 51,
  /** Anything else. */
  Internal: 999,
} as const;

/** A failure with its CNI code, printed as the spec's error result. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, msg: string, details = '') {
    super(msg);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }
}

export interface ErrorResult {
  cniVersion: string;
  code: number;
  msg: string;
  details: string;
}

/** Any thrown value as a CNI error result (kernel refusals and our own checks keep their text). */
export function toErrorResult(e: unknown, cniVersion: string): ErrorResult {
  if (e instanceof CniError) return { cniVersion, code: e.code, msg: e.message, details: e.details };
  const err = e as Error & { code?: unknown; syscall?: string; errno?: number };
  // NetlinkError and PipeworkError carry complete messages; a failed system call names itself.
  const msg = err?.syscall && !(err?.message ?? '').includes(err.syscall)
    ? `${err.syscall}: ${err.message}`
    : String(err?.message ?? err);
  const details = err?.name === 'NetlinkError' || err?.name === 'PipeworkError' || err?.syscall ? '' : String(err?.stack ?? '');
  return { cniVersion, code: ErrorCode.Internal, msg, details };
}
