// Proves each helper-daemon fixture starts, does its job for real, and stops
// cleanly (its PIDs gone, its files gone). Run through scripts/in-netns.js:
//   node scripts/in-netns.js npx vitest run test/support/daemons.test.ts
import { readFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startDnsmasq, type Dnsmasq } from './daemons/dnsmasq';
import { startDockerd } from './daemons/dockerd';
import { run, waitFor } from './daemons/helpers';
import { startLxc } from './daemons/lxc';
import { startOvs } from './daemons/ovs';
import { startPrivateEtc, type PrivateEtc } from './daemons/private-etc';
import { daemonsInThisNetns } from './daemons/processes';

// Unique per run and file: other test files share this netns and /run.
const tag = (process.pid % 0xffff).toString(16).padStart(4, '0');
const octet = 20 + (process.pid % 200);
const net = (host: number) => `10.199.${octet}.${host}`;

const ip = (...args: string[]) => run('ip', args);
const pidGone = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /\) [ZX] /.test(stat);
  } catch {
    return true;
  }
};
const inode = (p: string) => statSync(p).ino;
const ipv4Of = async (argv: string[]) => /inet (\d+\.\d+\.\d+\.\d+)\//.exec(await run(argv[0], argv.slice(1)))?.[1];

const timings: Record<string, number> = {};
const ourPids: number[] = [];

afterAll(() => {
  console.log(`fixture start-up times (ms): ${JSON.stringify(timings)}`);
  // Every PID a fixture here started is gone (other files' daemons may share the netns).
  expect(ourPids.filter((p) => !pidGone(p))).toEqual([]);
  console.log(`helper daemons still in this netns (other test files'?): ${JSON.stringify(daemonsInThisNetns())}`);
});

/** A bridge with the gateway address, plus a netns whose eth1 is a port of it. */
async function lan(name: string) {
  const br = `pwb${name}${tag}`;
  const ns = `pwn${name}${tag}`;
  await ip('link', 'add', br, 'type', 'bridge');
  await ip('addr', 'add', `${net(1)}/24`, 'dev', br);
  await ip('link', 'set', br, 'up');
  await ip('netns', 'add', ns);
  await ip('link', 'add', `pwv${name}${tag}`, 'master', br, 'up', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', ns);
  return {
    br,
    ns,
    async remove() {
      await ip('netns', 'del', ns);
      await ip('link', 'del', br);
    },
  };
}

/** Snapshot of the machine's files a DHCP client could touch, to prove they were not. */
function machineFiles() {
  const stat = (p: string) => {
    try { const s = statSync(p); return `${s.mtimeMs}:${s.size}:${readFileSync(p, 'utf8')}`; } catch { return 'absent'; }
  };
  const ls = (d: string) => { try { return readdirSync(d).sort().join(','); } catch { return 'absent'; } };
  return {
    resolv: stat('/etc/resolv.conf'),
    hostname: stat('/etc/hostname'),
    etc: ls('/etc'),
    dhcp: ls('/var/lib/dhcp'),
    dhcpcd: ls('/var/lib/dhcpcd'),
    uts: readFileSync('/proc/sys/kernel/hostname', 'utf8'),
  };
}

describe('dnsmasq + DHCP clients in a private /etc', { timeout: 60_000 }, () => {
  it('hands leases to udhcpc, dhclient and dhcpcd in a netns, and nothing of the machine is written', async () => {
    const before = machineFiles();
    const l = await lan('d');
    let dns: Dnsmasq | undefined;
    let etc: PrivateEtc | undefined;
    try {
      dns = await startDnsmasq({ iface: l.br, range: [net(100), net(199)], netmask: '255.255.255.0', router: net(1), dns: [net(53)] });
      timings.dnsmasq = dns.startupMs;
      ourPids.push(dns.pid);
      const t0 = performance.now();
      etc = await startPrivateEtc();
      timings.privateEtc = Math.round(performance.now() - t0);
      ourPids.push(etc.holderPid);

      // udhcpc (Debian's default.script: address, default route, resolv.conf)
      await etc.run(['ip', 'netns', 'exec', l.ns, 'udhcpc', '-f', '-q', '-n', '-t', '5', '-T', '1', '-i', 'eth1', '-x', 'hostname:pwtest']);
      const got = await ipv4Of(['ip', '-n', l.ns, '-4', 'addr', 'show', 'eth1']);
      expect(got).toMatch(new RegExp(`^10\\.199\\.${octet}\\.1\\d\\d$`));
      expect(await ip('-n', l.ns, 'route', 'show', 'default')).toContain(`via ${net(1)}`);
      expect(etc.written('resolv.conf')).toContain(`nameserver ${net(53)}`);
      await waitFor(() => dns!.leases().some((x) => x.ip === got && x.hostname === 'pwtest'), 5000, 'lease in dnsmasq lease file');

      // dhclient daemonizes after its lease: stop() of the private /etc must end it.
      await ip('-n', l.ns, 'addr', 'flush', 'dev', 'eth1');
      const pf = `/run/pw-dhclient-${tag}.pid`;
      await etc.run(['ip', 'netns', 'exec', l.ns, 'dhclient', '-1', '-pf', pf, 'eth1'], { timeoutMs: 30_000 });
      expect(await ipv4Of(['ip', '-n', l.ns, '-4', 'addr', 'show', 'eth1'])).toMatch(/^10\.199\./);
      const dhclientPid = Number(readFileSync(pf, 'utf8').trim());
      expect(pidGone(dhclientPid)).toBe(false);
      ourPids.push(dhclientPid);
      expect(existsSync(`${etc.varLibUpper}/dhcp/dhclient.leases`)).toBe(true);

      // dhcpcd, one shot, no ARP probe
      process.kill(dhclientPid, 'SIGTERM');
      await waitFor(() => pidGone(dhclientPid), 5000, 'dhclient to exit');
      await ip('-n', l.ns, 'addr', 'flush', 'dev', 'eth1');
      await etc.run(['ip', 'netns', 'exec', l.ns, 'dhcpcd', '--oneshot', '--noarp', '-4', '-t', '20', 'eth1'], { timeoutMs: 30_000 });
      expect(await ipv4Of(['ip', '-n', l.ns, '-4', 'addr', 'show', 'eth1'])).toMatch(/^10\.199\./);
      expect(etc.written('resolv.conf')).toContain(`nameserver ${net(53)}`);
      expect(dns.log()).toContain('DHCPACK');
    } finally {
      await etc?.stop();
      await dns?.stop();
      await l.remove();
    }
    expect(pidGone(dns.pid)).toBe(true);
    expect(existsSync(dns.leaseFile)).toBe(false);
    expect(existsSync(etc.mntNs)).toBe(false);
    expect(machineFiles()).toEqual(before);
  });

  it('a daemonized client left running is ended by the private /etc stop()', async () => {
    const l = await lan('e');
    let dns: Dnsmasq | undefined;
    let etc: PrivateEtc | undefined;
    try {
      dns = await startDnsmasq({ iface: l.br, range: [net(100), net(199)], netmask: '255.255.255.0' });
      ourPids.push(dns.pid);
      etc = await startPrivateEtc();
      ourPids.push(etc.holderPid);
      const pf = `/run/pw-dhclient2-${tag}.pid`;
      await etc.run(['ip', 'netns', 'exec', l.ns, 'dhclient', '-1', '-pf', pf, 'eth1'], { timeoutMs: 30_000 });
      const pid = Number(readFileSync(pf, 'utf8').trim());
      ourPids.push(pid);
      expect(pidGone(pid)).toBe(false);
      await etc.stop();
      expect(pidGone(pid)).toBe(true);
      expect(pidGone(etc.holderPid)).toBe(true);
    } finally {
      await etc?.stop(); // a second stop() is a no-op
      await dns?.stop();
      await l.remove();
    }
  });
});

describe('Open vSwitch (userspace datapath)', { timeout: 60_000 }, () => {
  it('plain ovs-vsctl reaches it; a netdev bridge takes a tagged veth port; stop() removes it all', async () => {
    const ovs = await startOvs();
    timings.ovs = ovs.startupMs;
    ourPids.push(ovs.ovsdbPid, ovs.vswitchdPid);
    const br = `pwo${tag}`;
    const port = `pwov${tag}`;
    try {
      await ovs.vsctl(['add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev']);
      // What the code under test will run: no --db, default socket.
      expect((await run('ovs-vsctl', ['list-br'])).split('\n')).toContain(br);
      expect(await ip('link', 'show', br)).toContain(br);
      await ip('link', 'add', port, 'type', 'veth', 'peer', 'name', `${port}p`);
      await run('ovs-vsctl', ['add-port', br, port, 'tag=10', '--', 'set', 'interface', port, 'external_ids:container_id=c1']);
      expect((await ovs.vsctl(['get', 'port', port, 'tag'])).trim()).toBe('10');
      expect((await ovs.vsctl(['get', 'interface', port, 'ofport'])).trim()).toMatch(/^[1-9]\d*$/);
    } finally {
      await ovs.stop();
      await ip('link', 'del', port).catch(() => '');
    }
    expect(pidGone(ovs.ovsdbPid)).toBe(true);
    expect(pidGone(ovs.vswitchdPid)).toBe(true);
    expect(existsSync('/run/openvswitch/db.sock')).toBe(false);
    await expect(ip('link', 'show', br)).rejects.toThrow();
  });
});

describe('dockerd with a busybox image', { timeout: 120_000 }, () => {
  it('runs a container with --network none, gives its PID, and busybox udhcpc in a sidecar gets a lease', async () => {
    const d = await startDockerd();
    timings.dockerd = d.startupMs;
    timings.dockerdBusyboxImport = d.importMs;
    ourPids.push(d.pid);
    const name = `pwc${tag}`;
    const br = `pwbk${tag}`;
    let dns: Dnsmasq | undefined;
    try {
      expect(d.env.DOCKER_HOST).toBe(`unix://${d.socket}`);
      const t0 = performance.now();
      const id = (await d.docker(['run', '-d', '--network', 'none', '--name', name, d.busyboxImage, 'sleep', '1000'])).trim();
      timings.dockerRun = Math.round(performance.now() - t0);
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      const pid = Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', name])).trim());
      expect(pid).toBeGreaterThan(0);
      expect(Number((await d.docker(['inspect', '-f', '{{.State.Pid}}', id])).trim())).toBe(pid);
      expect(inode(`/proc/${pid}/ns/net`)).not.toBe(inode('/proc/self/ns/net'));
      // The plain CLI, the way the code under test will call it, with the fixture's env.
      expect(await run('docker', ['ps', '--format', '{{.Names}}'], { env: d.env })).toContain(name);

      // Docker's busybox DHCP: eth1 moved into the container, udhcpc in a sidecar sharing its netns.
      await ip('link', 'add', br, 'type', 'bridge');
      await ip('addr', 'add', `${net(1)}/24`, 'dev', br);
      await ip('link', 'set', br, 'up');
      await ip('link', 'add', `pwkv${tag}`, 'master', br, 'up', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', String(pid));
      dns = await startDnsmasq({ iface: br, range: [net(100), net(199)], netmask: '255.255.255.0', router: net(1) });
      await d.docker(['run', '--rm', '--network', `container:${name}`, '--cap-add', 'NET_ADMIN', d.busyboxImage,
        'udhcpc', '-f', '-q', '-n', '-t', '5', '-T', '1', '-i', 'eth1', '-x', `hostname:${name}`]);
      const got = await ipv4Of(['nsenter', `--net=/proc/${pid}/ns/net`, 'ip', '-4', 'addr', 'show', 'eth1']);
      expect(got).toMatch(new RegExp(`^10\\.199\\.${octet}\\.1\\d\\d$`));
      expect(await run('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', 'route', 'show', 'default'])).toContain(`via ${net(1)}`);
      await waitFor(() => dns!.leases().some((x) => x.ip === got && x.hostname === name), 5000, 'lease for the container');
      ourPids.push(pid);
    } finally {
      await dns?.stop();
      await d.stop();
      await ip('link', 'del', br).catch(() => '');
    }
    expect(pidGone(d.pid)).toBe(true);
    expect(existsSync(d.socket)).toBe(false);
    expect(daemonsInThisNetns().filter((p) => p.comm === 'dockerd' && p.pid === d.pid)).toEqual([]);
  });
});

describe('LXC busybox container', { timeout: 120_000 }, () => {
  it('starts a container in its own netns, known by name to lxc-info, and stops it', async () => {
    const name = `pwl${tag}`;
    const c = await startLxc(name);
    timings.lxc = c.startupMs;
    ourPids.push(c.pid, c.monitorPid);
    try {
      expect(c.pid).toBeGreaterThan(0);
      expect(inode(`/proc/${c.pid}/ns/net`)).not.toBe(inode('/proc/self/ns/net'));
      const info = await run('lxc-info', ['-P', c.lxcpath, '-n', name, '-s', '-p']);
      expect(info).toMatch(/State:\s+RUNNING/);
      expect(info).toMatch(new RegExp(`PID:\\s+${c.pid}\\b`));
      // `empty` network: only lo inside.
      const links = await run('nsenter', [`--net=/proc/${c.pid}/ns/net`, 'ip', '-o', 'link']);
      expect(links.trim().split('\n').map((l) => l.split(': ')[1])).toEqual(['lo']);
      expect(await c.attach(['cat', '/proc/1/comm'])).toContain('init');
      expect(readFileSync(`/proc/${c.pid}/cgroup`, 'utf8')).toContain(`lxc.payload.${name}`);
    } finally {
      await c.stop();
    }
    expect(pidGone(c.pid)).toBe(true);
    expect(pidGone(c.monitorPid)).toBe(true);
    expect(existsSync(c.lxcpath)).toBe(false);
  });
});
