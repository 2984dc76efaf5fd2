// dnsmasq as a DHCP server, in the test run's netns or another one.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { assertPrivateNamespaces, cleanup, removeDir, since, tmpDir, waitFor } from './helpers';
import { Daemon, inNetns } from './processes';

export interface DnsmasqOptions {
  /** Interface in the test's netns to serve on (e.g. a bridge with an address in the range's subnet). */
  iface: string;
  range: [string, string];
  netmask: string;
  router?: string;
  dns?: string[];
  /** Lease time (dnsmasq syntax), default 1h. */
  leaseTime?: string;
  /**
   * Run in this netns instead of the test process's (a netns file such as
   * `/run/netns/NAME` or `/proc/<pid>/fd/<fd>`); started via `nsenter --net=`,
   * which execs, so the PID is still dnsmasq's.
   */
  netns?: string;
}

export interface Lease { expiry: number; mac: string; ip: string; hostname: string; clientId: string }

export interface Dnsmasq {
  pid: number;
  leaseFile: string;
  /** Milliseconds from spawn until it listened on port 67. */
  startupMs: number;
  /** Current lease file, parsed. */
  leases(): Lease[];
  /** dnsmasq's own log (DHCP transactions), for assertions and debugging. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * dnsmasq as a DHCP server only (`--port=0`: no DNS) on `iface`, answering at
 * once (`--no-ping`: otherwise each offer waits ~3 s) and authoritatively (so
 * a client that asks for an old address gets an answer, not a timeout).
 */
export async function startDnsmasq(opts: DnsmasqOptions): Promise<Dnsmasq> {
  assertPrivateNamespaces();
  const t0 = performance.now();
  const dir = tmpDir('dnsmasq');
  const leaseFile = join(dir, 'leases');
  const logFile = join(dir, 'dnsmasq.log');
  const args = [
    '--no-daemon', '--conf-file=/dev/null', '--no-ping', '--port=0', '--dhcp-authoritative',
    '--user=root', '--group=root',
    `--interface=${opts.iface}`, '--bind-interfaces', '--except-interface=lo',
    `--dhcp-range=${opts.range[0]},${opts.range[1]},${opts.netmask},${opts.leaseTime ?? '1h'}`,
    `--dhcp-leasefile=${leaseFile}`, '--log-dhcp', '--log-facility=-',
    // With --no-daemon dnsmasq writes no pid file anyway; keep it away from /run.
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
  ];
  if (opts.router) args.push(`--dhcp-option=option:router,${opts.router}`);
  if (opts.dns?.length) args.push(`--dhcp-option=option:dns-server,${opts.dns.join(',')}`);
  const d = new Daemon('dnsmasq', logFile, ...inNetns(opts.netns, 'dnsmasq', args));
  const stop = async () => {
    await cleanup([() => d.stop(), () => removeDir(dir)]);
  };
  try {
    await waitFor(() => { d.check(); return listensOnUdp(d.pid, 67); }, 10_000, 'dnsmasq to listen on UDP 67');
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return {
    pid: d.pid,
    leaseFile,
    startupMs: since(t0),
    leases: () => parseLeases(leaseFile),
    log: () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } },
    stop,
  };
}

function parseLeases(file: string): Lease[] {
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).map((l) => {
    const [expiry, mac, ip, hostname, clientId] = l.split(' ');
    return { expiry: Number(expiry), mac, ip, hostname, clientId };
  });
}

/** Does PID own a UDP socket bound to `port` (checked by socket inode, in its own netns)? */
function listensOnUdp(pid: number, port: number): boolean {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch { /* fd closed meanwhile */ }
    }
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    return readFileSync(`/proc/${pid}/net/udp`, 'utf8').split('\n').slice(1).some((line) => {
      const f = line.trim().split(/\s+/);
      return f.length > 9 && f[1].endsWith(`:${hexPort}`) && inodes.has(f[9]);
    });
  } catch {
    return false;
  }
}
