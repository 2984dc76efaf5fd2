/**
 * The `pipework` command's entry: hands the subcommands of the Docker front
 * end to it and everything else to the CLI. Each is loaded only when asked
 * for: a single call has to start faster than the shell original runs.
 */
type Out = { out: (s: string) => void; err: (s: string) => void };

/** Runs one command line; resolves with the exit status. io: default the process's stdout and stderr. */
export function main(argv: string[], io?: Out): Promise<number> {
  if (argv[0] === 'docker-plugin') return (require('./docker/plugin') as typeof import('./docker/plugin')).main(argv.slice(1), io);
  if (argv[0] === 'watch') return (require('./docker/watch') as typeof import('./docker/watch')).main(argv.slice(1), io);
  return (require('./cli/main') as typeof import('./cli/main')).main(argv, io);
}
