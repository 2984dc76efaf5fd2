// Many containers in one call: results per item, a bad item rolled back
// alone, the bridge port limit said up front, teardown by device group.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AttachAborted, type BulkResult, Session } from '../../src/index';
import { GroupDeleter } from '../../src/bulk';
import { type LinkJson, ip, ipj, links, netnsSet, nsPath, snapshot, withoutKernelNoise } from '../helpers/kernel';

let ns: ReturnType<typeof netnsSet>;
let session: Session;

afterEach(() => {
  session.close();
  ns.close();
});

async function collect<T>(gen: AsyncGenerator<BulkResult<T>>): Promise<BulkResult<T>[]> {
  const out: BulkResult<T>[] = [];
  for await (const r of gen) out.push(r);
  return out;
}

describe('attachMany / detachMany', () => {
  const N = 60;
  beforeEach(() => {
    ns = netnsSet(N + 1);
    session = new Session({ hostNetns: ns.fds[0] });
  });

  it('attaches every item, reports the bad one alone, and tears all down by group', async () => {
    const [host, ...guests] = ns.fds;
    const items = guests.map((fd, i) => ({
      guest: { fd },
      request: { hostInterface: `br${i % 2}`, addresses: [i === 7 ? '10.0.0.300/16' : `10.${i % 2}.0.${i + 2}/16`], gateway: `10.${i % 2}.255.254` },
    }));
    const progress: [number, number][] = [];
    const results = await collect(session.attachMany(items, { concurrency: 16, onProgress: (d, f) => progress.push([d, f]) }));
    expect(results).toHaveLength(N);
    const failures = results.filter((r) => !r.ok);
    expect(failures).toEqual([expect.objectContaining({ index: 7, ok: false })]);
    expect((failures[0] as { error: Error }).error.message).toBe('Invalid IP address: 10.0.0.300');
    expect(progress.at(-1)).toEqual([N - 1, 1]);

    expect(ipj<any[]>(host, 'link', 'show', 'master', 'br0')).toHaveLength(N / 2);
    expect(ipj<any[]>(host, 'link', 'show', 'master', 'br1')).toHaveLength(N / 2 - 1);
    for (const i of [0, 1, 33, N - 1]) {
      const addr = ipj<any[]>(guests[i], '-4', 'addr', 'show', 'dev', 'eth1')[0].addr_info[0];
      expect(addr).toMatchObject({ local: `10.${i % 2}.0.${i + 2}`, prefixlen: 16 });
      expect(ipj<any[]>(guests[i], 'route', 'show', 'default')[0]).toMatchObject({ gateway: `10.${i % 2}.255.254` });
    }
    expect(links(guests[7]).map((l) => l.ifname)).toEqual(['lo']);

    const down = await collect(session.detachMany(guests.map((fd) => ({ guest: { fd } })), { concurrency: 16 }));
    expect(down.filter((r) => r.ok)).toHaveLength(N);
    expect(down.filter((r) => r.ok && r.result.action === 'absent').map((r) => r.index)).toEqual([7]);
    expect(links(host).map((l) => l.ifname).sort()).toEqual(['br0', 'br1', 'lo']);
    for (const fd of guests) expect(links(fd).map((l) => l.ifname)).toEqual(['lo']);
  });
});

describe('attachMany with converge', () => {
  beforeEach(() => {
    ns = netnsSet(9);
    session = new Session({ hostNetns: ns.fds[0] });
  });

  it('completes half-made items, leaves complete ones unchanged, creates the rest, and refuses another attachment', async () => {
    const [host, ...guests] = ns.fds;
    const request = (i: number) => ({ hostInterface: 'br0', hostName: `vc${i}`, addresses: [`10.5.0.${i + 2}/24`], gateway: '10.5.0.1' });
    ip(host, 'link', 'add', 'br0', 'up', 'type', 'bridge');
    // 0-1 complete; 2-3 half-made (veth only, down); 4: eth1 is a veth on another bridge; 5-7 nothing yet.
    for (const i of [0, 1]) await session.attach({ fd: guests[i] }, request(i));
    ip(host, 'link', 'add', 'br9', 'up', 'type', 'bridge');
    for (const [i, master] of [[2, 'br0'], [3, 'br0'], [4, 'br9']] as const) {
      ip(host, 'link', 'add', `vc${i}`, 'master', master, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', nsPath(guests[i]));
    }
    const complete = [0, 1].map((i) => withoutKernelNoise(snapshot(guests[i])));
    const items = guests.map((fd, i) => ({ guest: { fd }, request: request(i) }));
    const results = await collect(session.attachMany(items, { concurrency: 4, converge: true }));
    const status = Object.fromEntries(results.map((r) => [r.index, r.ok ? r.result.status : r.error.message]));
    expect(status).toEqual({
      0: 'unchanged', 1: 'unchanged', 2: 'repaired', 3: 'repaired', 5: 'created', 6: 'created', 7: 'created',
      4: 'eth1 exists but is not the attachment asked for: eth1 in the container is a veth link whose host end vc4 is not on bridge br0.',
    });
    expect([0, 1].map((i) => withoutKernelNoise(snapshot(guests[i])))).toEqual(complete);
    for (const i of [2, 3, 5, 6, 7]) {
      expect(ipj<any[]>(guests[i], '-4', 'addr', 'show', 'dev', 'eth1')[0].addr_info[0]).toMatchObject({ local: `10.5.0.${i + 2}`, prefixlen: 24 });
      expect(ipj<any[]>(guests[i], 'route', 'show', 'default')[0]).toMatchObject({ gateway: '10.5.0.1', dev: 'eth1' });
    }
    expect(ipj<any[]>(guests[4], '-4', 'addr', 'show', 'dev', 'eth1')).toEqual([]);
  });
});

describe('attachMany after the first item: the bridge looked up once', () => {
  beforeEach(() => {
    ns = netnsSet(5);
    session = new Session({ hostNetns: ns.fds[0] });
  });

  it('a veth host name taken by a link that is down: replaced, as a single attach does; one that is up: that item refused alone', async () => {
    const [host, ...guests] = ns.fds;
    ip(host, 'link', 'add', 'br0', 'type', 'bridge');
    // Host-side names the items will want, taken beforehand (v<cif>pl<tag>; the tag of an fd guest is its netns inode).
    const { fstatSync } = await import('node:fs');
    const hostName = (fd: number) => `veth1pln${fstatSync(fd).ino - 0xf0000000}`;
    ip(host, 'link', 'add', hostName(guests[2]), 'type', 'veth', 'peer', 'name', 'old2');
    ip(host, 'link', 'add', hostName(guests[3]), 'up', 'type', 'veth', 'peer', 'name', 'old3');
    const items = guests.map((fd, i) => ({ guest: { fd }, request: { hostInterface: 'br0', addresses: [`10.7.0.${i + 2}/24`] } }));
    const results = await collect(session.attachMany(items, { concurrency: 4 }));
    expect(results.filter((r) => !r.ok).map((r) => [r.index, (r as { error: Error }).error.message]))
      .toEqual([[3, `Link ${hostName(guests[3])} exists and is up`]]);
    const ports = ipj<LinkJson[]>(host, 'link', 'show', 'master', 'br0').map((l) => l.ifname).sort();
    expect(ports).toEqual([0, 1, 2].map((i) => hostName(guests[i])).sort());
    expect(links(host).map((l) => l.ifname)).not.toContain('old2');
    expect(links(host).map((l) => l.ifname)).toContain('old3');
    for (const i of [0, 1, 2]) expect(ipj<any[]>(guests[i], '-4', 'addr', 'show', 'dev', 'eth1')[0].addr_info[0].local).toBe(`10.7.0.${i + 2}`);
    expect(links(guests[3]).map((l) => l.ifname)).toEqual(['lo']);
  });
});

describe('attachMany: an item that fails after the kernel made something', () => {
  const N = 12;
  beforeEach(() => {
    ns = netnsSet(N + 1);
    session = new Session({ hostNetns: ns.fds[0] });
  });

  it('is rolled back alone, in the first attach to a bridge and in the shortcut after it; its neighbours complete', async () => {
    const [host, ...guests] = ns.fds;
    ip(host, 'link', 'add', 'br0', 'type', 'bridge');
    ip(host, 'link', 'add', 'br1', 'type', 'bridge');
    // Even items on br0, odd on br1. Item 0 (br0's first) succeeds, so br0's others take the shortcut
    // (Session.attachOnto); item 1, br1's first, fails: br1's others are planned from a full look.
    const request = (i: number) => ({ hostInterface: `br${i % 2}`, addresses: [`10.${i % 2}.0.${i + 2}/24`], gateway: `10.${i % 2}.0.1` });
    const steps = (await session.plan({ fd: guests[0] }, request(0))).steps.map((st) => st.op);
    expect(steps).toEqual(['create-veth', 'add-address', 'guest-link-up', 'replace-default-route', 'port-carrier', 'arp-notify', 'announce', 'arp-notify']);
    const faults = new Map([[1, 5], [2, 1], [4, 3], [6, 4]]); // item -> step the fault is injected at
    const before = guests.map((fd) => snapshot(fd));
    const hostBefore = snapshot(host);
    const items = guests.map((fd, i) => ({
      guest: { fd }, request: request(i), options: faults.has(i) ? { failAtStep: faults.get(i) } : undefined,
    }));
    // A kernel refusal too, on the shortcut path: a broadcast address as gateway, after the veth, address and link-up.
    items[8].request.gateway = '10.0.0.255';
    const results = await collect(session.attachMany(items, { concurrency: 4 }));
    const failed = results.filter((r) => !r.ok).map((r) => r.index).sort((a, b) => a - b);
    expect(failed).toEqual([1, 2, 4, 6, 8]);
    for (const i of failed) expect(snapshot(guests[i]), `guest ${i}`).toEqual(before[i]);
    const ok = guests.map((_, i) => i).filter((i) => !failed.includes(i));
    for (const i of ok) {
      expect(ipj<any[]>(guests[i], '-4', 'addr', 'show', 'dev', 'eth1')[0].addr_info[0].local).toBe(`10.${i % 2}.0.${i + 2}`);
      expect(ipj<any[]>(guests[i], 'route', 'show', 'default')[0]).toMatchObject({ gateway: `10.${i % 2}.0.1`, dev: 'eth1' });
    }
    // The host: the bridges as they were, plus one up port per item that succeeded.
    for (const b of [0, 1]) {
      const ports = ipj<LinkJson[]>(host, 'link', 'show', 'master', `br${b}`);
      expect(ports.length).toBe(ok.filter((i) => i % 2 === b).length);
      expect(ports.filter((l) => !l.flags.includes('UP'))).toEqual([]);
    }
    expect(links(host).filter((l) => !l.master).map((l) => l.ifname)).toEqual(hostBefore.links.map((l: LinkJson) => l.ifname));
  });
});

describe('attachMany / detachMany: stopping', () => {
  const N = 40;
  beforeEach(() => {
    ns = netnsSet(N + 1);
    session = new Session({ hostNetns: ns.fds[0] });
  });
  const items = (guests: number[]) => guests.map((fd, i) => ({ guest: { fd }, request: { hostInterface: 'br0', addresses: [`10.9.0.${i + 2}/24`] } }));
  const state = (fd: number) => (links(fd).some((l) => l.ifname === 'eth1') ? 'attached' : 'untouched');

  it('signal aborted before the start: nothing starts, nothing changes', async () => {
    const [host, ...guests] = ns.fds;
    const before = snapshot(host);
    expect(await collect(session.attachMany(items(guests), { signal: AbortSignal.abort() }))).toEqual([]);
    expect(snapshot(host)).toEqual(before);
    expect(guests.map(state).filter((s) => s !== 'untouched')).toEqual([]);
  });

  it('signal aborted half-way: those started finish, the rest never start; detachMany stops the same way', async () => {
    const [host, ...guests] = ns.fds;
    const stop = new AbortController();
    const results = await collect(session.attachMany(items(guests), { concurrency: 4, signal: stop.signal, onProgress: (d) => { if (d === 10) stop.abort(); } }));
    // Started in input order: the first results.length items, each complete.
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(10);
    expect(results.length).toBeLessThan(N);
    expect(results.map((r) => r.index).sort((a, b) => a - b)).toEqual([...Array(results.length).keys()]);
    expect(guests.map(state)).toEqual(guests.map((_, i) => (i < results.length ? 'attached' : 'untouched')));
    expect(ipj<any[]>(host, 'link', 'show', 'master', 'br0')).toHaveLength(results.length);

    const undo = new AbortController();
    const down = await collect(session.detachMany(guests.map((fd) => ({ guest: { fd } })), { concurrency: 4, signal: undo.signal, onProgress: (d) => { if (d === 5) undo.abort(); } }));
    expect(down.filter((r) => !r.ok)).toEqual([]);
    expect(down.length).toBeLessThan(N);
    expect(guests.map(state)).toEqual(guests.map((_, i) => (i < results.length && i >= down.length ? 'attached' : 'untouched')));
  });

  it('an input that waits does not hold up the stop', async () => {
    const [, ...guests] = ns.fds;
    const stop = new AbortController();
    async function* slow() {
      yield items(guests)[0];
      stop.abort();
      await new Promise(() => {}); // never hands over another item
    }
    const results = await collect(session.attachMany(slow(), { signal: stop.signal }));
    expect(results.map((r) => r.ok)).toEqual([true]);
    expect(guests.map(state).slice(0, 2)).toEqual(['attached', 'untouched']);
  });

  it('abort (the attach option): the attaches in flight stop and roll back', async () => {
    const [host, ...guests] = ns.fds;
    ip(host, 'link', 'add', 'br0', 'type', 'bridge');
    // A port of its own: a bridge's MAC and STP id then stay whatever ports come and go.
    ip(host, 'link', 'add', 'up0', 'master', 'br0', 'type', 'veth', 'peer', 'name', 'up0p');
    const before = { host: snapshot(host), guests: guests.map((fd) => snapshot(fd)) };
    const results = await collect(session.attachMany(items(guests), { concurrency: 8, abort: AbortSignal.abort() }));
    expect(results).toHaveLength(N);
    for (const r of results) expect(!r.ok && r.error).toBeInstanceOf(AttachAborted);
    expect(snapshot(host)).toEqual(before.host);
    // Aborted once the veth exists (the attach asks before each step: first the veth, then the guest's batch).
    const abortedAfterFirstStep = () => {
      let asked = 0;
      return { get aborted() { return asked++ > 0; } } as AbortSignal;
    };
    const late = await collect(session.attachMany(items(guests).map((it) => ({ ...it, options: { abort: abortedAfterFirstStep() } })), { concurrency: 8 }));
    expect(late.filter((r) => !(!r.ok && r.error instanceof AttachAborted))).toEqual([]);
    expect({ host: snapshot(host), guests: guests.map((fd) => snapshot(fd)) }).toEqual(before);
  });
});

describe('detachMany: only a veth whose peer is in the host netns is grouped there', () => {
  beforeEach(() => {
    ns = netnsSet(3);
    session = new Session({ hostNetns: ns.fds[0] });
  });

  it('a veth peered into another netns is deleted on its own; the host link with the same index as that peer stays', async () => {
    const [host, guest, other] = ns.fds;
    ip(host, 'link', 'add', 'br0', 'type', 'bridge');
    // eth1 in the guest, its peer in a third netns, where it gets the index br0 has in the host.
    ip(other, 'link', 'add', 'peer0', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', nsPath(guest));
    const [peer] = ipj<LinkJson[]>(other, 'link', 'show', 'peer0');
    const [br0] = ipj<LinkJson[]>(host, 'link', 'show', 'br0');
    expect(peer.ifindex).toBe(br0.ifindex);
    const before = links(host);
    const down = await collect(session.detachMany([{ guest: { fd: guest } }]));
    expect(down).toEqual([{ index: 0, ok: true, result: { action: 'deleted', kind: 'veth' } }]);
    expect(links(host)).toEqual(before);
    expect(links(guest).map((l) => l.ifname)).toEqual(['lo']);
    expect(links(other).map((l) => l.ifname)).toEqual(['lo']);
  });
});

describe('bridge port limit', () => {
  const N = 1024;
  beforeEach(() => {
    ns = netnsSet(N + 1);
    session = new Session({ hostNetns: ns.fds[0] });
  });

  it('refuses the 1024th port on one bridge (the kernel takes 1023) with a message that says why', async () => {
    const [host, ...guests] = ns.fds;
    const items = guests.map((fd) => ({ guest: { fd }, request: { hostInterface: 'br0', addresses: ['0/0'] } }));
    const results = await collect(session.attachMany(items, { concurrency: 64 }));
    const failures = results.filter((r): r is Extract<BulkResult<unknown>, { ok: false }> => !r.ok);
    expect(failures.map((f) => f.error.message)).toEqual([
      'Bridge br0 is full: Linux bridges hold at most 1023 ports; spread the containers over several bridges.',
    ]);
    expect(ipj<any[]>(host, 'link', 'show', 'master', 'br0')).toHaveLength(1023);

    // Teardown by device group: every item done, nothing left.
    const down = await collect(session.detachMany(guests.map((fd) => ({ guest: { fd } })), { concurrency: 64 }));
    expect(down.filter((r) => !r.ok)).toEqual([]);
    expect(down.filter((r) => r.ok && r.result.action === 'deleted')).toHaveLength(1023);
    expect(links(host).map((l) => l.ifname).sort()).toEqual(['br0', 'lo']);
  }, 120_000);
});

describe('GroupDeleter', () => {
  beforeEach(() => {
    ns = netnsSet(1);
    session = new Session({ hostNetns: ns.fds[0] });
  });

  it('deletes the links of its group at once, with what was marked; nothing marked, no kernel call; full at 4096 marks; a failed deletion comes back with its marks', async () => {
    const [host] = ns.fds;
    let calls = 0;
    const counted = { deleteLinkGroup: (group: number) => { calls++; return session.deleteLinkGroup(group); } };
    const deleter = new GroupDeleter<string>(counted);
    for (const n of [0, 1, 2]) ip(host, 'link', 'add', `g${n}`, 'group', String(deleter.group), 'type', 'veth', 'peer', 'name', `p${n}`);
    ip(host, 'link', 'add', 'keep0', 'type', 'veth', 'peer', 'name', 'keep1');
    for (const what of ['line 1', 'line 2', 'line 3']) deleter.mark(what);
    expect(await deleter.flush()).toEqual({ marked: ['line 1', 'line 2', 'line 3'] });
    expect(links(host).map((l) => l.ifname).sort()).toEqual(['keep0', 'keep1', 'lo']); // a veth's peer goes with it
    expect(calls).toBe(1);
    expect(await deleter.flush()).toEqual({ marked: [] });
    expect(calls).toBe(1);

    for (let i = 0; i < 4095; i++) deleter.mark(`item ${i}`);
    expect(deleter.full).toBe(false);
    deleter.mark('item 4095');
    expect(deleter.full).toBe(true);
    expect((await deleter.flush()).marked).toHaveLength(4096); // none left in the group: done all the same
    expect(deleter.full).toBe(false);

    session.close();
    deleter.mark('late');
    const failed = await deleter.flush();
    expect(failed.marked).toEqual(['late']);
    expect(failed.error?.message).toBe('netlink socket is closed');
    session = new Session({ hostNetns: host }); // for afterEach
  });
});
