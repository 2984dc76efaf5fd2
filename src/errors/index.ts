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
