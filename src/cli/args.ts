import { PipeworkError } from '../errors';

/** The original's usage block, printed (exit 1) when the arguments make no command. */
export const USAGE = `Syntax:
pipework <hostinterface> [-i containerinterface] [-l localinterfacename] [-a addressfamily] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr][@vlan]
pipework <hostinterface> [-i containerinterface] [-l localinterfacename] <guest> dhcp [macaddr][@vlan]
pipework mac:<hostinterface_macaddress> [-i containerinterface] [-l localinterfacename] [-a addressfamily] <guest> <ipaddr>/<subnet>[@default_gateway] [macaddr][@vlan]
pipework mac:<hostinterface_macaddress> [-i containerinterface] [-l localinterfacename] <guest> dhcp [macaddr][@vlan]
pipework route <guest> <route_command>
pipework rule <guest> <rule_command>
pipework tc <guest> <tc_command>
pipework --wait [-i containerinterface]`;

export const HELP = `${USAGE}

Also:
pipework unplug <guest> [-i containerinterface]     remove what an attach made (harmless if repeated)
pipework gc [--dry-run] [--bridges] [--docker-state FILE]
                                                     remove what containers that died without unplug left behind:
                                                     OVS ports whose interface is gone, VLAN links we made with no
                                                     macvlan left, DHCP clients alone in a dead container's netns
                                                     (pidfiles, scratch dirs), links a killed attach moved aside,
                                                     Docker plugin endpoints whose sandbox is gone and that Docker
                                                     no longer lists (state FILE, default that of docker-plugin);
                                                     --bridges: also bridges we created that have no port left.
                                                     Only what pipework marked as its own; --dry-run lists commands
pipework --batch FILE|-                              one pipework command per line, in one process
pipework --direct-phys <hostinterface> ...           move the interface itself into the container
pipework docker-plugin [--socket PATH] [--state FILE]  Docker network driver: docker network create -d pipework
pipework watch [--cleanup]                           plumb containers as their pipework labels ask, as they start
pipework daemon [--socket PATH] [--docker-plugin] [--watch]  serve CNI calls and the API from one process

<guest>: a PID, a named netns (/run/netns/NAME), a netns path, a Docker container
name or id, or an LXC container name.
<ipaddr>: 10.0.0.2/24, 2001:db8::2/64, 0/0 (no address, link up), or a DHCP client:
dhcp[:opts] (Docker only), udhcpc[-f][:opts], dhclient[-f][:opts], dhcpcd[:opts].
SIGINT, SIGTERM or SIGHUP stop --batch, docker-plugin and watch gracefully: nothing new
starts, what is in flight finishes (a second signal rolls back a batch's attaches in flight),
a batch says which lines were done, failed or not started; a single attach is rolled back
(DHCP: once its wait ends). Exit status 128 + the signal's number.

Options (before the host interface):
  --dry-run              print the equivalent ip/ovs-vsctl commands, change nothing
  --converge             if the attachment asked for exists (a run killed half-way, a
                         re-run), complete what it lacks and exit 0; --json then says
                         "status": "created", "repaired" or "unchanged"; a link that is
                         something else is still refused, saying why
  --json                 print the result as one JSON object (one per line with --batch)
  --concurrency N        with --batch: lines in flight at once (default 1024, fewer
                         under a low open-file limit)
  --macvlan-mode MODE    bridge (default), private, vepa or passthru
  --nodad                IPv6 addresses without duplicate address detection
  --no-arp               do not announce the address with a gratuitous ARP
  --no-ipv6              no IPv6 on the container interface: the kernel makes no
                         link-local address (no DAD, MLD or router solicitation);
                         IPv6 addresses are refused. (A veth's host end on a Linux
                         bridge never gets IPv6 addresses: a bridge port needs none.)
  --timeout S            with --wait: give up (exit 1) after S seconds
  -v, --verbose          say what is done
  -h, --help             this text
  --version              the version`;

export interface GlobalOptions {
  dryRun: boolean;
  converge: boolean;
  json: boolean;
  verbose: boolean;
  macvlanMode?: string;
  nodad: boolean;
  arp: boolean;
  ipv6: boolean;
  /** --batch: lines in flight (default: the bulk default). */
  concurrency?: number;
}

/** How the address argument asks for DHCP. */
export interface DhcpSpec {
  client: 'dhcp' | 'udhcpc' | 'dhclient' | 'dhcpcd';
  foreground: boolean;
  options: string[];
}

export type Command =
  | { kind: 'usage' }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'wait'; containerInterface: string; timeout?: number }
  | { kind: 'batch'; file: string; unplug: boolean; opts: GlobalOptions }
  | { kind: 'route' | 'rule' | 'tc'; guest: string; args: string[]; opts: GlobalOptions }
  | { kind: 'unplug'; guest: string; containerInterface: string; opts: GlobalOptions }
  | { kind: 'gc'; bridges: boolean; dockerState?: string; opts: GlobalOptions }
  | {
    kind: 'attach';
    opts: GlobalOptions;
    hostInterface: string;
    directPhys: boolean;
    containerInterface?: string;
    localName?: string;
    family?: 4 | 6;
    guest: string;
    addresses: string[];
    gateway?: string;
    dhcp?: DhcpSpec;
    mac?: string;
    vlan?: string;
  };

function positive(name: string, t: string): number {
  if (!/^[1-9]\d{0,5}$/.test(t)) throw new PipeworkError(`Invalid ${name}: ${t} (a whole number from 1)`);
  return Number(t);
}

function seconds(t: string): number {
  if (!/^\d+(\.\d+)?$/.test(t)) throw new PipeworkError(`Invalid --timeout: ${t} (seconds)`);
  return Number(t);
}

/** The original's options after the host interface: only there, and only in this order. */
const POSITIONAL_FLAGS = ['-i', '-l', '-a'];
const FLAG_ORDER = 'Options after the host interface go in this order: -i, -l, -a ' +
  '(pipework <hostinterface> [-i containerinterface] [-l localinterfacename] [-a addressfamily] <guest> ...)';

const DHCP_CLIENTS = /^(dhcp|udhcpc|udhcpc-f|dhclient|dhclient-f|dhcpcd)(:(.*))?$/s;

function dhcpSpec(text: string): DhcpSpec | undefined {
  const m = DHCP_CLIENTS.exec(text);
  if (!m) return undefined;
  const foreground = m[1].endsWith('-f');
  const client = m[1].replace(/-f$/, '') as DhcpSpec['client'];
  const options = m[3] ? m[3].split(/\s+/).filter(Boolean) : [];
  return { client, foreground, options };
}

/** The options when none is given. */
export const defaultOptions = (): GlobalOptions => ({ dryRun: false, converge: false, json: false, verbose: false, nodad: false, arp: true, ipv6: true });

/**
 * argv -> command, with the original's strictly positional grammar:
 * `[--direct-phys] HOSTIF [-i CIF] [-l LOCAL] [-a 4|6] GUEST IP[@GW] [MAC][@VLAN]`.
 * Our own options come first; anything unknown starting with `--` is refused.
 */
export function parseArgs(argv: string[]): Command {
  const opts = defaultOptions();
  let directPhys = false;
  let wait = false;
  let timeout: number | undefined;
  let batch: string | undefined;
  let i = 0;
  const value = (name: string) => {
    if (i + 1 >= argv.length) throw new PipeworkError(`${name} needs a value.`);
    return argv[++i];
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dry-run') opts.dryRun = true;
    else if (a === '--converge') opts.converge = true;
    else if (a === '--json') opts.json = true;
    else if (a === '-v' || a === '--verbose') opts.verbose = true;
    else if (a === '--nodad') opts.nodad = true;
    else if (a === '--no-arp') opts.arp = false;
    else if (a === '--no-ipv6') opts.ipv6 = false;
    else if (a === '--macvlan-mode') opts.macvlanMode = value(a);
    else if (a === '--direct-phys') directPhys = true;
    else if (a === '--wait') wait = true;
    else if (a === '--batch') batch = value(a);
    else if (a === '--timeout') timeout = seconds(value(a));
    else if (a === '--concurrency') opts.concurrency = positive(a, value(a));
    else if (a === '-h' || a === '--help') return { kind: 'help' };
    else if (a === '--version') return { kind: 'version' };
    else if (wait && a === '-i') break;
    else if (POSITIONAL_FLAGS.includes(a)) throw new PipeworkError(FLAG_ORDER);
    else if (a.startsWith('-') && a !== '-') throw new PipeworkError(`Unknown option: ${a} (see pipework --help)`);
    else break;
  }
  const rest = argv.slice(i);

  if (wait) {
    let cif = 'eth1';
    for (let k = 0; k < rest.length; k += 2) {
      if (rest[k + 1] === undefined) throw new PipeworkError(`${rest[k]} needs a value.`);
      if (rest[k] === '-i') cif = rest[k + 1];
      else if (rest[k] === '--timeout') timeout = seconds(rest[k + 1]);
      else throw new PipeworkError(`Unexpected argument after --wait: ${rest[k]}`);
    }
    return { kind: 'wait', containerInterface: cif, timeout };
  }
  if (batch !== undefined) {
    if (rest.length > 1 || (rest.length === 1 && rest[0] !== 'unplug')) throw new PipeworkError(`Unexpected argument with --batch: ${rest[0]}`);
    return { kind: 'batch', file: batch, unplug: rest[0] === 'unplug', opts };
  }
  if (rest[0] === 'gc') {
    let bridges = false;
    let dockerState: string | undefined;
    const gcArgs = rest.slice(1);
    for (let k = 0; k < gcArgs.length; k++) {
      const a = gcArgs[k];
      if (a === '--bridges') bridges = true;
      else if (a === '--dry-run') opts.dryRun = true;
      else if (a === '--json') opts.json = true;
      else if (a === '-v' || a === '--verbose') opts.verbose = true;
      else if (a === '--docker-state') {
        if (!gcArgs[k + 1]) throw new PipeworkError('--docker-state needs a value.');
        dockerState = gcArgs[++k];
      } else throw new PipeworkError(`Unexpected argument with gc: ${a} (pipework gc [--dry-run] [--bridges] [--docker-state FILE])`);
    }
    return { kind: 'gc', bridges, dockerState, opts };
  }
  if (rest[0] === 'unplug' && rest[1] === '--batch') {
    if (rest[2] === undefined) throw new PipeworkError('--batch needs a value.');
    if (rest.length > 3) throw new PipeworkError(`Unexpected argument with --batch: ${rest[3]}`);
    return { kind: 'batch', file: rest[2], unplug: true, opts };
  }
  if (rest[0] === 'unplug') {
    const guest = rest[1];
    if (!guest) return { kind: 'usage' };
    let cif = 'eth1';
    if (rest[2] === '-i') {
      if (rest[3] === undefined) throw new PipeworkError('-i needs a value.');
      cif = rest[3];
      if (rest.length > 4) throw new PipeworkError(`Unexpected argument: ${rest[4]}`);
    } else if (rest.length > 2) throw new PipeworkError(`Unexpected argument: ${rest[2]}`);
    return { kind: 'unplug', guest, containerInterface: cif, opts };
  }

  let hostInterface = rest[0];
  if (hostInterface === undefined) return { kind: 'usage' };
  if (/^(route|rule|tc)$/.test(hostInterface)) {
    if (!rest[1] || rest.length < 3) return { kind: 'usage' };
    return { kind: hostInterface as 'route' | 'rule' | 'tc', guest: rest[1], args: rest.slice(2), opts };
  }
  let p = 1;
  const flag = (name: string) => {
    if (rest[p] !== name) return undefined;
    if (rest[p + 1] === undefined) throw new PipeworkError(`${name} needs a value.`);
    p += 2;
    return rest[p - 1];
  };
  const containerInterface = flag('-i');
  const localName = flag('-l');
  const familyText = flag('-a');
  if (familyText !== undefined && familyText !== '4' && familyText !== '6')
    throw new PipeworkError(`Invalid address family: -a ${familyText} (4 or 6)`);
  const [guest, ipArg, macArg, ...extra] = rest.slice(p);
  if (guest !== undefined && POSITIONAL_FLAGS.includes(guest)) throw new PipeworkError(FLAG_ORDER);
  if (guest !== undefined && guest.startsWith('-')) throw new PipeworkError(`Unknown option: ${guest} (see pipework --help)`);
  if (guest === undefined || ipArg === undefined) return { kind: 'usage' };
  if (extra.length) throw new PipeworkError(`Unexpected argument: ${extra[0]}`);

  let mac: string | undefined;
  let vlan: string | undefined;
  if (macArg !== undefined) {
    const at = macArg.indexOf('@');
    mac = at < 0 ? macArg : macArg.slice(0, at) || undefined;
    vlan = at < 0 ? undefined : macArg.slice(at + 1).split('@')[0];
  }
  const dhcp = dhcpSpec(ipArg);
  let addresses: string[] = [];
  let gateway: string | undefined;
  if (!dhcp) {
    const [addr, gw] = ipArg.split('@');
    addresses = [addr];
    gateway = gw || undefined;
  }
  const family = familyText === undefined ? undefined : (Number(familyText) as 4 | 6);
  return {
    kind: 'attach', opts, hostInterface, directPhys, containerInterface, localName, family, guest, addresses, gateway, dhcp, mac, vlan,
  };
}
