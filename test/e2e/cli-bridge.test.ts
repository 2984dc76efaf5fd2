// The pipework command end to end on Linux bridges: veth pairs, names,
// addresses, gateways, MACs, IPv6, rollback, and the gratuitous ARP seen on the
// bridge. Each test runs `node bin/pipework.js ...` in throwaway namespaces and
// reads the kernel state back (test/e2e/cli/harness.ts). Only inside
// scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cli-bridge.test.ts
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  HOST, nsFile, cli, ip, ipj, link, addrInfo, routes, snapshot, settled, ping, hasBin, expectError, expectOk, children, addNs, setup, sleeperIn, exited, cleanUp,
} from './cli/harness';

afterEach(cleanUp);

describe('Linux bridge', () => {
  it('br* absent: created and brought up; veth host end veth1pl<netns> enslaved; both containers and the bridge reach each other', async () => {
    const [c1, c2] = setup(2);
    expectOk(await cli(['br0', c1, '10.5.0.2/24']));
    expectOk(await cli(['br0', c2, '10.5.0.3/24']));

    const br = link(HOST, 'br0')!;
    expect(br.linkinfo?.info_kind).toBe('bridge');
    expect(br.flags).toContain('UP');
    const ports = ipj<any[]>(HOST, 'link', 'show', 'master', 'br0').map((l) => l.ifname).sort();
    expect(ports).toEqual([`veth1pl${c1}`, `veth1pl${c2}`]);
    for (const p of ports) {
      expect(link(HOST, p)!.linkinfo?.info_kind).toBe('veth');
      expect(link(HOST, p)!.flags).toContain('UP');
    }
    for (const [c, a] of [[c1, '10.5.0.2'], [c2, '10.5.0.3']]) {
      const eth1 = link(c, 'eth1')!;
      expect(eth1.linkinfo?.info_kind).toBe('veth');
      expect(eth1.flags).toEqual(expect.arrayContaining(['UP', 'LOWER_UP']));
      expect(addrInfo(c, 'eth1')).toEqual([expect.objectContaining({ local: a, prefixlen: 24, broadcast: '10.5.0.255' })]);
      expect(routes(c, '-4', 'default')).toEqual([]);
    }
    ip(HOST, 'addr', 'add', '10.5.0.1/24', 'dev', 'br0');
    expect(ping(c1, '10.5.0.3')).toBe(true);
    expect(ping(c2, '10.5.0.1')).toBe(true);
    expect(ping(HOST, '10.5.0.2')).toBe(true);
  });

  it('an existing bridge is used as it is (same ifindex), its MTU copied to both veth ends', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'lan0', 'mtu', '1400', 'type', 'bridge');
    ip(HOST, 'addr', 'add', '10.6.0.1/24', 'dev', 'lan0');
    ip(HOST, 'link', 'set', 'lan0', 'up');
    const before = link(HOST, 'lan0')!;
    expectOk(await cli(['lan0', c1, '10.6.0.2/24@10.6.0.1']));
    const after = link(HOST, 'lan0')!;
    expect(after.ifindex).toBe(before.ifindex);
    expect(link(HOST, `veth1pl${c1}`)).toMatchObject({ mtu: 1400, master: 'lan0' });
    expect(link(c1, 'eth1')).toMatchObject({ mtu: 1400 });
    // on-link gateway: no host route, just the default
    expect(routes(c1)).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: 'default', gateway: '10.6.0.1', dev: 'eth1' }),
    ]));
    expect(routes(c1).filter((r) => r.dst === '10.6.0.1')).toEqual([]);
    expect(ping(c1, '10.6.0.1')).toBe(true);
  });

  it('a PID as guest: host end veth1pl<pid> (veth<N>pl<pid> with -i eth<N>), the link in that process\'s netns', async () => {
    const [c1] = setup(1);
    const pid = await sleeperIn(c1);
    expectOk(await cli(['br0', String(pid), '10.7.0.2/24']));
    expectOk(await cli(['br0', '-i', 'eth2', String(pid), '10.7.1.2/24']));
    expect(link(HOST, `veth1pl${pid}`)).toMatchObject({ master: 'br0' });
    expect(link(HOST, `veth2pl${pid}`)).toMatchObject({ master: 'br0' });
    expect(addrInfo(pid, 'eth1')).toEqual([expect.objectContaining({ local: '10.7.0.2', prefixlen: 24 })]);
    expect(addrInfo(c1, 'eth2')).toEqual([expect.objectContaining({ local: '10.7.1.2', prefixlen: 24 })]);
  });

  it('a PID that has exited: "Container <pid> not found.", exit 1, nothing made', async () => {
    const [c1] = setup(1);
    const pid = await sleeperIn(c1);
    const child = children.find((c) => c.pid === pid)!;
    child.kill('SIGKILL');
    await exited(child);
    const [before] = await settled(HOST);
    expectError(await cli(['br0', String(pid), '10.7.0.2/24']), `Container ${pid} not found.`);
    expect(snapshot(HOST)).toEqual(before);
  });

  it('-i and -l name the container end and the host end', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', '-i', 'lan5', '-l', 'myveth', c1, '10.8.0.2/24']));
    expect(link(HOST, 'myveth')).toMatchObject({ master: 'br0' });
    expect(link(HOST, `veth1pl${c1}`)).toBeUndefined();
    expect(link(c1, 'lan5')?.linkinfo?.info_kind).toBe('veth');
    expect(link(c1, 'eth1')).toBeUndefined();
    expect(addrInfo(c1, 'lan5')).toEqual([expect.objectContaining({ local: '10.8.0.2' })]);
  });

  it('-l of a link that exists and is up: "Link X exists and is up", exit 1, nothing changed', async () => {
    const [c1, c2] = setup(2);
    expectOk(await cli(['br0', '-l', 'vloc', c1, '10.9.0.2/24']));
    const before = await settled(HOST, c1, c2);
    expectError(await cli(['br0', '-l', 'vloc', c2, '10.9.0.3/24']), 'Link vloc exists and is up');
    expect([snapshot(HOST), snapshot(c1), snapshot(c2)]).toEqual(before);
  });

  it('-l of a link that exists but is down: deleted and made again', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', '-l', 'vloc', c1, '10.9.0.2/24']));
    const old = link(HOST, 'vloc')!;
    ip(HOST, 'link', 'set', 'vloc', 'down');
    expectOk(await cli(['br0', '-l', 'vloc', c1, '10.9.0.5/24']));
    const now = link(HOST, 'vloc')!;
    expect(now.ifindex).not.toBe(old.ifindex);
    expect(now.flags).toContain('UP');
    expect(now.master).toBe('br0');
    // the old pair's container end went with it: only the new address is there
    expect(addrInfo(c1, 'eth1')).toEqual([expect.objectContaining({ local: '10.9.0.5' })]);
    expect(ipj<any[]>(HOST, 'link', 'show', 'master', 'br0').map((l) => l.ifname)).toEqual(['vloc']);
  });

  it('-l or -i longer than 15 bytes: says why, exit 1, nothing made', async () => {
    const [c1] = setup(1);
    const [before] = await settled(HOST);
    expectError(await cli(['br0', '-l', 'averyveryverylongname', c1, '0/0']),
      "The local interface name 'averyveryverylongname' is 21 characters long; Linux allows at most 15.");
    expectError(await cli(['br0', '-i', 'averyveryverylongname', c1, '0/0']),
      "The container interface name 'averyveryverylongname' is 21 characters long; Linux allows at most 15.");
    expect(snapshot(HOST)).toEqual(before);
  });

  it('a generated name over 15 bytes is shortened, never refused', async () => {
    const ns = addNs('pwverylongname');
    setup(0);
    expectOk(await cli(['br0', ns, '0/0']));
    const ports = ipj<any[]>(HOST, 'link', 'show', 'master', 'br0').map((l) => l.ifname);
    expect(ports).toHaveLength(1);
    expect(Buffer.byteLength(ports[0])).toBeLessThanOrEqual(15);
    expect(ports[0]).toMatch(/^veth1p-[a-z2-7]{8}$/);
  });

  it('@gw off-link: host route <gw>/32 dev eth1, then the default via it', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.10.0.2/24@10.99.0.1']));
    const rs = routes(c1);
    expect(rs).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: '10.99.0.1', dev: 'eth1', scope: 'link' }),
      expect.objectContaining({ dst: 'default', gateway: '10.99.0.1', dev: 'eth1' }),
    ]));
    expect(rs.find((r) => r.dst === '10.99.0.1').gateway).toBeUndefined();
  });

  it('@gw on a second interface replaces the old default route (the original deletes it first)', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '10.11.0.2/24@10.11.0.1']));
    const r = await cli(['br0', '-i', 'eth2', c1, '10.12.0.2/24@10.99.0.1']);
    expectOk(r);
    const rs = routes(c1);
    expect(rs.filter((x) => x.dst === 'default')).toEqual([expect.objectContaining({ gateway: '10.99.0.1', dev: 'eth2' })]);
    expect(rs).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '10.99.0.1', dev: 'eth2', scope: 'link' })]));
  });

  it('-v says what was done, on stderr', async () => {
    const [c1] = setup(1);
    const r = await cli(['-v', 'br0', c1, '10.15.0.2/24@10.15.0.1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const mac = link(c1, 'eth1')!.address;
    expect(r.stderr).toBe(`${c1}: eth1 (${mac}, mtu 1500) <-> veth1pl${c1} 10.15.0.2/24 via 10.15.0.1\n`);
  });

  it('0/0: no address, link up', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', c1, '0/0']));
    const eth1 = link(c1, 'eth1')!;
    expect(eth1.flags).toContain('UP');
    expect(addrInfo(c1, 'eth1')).toEqual([]);
    expect(routes(c1)).toEqual([]);
  });

  it('a MAC sets the container end; U:<text> gives 02 + md5(text\\n)[0..5]', async () => {
    const [c1, c2] = setup(2);
    expectOk(await cli(['br0', c1, '10.13.0.2/24', '02:12:34:56:78:9a']));
    expectOk(await cli(['br0', c2, '10.13.0.3/24', 'U:myhost.foo.com']));
    expect(link(c1, 'eth1')!.address).toBe('02:12:34:56:78:9a');
    expect(link(c2, 'eth1')!.address).toBe('02:72:6c:cd:9b:8d');
    expect(ping(c1, '10.13.0.3')).toBe(true);
    const neigh = ipj<any[]>(c1, 'neigh', 'show', '10.13.0.3');
    expect(neigh[0]?.lladdr).toBe('02:72:6c:cd:9b:8d');
  });

  it('an invalid MAC: named, exit 1, nothing made', async () => {
    const [c1] = setup(1);
    const [before] = await settled(HOST);
    expectError(await cli(['br0', c1, '10.13.0.2/24', '02:12:34:zz:78:9a']), 'Invalid MAC address: 02:12:34:zz:78:9a');
    expectError(await cli(['br0', c1, '10.13.0.2/24', '01:00:5e:00:00:01']), 'Invalid MAC address: 01:00:5e:00:00:01 is a multicast address');
    expect(snapshot(HOST)).toEqual(before);
  });

  it('-a 6: IPv6 address, on-link gateway, no broadcast; two containers ping over IPv6 (--nodad)', async () => {
    const [c1, c2] = setup(2);
    expectOk(await cli(['--nodad', 'br0', '-a', '6', c1, '2001:db8::2/64@2001:db8::1']));
    expectOk(await cli(['--nodad', 'br0', '-a', '6', c2, '2001:db8::3/64']));
    const a = addrInfo(c1, 'eth1', '-6').filter((x) => x.scope === 'global');
    expect(a).toEqual([expect.objectContaining({ local: '2001:db8::2', prefixlen: 64 })]);
    expect(a[0].broadcast).toBeUndefined();
    const rs = routes(c1, '-6');
    expect(rs).toEqual(expect.arrayContaining([expect.objectContaining({ dst: 'default', gateway: '2001:db8::1', dev: 'eth1' })]));
    expect(rs.filter((r) => r.dst === '2001:db8::1')).toEqual([]);
    expect(ping(c1, '2001:db8::3')).toBe(true);
  });

  it('-a 6 with an off-link gateway: host route <gw>/128 (not /32)', async () => {
    const [c1] = setup(1);
    expectOk(await cli(['br0', '-a', '6', c1, '2001:db8::2/64@2001:db8:1::1']));
    const rs = routes(c1, '-6');
    const host = rs.find((r) => r.dst === '2001:db8:1::1' || r.dst === '2001:db8:1::1/128');
    expect(host).toMatchObject({ dev: 'eth1' });
    expect(host.gateway).toBeUndefined();
    expect(rs).toEqual(expect.arrayContaining([expect.objectContaining({ dst: 'default', gateway: '2001:db8:1::1', dev: 'eth1' })]));
    // and the kernel really treats it as a /128
    expect(ipj<any[]>(c1, '-6', 'route', 'show', 'exact', '2001:db8:1::1/128')).toHaveLength(1);
  });

  it('-a 6 with an IPv4 address, or -a 5: refused, exit 1, nothing made', async () => {
    const [c1] = setup(1);
    const [before] = await settled(HOST);
    expectError(await cli(['br0', '-a', '6', c1, '10.0.0.1/24']), 'The address 10.0.0.1/24 is not an IPv6 address (-a 6).');
    expectError(await cli(['br0', '-a', '5', c1, '10.0.0.1/24']), 'Invalid address family: -a 5 (4 or 6)');
    expect(snapshot(HOST)).toEqual(before);
  });

  it('a failure after the bridge and veth were made (the kernel refuses the address) rolls all of it back', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    const r = await cli(['brnew', '-a', '6', c1, 'ff02::1/64']);
    expectError(r, /^RTM_NEWADDR eth1/);
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
    expect(link(HOST, 'brnew')).toBeUndefined();
  });

  it('@vlan on an existing Linux bridge: the original message, exit 1, nothing made', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'br0', 'type', 'bridge');
    const before = await settled(HOST, c1);
    expectError(await cli(['br0', c1, '10.14.0.2/24', '@5']), 'VLAN configuration currently unsupported for Linux bridge.');
    expectError(await cli(['br0', c1, '10.14.0.2/24', '02:12:34:56:78:9a@5']), 'VLAN configuration currently unsupported for Linux bridge.');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });

  it('@vlan with a br* bridge still to create: the same message, and no bridge is created', async () => {
    const [c1] = setup(1);
    const before = await settled(HOST, c1);
    expectError(await cli(['brnew', c1, '10.14.0.2/24', '@5']), 'VLAN configuration currently unsupported for Linux bridge.');
    expect([snapshot(HOST), snapshot(c1)]).toEqual(before);
  });
});

describe('gratuitous ARP, seen on the bridge', () => {
  /** Polls until done() holds; what() says what was awaited. Long: tcpdump's output and the CLI are slow under load. */
  async function until(done: () => boolean, what: () => string, ms = 60_000): Promise<void> {
    for (const end = Date.now() + ms; !done();) {
      if (Date.now() > end) throw new Error(`gave up waiting for ${what()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** tcpdump on `dev` in the host netns, ARP only; resolves once it listens. */
  async function captureArp(dev: string): Promise<{ lines(): string[]; stop(): Promise<void> }> {
    const child = spawn('nsenter', [`--net=${nsFile(HOST)}`, '--', 'tcpdump', '-i', dev, '-n', '-l', '--immediate-mode', 'arp'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    await until(() => /listening on/.test(err) || child.exitCode !== null, () => `tcpdump to start: ${err}`);
    if (child.exitCode !== null) throw new Error(`tcpdump did not start: ${err}`);
    return {
      lines: () => out.split('\n').filter(Boolean),
      stop: async () => { child.kill('SIGINT'); await exited(child); },
    };
  }

  /** Until the announcement of addr (who-has addr tell addr) is among the captured lines. */
  const announced = (cap: { lines(): string[] }, addr: string) => {
    const announce = new RegExp(`ARP, Request who-has ${addr.replace(/\./g, '\\.')} tell ${addr.replace(/\./g, '\\.')}, `);
    return until(() => cap.lines().some((l) => announce.test(l)), () => `a gratuitous ARP for ${addr} on br0, captured: ${cap.lines().join('\n')}`);
  };

  it.skipIf(!hasBin('tcpdump'))('the default announces the address (who-has itself, tell itself); --no-arp sends none', async () => {
    const [c1, c2] = setup(2);
    ip(HOST, 'link', 'add', 'br0', 'type', 'bridge');
    ip(HOST, 'link', 'set', 'br0', 'up');
    const cap = await captureArp('br0');
    // First the one that must stay silent, then the one that announces: once the announcement is seen, the
    // first attach's link has long been up, and anything it sent was captured before.
    expectOk(await cli(['--no-arp', 'br0', c1, '10.140.0.2/24']));
    expectOk(await cli(['br0', c2, '10.140.0.3/24']));
    await announced(cap, '10.140.0.3');
    await cap.stop();
    expect(cap.lines().filter((l) => l.includes('10.140.0.2'))).toEqual([]);
    // And the silent one still works: it answers ARP when asked.
    expect(ping(c2, '10.140.0.2')).toBe(true);
  });

  it.skipIf(!hasBin('tcpdump'))('reaches the bridge when its port was disabled as the container end came up (an attach killed after the veth, then --converge)', async () => {
    const [c1] = setup(1);
    ip(HOST, 'link', 'add', 'br0', 'type', 'bridge');
    ip(HOST, 'link', 'set', 'br0', 'up');
    const killed = await cli(['br0', c1, '10.140.0.4/24'], { env: { PIPEWORK_TEST_KILL_AFTER_STEP: '0' } });
    expect(killed.code).toBeNull();
    // The kernel has seen that the host end has no carrier (its peer is down) and the bridge has disabled the port:
    // it drops whatever comes in until the kernel applies the carrier that the container end's link-up brings.
    const port = () => ipj<any[]>(HOST, '-d', 'link', 'show', `veth1pl${c1}`)[0]?.linkinfo?.info_slave_data?.state;
    await until(() => port() === 'disabled', () => `the port to be disabled (it is ${port()})`);
    const cap = await captureArp('br0');
    expectOk(await cli(['--converge', 'br0', c1, '10.140.0.4/24']));
    await announced(cap, '10.140.0.4');
    expect(port()).toBe('forwarding');
  });
});
