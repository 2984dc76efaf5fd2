/**
 * Bad input or a state we refuse to act on, found before anything changes.
 * The CLI prints the message as is (the original's texts where it had one).
 */
export class PipeworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PipeworkError';
  }
}

/** Bytes that are not a well-formed netlink message (lengths that run past the buffer): never from the kernel, so a bug or corruption. */
export class MalformedMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedMessageError';
  }
}

/**
 * An operation failed and undoing what it had already done failed too, so
 * some of it may be left in place. `cause` is the first failure; `errors`
 * are the undo steps that failed.
 */
export class RollbackError extends AggregateError {
  constructor(cause: unknown, undoFailures: Error[]) {
    const first = cause instanceof Error ? cause.message : String(cause);
    super(undoFailures, `${first} (undoing what was done failed too, some of it may be left: ${undoFailures.map((e) => e.message).join('; ')})`, { cause });
    this.name = 'RollbackError';
  }
}
