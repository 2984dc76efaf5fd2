import { closeSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { native } from '../native';
import { NetlinkError } from '../netlink/error';
import { linkKind } from '../netlink/kinds';
import { type Link, deleteLink, dumpLinks, parseLink } from '../netlink/link';
import { PipeworkError } from '../errors';
import { readVlanUsers, withVlanUsersLock } from './vlan-users';
import { getNsid, parseNsid } from '../netlink/netns';
import { RtnlSocket } from '../netlink/socket';
import type { GcObserved, GcStep } from '../plan/gc';
import { vlanUsers } from '../plan/steps';
import { ovsRunning, runProgram } from '../run';
import { allDhcpClients } from './dhcp-records';
import type { NetnsPair } from './context';

type HostPair = Pick<NetnsPair, 'host' | 'hostFd'>;

const ASIDE = /^pwold\d+$/;

/** Reads what planGc judges: the host's links, pipework's OVS ports, the recorded DHCP clients. */
export async function observeGc(ns: HostPair): Promise<GcObserved> {
  const hostLinks = (await ns.host.request(dumpLinks())).map(parseLink);
  const ours = hostLinks.filter((l) => l.alias?.startsWith('pipework:') || ASIDE.test(l.name));
  const vlans = ours.filter((l) => l.kind === 'vlan' && vlanUsers(l.alias) !== undefined);
  const users = vlans.length ? await linksOnLowers(ns, hostLinks, new Set(vlans.map((l) => l.index))) : new Map<number, number>();
  const links = ours.map((l) => ({
    link: { name: l.name, index: l.index }, alias: l.alias, kind: l.kind, up: l.up,
    ports: hostLinks.filter((p) => p.master === l.index).length, macvlansOnIt: users.get(l.index) ?? 0,
  }));
  const names = new Set(hostLinks.map((l) => l.name));
  const ovsPorts = ovsRunning() ? (await pipeworkOvsPorts()).map((p) => ({ ...p, linkExists: names.has(p.port) })) : [];
  const { dhcpClientRunning, dhcpNetnsInUse }: typeof import('./dhcp-stop') = require('./dhcp-stop');
  const dhcpClients = allDhcpClients().map(({ record, state }) => ({
    record, guest: state.hostname, ifname: state.ifname, running: dhcpClientRunning(record), netnsInUse: dhcpNetnsInUse(record),
  }));
  return { ovsPorts, links, dhcpClients };
}

/** Runs each step on its own: one that fails is reported and the others go on. */
export async function executeGc(steps: GcStep[], ns: HostPair): Promise<{ done: GcStep[]; failed: { step: GcStep; error: Error }[] }> {
  const done: GcStep[] = [];
  const failed: { step: GcStep; error: Error }[] = [];
  for (const step of steps) {
    try {
      switch (step.op) {
        case 'ovs-del-port':
          await runProgram('ovs-vsctl', ['--if-exists', 'del-port', step.bridge, step.port]);
          break;
        case 'delete-vlan':
          // Judged again holding the count's lock: an attach between counting itself and making its macvlan holds it.
          await withVlanUsersLock(ns.hostFd, step.link.index, undefined, async () => {
            if ((await readVlanUsers(ns.host, step.link.index)) === undefined) throw new PipeworkError(`${step.link.name} is no longer a VLAN link pipework counts users of: left alone`);
            const hostLinks = (await ns.host.request(dumpLinks())).map(parseLink);
            if ((await linksOnLowers(ns, hostLinks, new Set([step.link.index]))).get(step.link.index)) throw new PipeworkError(`${step.link.name} has a user again: left alone`);
            await ns.host.request(deleteLink(step.link.index, step.link.name));
          });
          break;
        case 'delete-bridge':
        case 'delete-aside':
          await ns.host.request(deleteLink(step.link.index, step.link.name));
          break;
        case 'stop-dhcp': {
          const { stopDhcpClient }: typeof import('./dhcp-stop') = require('./dhcp-stop');
          await stopDhcpClient(step.record);
          break;
        }
      }
      done.push(step);
    } catch (e) {
      failed.push({ step, error: e as Error });
    }
  }
  return { done, failed };
}

/** The OVS ports pipework added (external-ids pipework.interface or pipework.endpoint), with their bridges. */
async function pipeworkOvsPorts(): Promise<{ bridge: string; port: string }[]> {
  const { stdout } = await runProgram('ovs-vsctl', ['--format=json', '--columns=name,external_ids', 'list', 'Interface']);
  const rows: [string, [string, [string, string][]]][] = JSON.parse(stdout).data;
  const ports = rows.filter(([, [, ids]]) => ids.some(([k]) => k === 'pipework.interface' || k === 'pipework.endpoint')).map(([name]) => name);
  const found: { bridge: string; port: string }[] = [];
  for (const port of ports) {
    const { stdout: bridge } = await runProgram('ovs-vsctl', ['port-to-br', port]).catch(() => ({ stdout: '' }));
    if (bridge.trim()) found.push({ bridge: bridge.trim(), port });
  }
  return found;
}

/**
 * How many macvlan/ipvlan links sit on each of the lower links (host
 * ifindexes), in the host and in every netns a process or /run/netns holds:
 * a VLAN link's users live in containers, out of the host's sight.
 */
export async function linksOnLowers(ns: HostPair, hostLinks: Link[], lowers: Set<number>): Promise<Map<number, number>> {
  const count = new Map<number, number>();
  const add = (l: Link) => {
    if (l.parent !== undefined && lowers.has(l.parent) && linkKind(l.kind)?.sharesLower) count.set(l.parent, (count.get(l.parent) ?? 0) + 1);
  };
  hostLinks.filter((l) => l.linkNetnsid === undefined).forEach(add);
  const hostIno = native.netnsInode(ns.hostFd);
  for (const path of netnsPaths(hostIno)) {
    let fd: number;
    try {
      fd = native.openNetnsPath(path);
    } catch {
      continue; // gone meanwhile
    }
    let sock: RtnlSocket | undefined;
    try {
      sock = RtnlSocket.open(fd);
      const [nsid] = await sock.send([getNsid(ns.hostFd)]);
      const hostId = nsid.error ? undefined : parseNsid(nsid.replies[0]);
      if (hostId === undefined) continue; // no link there points at the host
      (await sock.request(dumpLinks())).map(parseLink).filter((l) => l.linkNetnsid === hostId).forEach(add);
    } catch (e) {
      if (!(e instanceof NetlinkError)) throw e;
    } finally {
      sock?.close();
      closeSync(fd);
    }
  }
  return count;
}

/**
 * One path per network namespace other than the host's: every netns file
 * mounted anywhere (`ip netns`, Docker's sandboxes), those of processes, and
 * those processes hold open by fd.
 */
function netnsPaths(hostIno: number): string[] {
  const seen = new Set<number>([hostIno]);
  const paths: string[] = [];
  const consider = (path: string) => {
    try {
      const ino = statSync(path).ino;
      if (!seen.has(ino)) {
        seen.add(ino);
        paths.push(path);
      }
    } catch { /* gone meanwhile, or not ours to read */ }
  };
  const list = (dir: string) => {
    try { return readdirSync(dir); } catch { return []; }
  };
  let mounts = '';
  try { mounts = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { /* no procfs */ }
  for (const line of mounts.split('\n')) {
    const [fields, after] = line.split(' - ');
    if (after?.startsWith('nsfs ')) consider(fields.split(' ')[4].replace(/\\(\d{3})/g, (_m, o) => String.fromCharCode(parseInt(o, 8))));
  }
  for (const pid of list('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    consider(`/proc/${pid}/ns/net`);
    for (const fd of list(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('net:[')) consider(`/proc/${pid}/fd/${fd}`);
      } catch { /* closed meanwhile */ }
    }
  }
  return paths;
}
