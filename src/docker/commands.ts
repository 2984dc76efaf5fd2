/**
 * The pipework commands a container asks for, read from what Docker says
 * about it (pure functions: no I/O).
 *
 * Labels (ours): `pipework` and `pipework.<n>` (n a number; run in order
 * pipework, pipework.0, pipework.1, ...), each the arguments of one command
 * WITHOUT the guest, which is inserted where the original syntax has it:
 *   pipework="br1 192.168.1.5/24@192.168.1.1"            -> br1 <id> 192.168.1.5/24@192.168.1.1
 *   pipework.1="--nodad br1 -i eth2 -l web 2001:db8::5/64" -> --nodad br1 -i eth2 -l web <id> 2001:db8::5/64
 *   pipework.2="route add 10.9.0.0/16 via 192.168.1.254"   -> route <id> add 10.9.0.0/16 via 192.168.1.254
 *
 * Environment (dreamcat4/pipework's form, for its users): every variable
 * whose name contains `pipework_cmd` (`pipework_cmd`, `pipework_cmd_eth0`,
 * ...; in name order), each holding the whole argument list with the guest
 * written as a macro, an optional leading `pipework ` dropped:
 *   pipework_cmd=br0 -i eth0 @CONTAINER_NAME@ 192.168.1.70/24
 * Macros: @CONTAINER_NAME@, @CONTAINER_ID@ (12 characters), @HOSTNAME@,
 * @INSTANCE@ (last number in the name), @COMPOSE_PROJECT_NAME@.
 *
 * Words are split like a shell line without expansion (src/cli/batch.ts).
 */
import { splitLine } from '../cli/batch';

/** What we read of `GET /containers/{id}/json`. */
export interface ContainerInfo {
  Id: string;
  Name?: string;
  State?: { Running?: boolean; Pid?: number; StartedAt?: string };
  Config?: { Labels?: Record<string, string> | null; Env?: string[] | null; Hostname?: string };
}

export interface ContainerCommand {
  /** Where it came from: `label pipework.1`, `env pipework_cmd_eth0`. */
  source: string;
  /** The pipework arguments, guest included. */
  words: string[];
  /** Why the label or variable could not be read (then words is empty). */
  error?: string;
}

function split(source: string, text: string, fn: (words: string[]) => string[]): ContainerCommand[] {
  try {
    const words = splitLine(text);
    return words.length ? [{ source, words: fn(words) }] : [];
  } catch (e) {
    return [{ source, words: [], error: (e as Error).message }];
  }
}

/** Our own options before the host interface that take a value. */
const VALUE_OPTIONS = new Set(['--macvlan-mode', '--timeout']);

/** Inserts the guest where the original syntax has it: after the host interface and its -i/-l/-a options. */
export function insertGuest(words: string[], guest: string): string[] {
  let i = 0;
  while (i < words.length && words[i].startsWith('--')) i += VALUE_OPTIONS.has(words[i]) ? 2 : 1;
  if (i >= words.length) return [...words, guest];
  if (['route', 'rule', 'tc', 'unplug'].includes(words[i])) return [...words.slice(0, i + 1), guest, ...words.slice(i + 1)];
  i++; // the host interface
  while (i < words.length && ['-i', '-l', '-a'].includes(words[i])) i += 2;
  i = Math.min(i, words.length);
  return [...words.slice(0, i), guest, ...words.slice(i)];
}

/** `pipework`, then `pipework.<n>` by number. */
function labelCommands(labels: Record<string, string>, guest: string): ContainerCommand[] {
  const keys = Object.keys(labels).filter((k) => k === 'pipework' || /^pipework\.\d+$/.test(k));
  const order = (k: string) => (k === 'pipework' ? -1 : Number(k.slice('pipework.'.length)));
  keys.sort((a, b) => order(a) - order(b));
  return keys.flatMap((k) => split(`label ${k}`, labels[k], (words) => insertGuest(words, guest)));
}

/** dreamcat4's macros, from the container's own description. */
export function expandMacros(text: string, c: ContainerInfo): string {
  const name = (c.Name ?? '').replace(/^\//, '');
  const values: Record<string, string> = {
    '@CONTAINER_NAME@': name,
    '@CONTAINER_ID@': c.Id.slice(0, 12),
    '@HOSTNAME@': c.Config?.Hostname ?? '',
    '@INSTANCE@': (name.match(/\d+/g) ?? []).pop() ?? '',
    '@COMPOSE_PROJECT_NAME@': c.Config?.Labels?.['com.docker.compose.project'] ?? '',
  };
  return text.replace(/@(CONTAINER_NAME|CONTAINER_ID|HOSTNAME|INSTANCE|COMPOSE_PROJECT_NAME)@/g, (m) => values[m]);
}

function envCommands(c: ContainerInfo): ContainerCommand[] {
  const vars: [string, string][] = [];
  for (const entry of c.Config?.Env ?? []) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (name.includes('pipework_cmd')) vars.push([name, entry.slice(eq + 1)]);
  }
  vars.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return vars.flatMap(([name, value]) => split(`env ${name}`, expandMacros(value, c), (words) => (words[0] === 'pipework' ? words.slice(1) : words)))
    .filter((cmd) => cmd.error || cmd.words.length);
}

/**
 * Every command of the container, labels first, then the environment. A
 * label or variable that cannot be split (an unterminated quote) comes back
 * with `error` set, the others as usual.
 */
export function containerCommands(c: ContainerInfo): ContainerCommand[] {
  return [...labelCommands(c.Config?.Labels ?? {}, c.Id), ...envCommands(c)];
}

/** A command line for logs: words quoted when they need it. */
export function showWords(words: string[]): string {
  return words.map((w) => (w === '' ? "''" : /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}
