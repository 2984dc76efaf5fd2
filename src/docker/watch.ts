/**
 * `pipework watch [--cleanup]`: follows Docker's container events and plumbs
 * each container that starts as its labels (`pipework`, `pipework.<n>`) and
 * `pipework_cmd*` environment variables ask (see ./commands.ts), in this
 * process, through one long-lived Session. Containers already running when
 * it connects are handled too, and it reconnects (with back-off) when Docker
 * goes away, catching up on what changed meanwhile.
 *
 * One log line per action: `<time> <container> <command>: ok|<error>`.
 *
 * --cleanup: when a container dies, what was plumbed into it is unplugged
 * (OVS ports, VLAN links pipework made). The container's netns is gone by
 * then, so the watcher holds each plumbed container's netns open by fd from
 * the start: at `die` the interfaces are still there to unplug, and the fd is
 * closed right after.
 */
import { PipeworkError } from '../errors';
import type { Session } from '../session';
import type { Guest } from '../guest';
import type { Command } from '../cli/args';
import { dockerApi, dockerSocket } from '../guest/docker';
import { type ContainerInfo, containerCommands, showWords } from './commands';
import { type DockerEvent, type EventStream, openEvents } from './events';
import { FirstAlone, Sequencer } from '../bulk/order';
import { optionsOrExit, readOptions } from '../cli/options';
import type { Out } from '../run/out';

export const USAGE = `Usage: pipework watch [--cleanup]
Follows Docker's events; each container that starts (and each one running
already) gets the pipework commands of its labels and environment:
  --label pipework="br1 192.168.1.5/24@192.168.1.1"        (the arguments without the guest)
  --label pipework.1="route add 10.9.0.0/16 via 192.168.1.254"
  -e pipework_cmd="br1 -i eth1 @CONTAINER_NAME@ 192.168.1.5/24"   (dreamcat4/pipework's form)
  --cleanup   unplug what was plumbed when the container dies
Docker is reached on DOCKER_HOST (unix://PATH) or /var/run/docker.sock.`;

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/** What the watcher did to a running container. */
interface Tracked {
  id: string;
  name: string;
  startedAt: string;
  pid: number;
  /** The container's netns, held open (--cleanup) so that it can be unplugged after it died. */
  guest?: Guest;
  /** Container interfaces plumbed into it, in order. */
  plumbed: string[];
}

const ATTACHING = new Set(['attach', 'route', 'rule', 'tc']);

export class Watcher {
  private readonly tracked = new Map<string, Tracked>();
  /** Per container: its start, then its die, in event order. */
  private readonly inOrder = new Sequencer();
  /** Per host interface: the first attach runs alone (it may create the bridge). */
  private readonly firstAttach = new FirstAlone();
  private stream?: EventStream;
  private stopped = false;
  private wake?: () => void;

  constructor(private readonly session: Session, private readonly opts: { cleanup: boolean }, private readonly log: (line: string) => void) {}

  private say(who: string, what: string): void {
    this.log(`${new Date().toISOString()} ${who} ${what.replace(/\s*\n\s*/g, ' ')}`);
  }

  /** Runs until stop(): connect, catch up, follow; on loss, back off and again. */
  async run(): Promise<void> {
    let delay = FIRST_RETRY_MS;
    let lastProblem = '';
    let connections = 0;
    while (!this.stopped) {
      let stream: EventStream;
      try {
        stream = await openEvents({ type: ['container'], event: ['start', 'die'] }, (e) => this.onEvent(e));
      } catch (e) {
        const problem = `cannot reach Docker at ${dockerSocket()}: ${(e as Error).message}`;
        if (problem !== lastProblem) this.say('docker', `${problem}; retrying`);
        lastProblem = problem;
        await this.pause(delay);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
        continue;
      }
      if (this.stopped) {
        stream.close();
        break;
      }
      this.stream = stream;
      lastProblem = '';
      delay = FIRST_RETRY_MS;
      this.say('docker', `${connections++ ? 'connected again' : 'connected'} to ${dockerSocket()}`);
      // Subscribed first, then listed: nothing that happens in between is missed.
      this.catchUp().catch((e) => this.say('docker', `listing containers: ${(e as Error).message}`));
      const why = await stream.done;
      this.stream = undefined;
      if (this.stopped) break;
      this.say('docker', `lost the event stream (${why}); reconnecting`);
      await this.pause(delay);
    }
    await this.idle();
    for (const t of this.tracked.values()) t.guest?.close();
    this.tracked.clear();
  }

  stop(): void {
    this.stopped = true;
    this.stream?.close();
    this.wake?.();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() { clearTimeout(timer); resolve(); }
      this.wake = done;
    });
  }

  /** Work on one container runs after its earlier work (start, then die, in event order). */
  private queue(id: string, work: () => Promise<void>): void {
    // What fails here is Docker going away mid-way (the catch-up after reconnecting redoes it) or a bug.
    // Stopping: work not started yet is left for the next watcher's catch-up.
    this.inOrder.run(id, () => (this.stopped ? Promise.resolve() : work())).catch((e) => this.say(id.slice(0, 12), `${(e as Error)?.message ?? e}`));
  }

  /** Resolves when no container work is queued. */
  idle(): Promise<void> {
    return this.inOrder.idle();
  }

  private onEvent(e: DockerEvent): void {
    const id = e.Actor?.ID ?? e.id;
    const action = e.Action ?? e.status;
    if (!id || (e.Type ?? 'container') !== 'container') return;
    if (action === 'start') this.queue(id, () => this.started(id));
    else if (action === 'die') this.queue(id, () => this.died(id));
  }

  /** After (re)connecting: every running container, and those that went away meanwhile. */
  private async catchUp(): Promise<void> {
    const res = await dockerApi('GET', '/containers/json');
    if (res.status !== 200 || !Array.isArray(res.body)) throw new Error(`Docker answered ${res.status}: ${res.body?.message ?? res.body}`);
    const running = new Set<string>(res.body.map((c: { Id: string }) => c.Id));
    for (const id of running) this.queue(id, () => this.started(id));
    for (const id of this.tracked.keys()) if (!running.has(id)) this.queue(id, () => this.died(id));
  }

  private async started(id: string): Promise<void> {
    const res = await dockerApi('GET', `/containers/${encodeURIComponent(id)}/json`);
    if (res.status === 404) return;
    if (res.status !== 200) {
      this.say(id.slice(0, 12), `inspect: Docker answered ${res.status}: ${res.body?.message ?? res.body}`);
      return;
    }
    const info = res.body as ContainerInfo;
    const pid = Number(info.State?.Pid ?? 0);
    if (!info.State?.Running || pid <= 0) return;
    const startedAt = info.State.StartedAt ?? '';
    const known = this.tracked.get(id);
    if (known?.startedAt === startedAt) return; // seen already (event and listing both)
    if (known) await this.died(id); // it restarted while we were away
    const name = (info.Name ?? '').replace(/^\//, '') || id.slice(0, 12);
    const entry: Tracked = { id, name, startedAt, pid, plumbed: [] };
    this.tracked.set(id, entry);
    const commands = containerCommands(info);
    if (!commands.length) return;

    const { parseArgs }: typeof import('../cli/args') = require('../cli/args');
    const ours = (guest: string) => guest === id || guest === name || (guest.length >= 12 && id.startsWith(guest));
    const parsed = commands.map((c) => {
      if (c.error) return { c, error: c.error };
      try {
        const cmd = parseArgs(c.words);
        if (!ATTACHING.has(cmd.kind)) throw new PipeworkError(cmd.kind === 'usage' ? 'not a pipework command (too few arguments)' : `${cmd.kind} cannot be used here`);
        return { c, cmd };
      } catch (e) {
        return { c, error: (e as Error).message };
      }
    });
    const attachesHere = parsed.some((p) => p.cmd?.kind === 'attach' && ours(p.cmd.guest));
    if (this.opts.cleanup && attachesHere) {
      try {
        const { openGuest }: typeof import('../guest') = require('../guest');
        entry.guest = { ...openGuest(pid), label: name };
      } catch (e) {
        this.say(name, `cannot hold its network namespace for --cleanup: ${(e as Error).message}`);
      }
    }
    let adopted = false;
    for (const { c, cmd, error } of parsed) {
      if (error !== undefined || !cmd) {
        this.say(name, `${c.source}: ${error}`);
        continue;
      }
      const line = showWords(c.words);
      const here = 'guest' in cmd && ours(cmd.guest);
      if (cmd.kind === 'attach' && here) {
        const cif = cmd.containerInterface ?? 'eth1';
        if (await this.plumbedAlready(entry, cmd, cif)) {
          adopted = true;
          entry.plumbed.push(cif);
          this.say(name, `${line}: ${cif} is there already (plumbed before), skipped`);
          continue;
        }
      } else if (adopted && here) {
        this.say(name, `${line}: skipped (plumbed before)`);
        continue;
      }
      try {
        await this.runCommand(cmd, name);
        if (cmd.kind === 'attach' && here) entry.plumbed.push(cmd.containerInterface ?? 'eth1');
        this.say(name, `${line}: ok`);
      } catch (e) {
        const { describeError }: typeof import('../cli/commands') = require('../cli/commands');
        this.say(name, `${line}: ${describeError(e)}`);
      }
    }
    if (!entry.plumbed.length) {
      entry.guest?.close();
      entry.guest = undefined;
    }
  }

  /** One command through the CLI's own runOne; the first attach to a host interface runs alone (it may create the bridge). */
  private async runCommand(cmd: Command, name: string): Promise<void> {
    const { runOne }: typeof import('../cli/commands') = require('../cli/commands');
    const io: Out = { out: (s) => this.say(name, s), err: (s) => this.say(name, s) };
    const work = async () => {
      const code = await runOne(this.session, cmd, io);
      if (code !== 0) throw new PipeworkError(`exit status ${code}`);
    };
    return cmd.kind === 'attach' ? this.firstAttach.run(cmd.hostInterface, work) : work();
  }

  /**
   * True when the container already has `cif` as a veth whose host end has
   * the name this attach would give it: plumbed by an earlier watcher (or
   * pipework run) before we came. Anything else there is not ours to adopt.
   */
  private async plumbedAlready(entry: Tracked, cmd: Extract<Command, { kind: 'attach' }>, cif: string): Promise<boolean> {
    const { openGuest }: typeof import('../guest') = require('../guest');
    const { RtnlSocket }: typeof import('../netlink/socket') = require('../netlink/socket');
    const { findLink }: typeof import('../netlink/link') = require('../netlink/link');
    const { vethHostName }: typeof import('../plan/names') = require('../plan/names');
    let guest: Guest | undefined;
    let sock: import('../netlink/socket').RtnlSocket | undefined;
    let host: import('../netlink/socket').RtnlSocket | undefined;
    try {
      guest = entry.guest ?? openGuest(entry.pid);
      sock = RtnlSocket.open(guest.fd);
      const link = await findLink(sock, cif);
      if (link?.kind !== 'veth' || !link.parent) return false;
      host = RtnlSocket.open();
      const peer = await findLink(host, link.parent);
      return peer?.name === (cmd.localName ?? vethHostName(cif, String(entry.pid)));
    } catch {
      return false; // unreadable: run the command and let it say
    } finally {
      sock?.close();
      host?.close();
      if (guest && guest !== entry.guest) guest.close();
    }
  }

  private async died(id: string): Promise<void> {
    const entry = this.tracked.get(id);
    if (!entry) return;
    this.tracked.delete(id);
    try {
      if (!this.opts.cleanup || !entry.guest) return;
      for (const cif of [...entry.plumbed].reverse()) {
        const line = `unplug ${id} -i ${cif}`;
        try {
          const r = await this.session.unplug(entry.guest, cif);
          this.say(entry.name, `${line}: ${r.action === 'absent' ? 'ok (gone already)' : 'ok'}`);
        } catch (e) {
          const { describeError }: typeof import('../cli/commands') = require('../cli/commands');
          this.say(entry.name, `${line}: ${describeError(e)}`);
        }
      }
    } finally {
      entry.guest?.close();
    }
  }
}

export async function main(argv: string[], io: Out): Promise<number> {
  const given = optionsOrExit(() => readOptions(argv, 'watch', { flags: { '--cleanup': 'cleanup' } }), USAGE, io);
  if (typeof given === 'number') return given;
  const cleanup = given.flags.has('cleanup');
  const host = process.env.DOCKER_HOST;
  if (host && !host.startsWith('unix://')) {
    io.err(`DOCKER_HOST=${host}: pipework watch talks to Docker on a unix socket only (unix://PATH)`);
    return 1;
  }
  const { Session }: typeof import('../session') = require('../session');
  const session = new Session();
  const watcher = new Watcher(session, { cleanup }, (line) => io.out(line));
  const { stopOnSignals }: typeof import('../cli/signals') = require('../cli/signals');
  const stopping = stopOnSignals((text) => io.out(`${new Date().toISOString()} ${text}`), {
    stopping: 'stopping: no new containers, finishing those in progress',
  });
  stopping.stop.addEventListener('abort', () => watcher.stop(), { once: true });
  try {
    await watcher.run();
  } finally {
    stopping.dispose();
    session.close();
  }
  return stopping.exitStatus();
}
