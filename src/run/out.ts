/**
 * Where a front end writes what it has to say, a line at a time (no
 * newline in `line`): `out` for results, `err` for errors and logs. The
 * `pipework` command (src/main.ts) gives each front end the process's
 * standard output and error; the daemon gives a batch one that collects its
 * lines for the HTTP reply, the watcher one that logs them under the
 * container's name.
 */
export interface Out {
  // Functions, not methods: they are handed on alone (a logger is `io.err`).
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

