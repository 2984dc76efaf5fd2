import { PipeworkError } from '../errors';
import type { Out } from '../run/out';

/**
 * The options of a subcommand that takes only options (`pipework daemon`,
 * `docker-plugin`, `watch`): `flags` and `values` map each option as typed
 * (aliases included) to its name. Returns the flags given and the values
 * given, or 'help' for -h/--help; throws for anything else, naming it.
 */
export function readOptions<F extends string, V extends string = never>(argv: string[], command: string,
  spec: { flags?: Record<string, F>; values?: Record<string, V> }): { flags: Set<F>; values: Partial<Record<V, string>> } | 'help' {
  const flags = new Set<F>();
  const values: Partial<Record<V, string>> = {};
  const known = (table: Record<string, string> | undefined, a: string) => table !== undefined && Object.hasOwn(table, a);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') return 'help';
    if (known(spec.flags, a)) flags.add(spec.flags![a]);
    else if (known(spec.values, a)) {
      if (i + 1 >= argv.length || argv[i + 1] === '') throw new PipeworkError(`${a} needs a value.`);
      values[spec.values![a]] = argv[++i];
    } else throw new PipeworkError(`Unexpected argument: ${a} (see pipework ${command} --help)`);
  }
  return { flags, values };
}

/**
 * A subcommand's options as `parse` reads them (readOptions and checks of
 * its own), or the exit status when there is nothing to run: 0 once the
 * usage is printed (-h/--help), 1 once the error is.
 */
export function optionsOrExit<T>(parse: () => T | 'help', usage: string, io: Out): T | number {
  let opts: T | 'help';
  try {
    opts = parse();
  } catch (e) {
    io.err((e as Error).message);
    return 1;
  }
  if (opts !== 'help') return opts;
  io.out(usage);
  return 0;
}
