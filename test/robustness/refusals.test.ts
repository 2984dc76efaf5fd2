// The kernel refuses after partial progress: rolled back, state unchanged,
// a message naming the cause.
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Session } from '../../src/index';
import { ip, netnsSet, snapshot } from '../helpers/kernel';

let ns: ReturnType<typeof netnsSet>;
let host: number;
let guest: number;
let session: Session;

beforeEach(() => {
  ns = netnsSet(2);
  [host, guest] = ns.fds;
  session = new Session({ hostNetns: host });
});
afterEach(() => {
  session.close();
  ns.close();
});

async function refused(request: Parameters<Session['attach']>[1], message: RegExp | string) {
  const before = { host: snapshot(host), guest: snapshot(guest) };
  const err = await session.attach({ fd: guest }, request).catch((e) => e);
  expect(err).toBeInstanceOf(Error);
  expect(err.message).toMatch(message);
  expect({ host: snapshot(host), guest: snapshot(guest) }).toEqual(before);
}

it('the container interface name already exists in the guest', async () => {
  ip(guest, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'other');
  ip(host, 'link', 'add', 'br0', 'type', 'bridge');
  await refused({ hostInterface: 'br0', addresses: ['10.0.0.2/24'] }, /^RTM_NEWLINK veth1pl\S+: File exists/);
});

it('the address is already there (given twice): the link made before it goes too', async () => {
  // A bridge with a port of its own: an empty one would change its MAC as ours comes and goes.
  ip(host, 'link', 'add', 'br0', 'type', 'bridge');
  ip(host, 'link', 'add', 'uplink', 'master', 'br0', 'type', 'veth', 'peer', 'name', 'uplinkp');
  await refused({ hostInterface: 'br0', addresses: ['10.0.0.2/24', '10.0.0.2/24'] }, /^RTM_NEWADDR eth1: File exists/);
});

it('a macvlan on a bridge port (EBUSY)', async () => {
  ip(host, 'link', 'add', 'br0', 'type', 'bridge');
  ip(host, 'link', 'add', 'port0', 'master', 'br0', 'up', 'type', 'veth', 'peer', 'name', 'port0p');
  ip(host, 'link', 'set', 'port0p', 'up');
  await refused({ hostInterface: 'port0', addresses: ['10.0.0.2/24'] }, /^RTM_NEWLINK eth1: Device or resource busy/);
});

it('a bridge already at its 1023 ports (EXFULL)', async () => {
  ip(host, 'link', 'add', 'br0', 'type', 'bridge');
  const lines = Array.from({ length: 1023 }, (_, i) => `link add p${i} master br0 type veth peer name q${i}`).join('\n');
  const dir = mkdtempSync(path.join(tmpdir(), 'pipework-full-'));
  try {
    writeFileSync(path.join(dir, 'batch'), `${lines}\n`);
    ip(host, '-batch', path.join(dir, 'batch'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await refused({ hostInterface: 'br0', addresses: ['10.0.0.2/24'] }, 'The bridge is full: Linux bridges hold at most 1023 ports');
}, 60_000);

it('a netns fd that is no longer open, or is not a netns', async () => {
  await expect(session.attach({ fd: 987 }, { hostInterface: 'br0' })).rejects.toThrow('netns fd 987 is not open.');
  const file = openSync('/proc/self/status', 'r');
  try {
    await expect(session.attach({ fd: file }, { hostInterface: 'br0' })).rejects.toThrow(`fd ${file} is not a network namespace.`);
  } finally {
    closeSync(file);
  }
});

it('a guest that exits half-way leaves nothing: its netns goes, and the veth pair with it', async () => {
  ip(host, 'link', 'add', 'br0', 'type', 'bridge');
  const lone = netnsSet(1);
  await session.attach({ fd: lone.fds[0] }, { hostInterface: 'br0', addresses: ['10.0.0.2/24'] });
  expect(snapshot(host).links.map((l: { ifname: string }) => l.ifname)).toHaveLength(3);
  lone.close(); // the last holder of that netns: the kernel destroys it and its links
  for (let i = 0; i < 100 && snapshot(host).links.length > 2; i++) await new Promise((r) => setTimeout(r, 20));
  expect(snapshot(host).links.map((l: { ifname: string }) => l.ifname).sort()).toEqual(['br0', 'lo']);
});
