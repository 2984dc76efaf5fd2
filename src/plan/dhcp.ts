import type { DockerContainer } from '../guest/docker';

/** A DHCP client asked for on the command line, with what it needs to know of the guest. */
export interface DhcpRequest {
  client: 'dhcp' | 'udhcpc' | 'dhclient' | 'dhcpcd';
  /** The -f variants: the client stays running to renew its lease. */
  foreground: boolean;
  options: string[];
  /** Sent as the DHCP hostname and used in pidfile names: the guest as the user named it. */
  hostname: string;
  docker?: DockerContainer;
  /** The container's own root filesystem, where its /etc/resolv.conf is (Docker, LXC). */
  rootfs?: string;
}

/** Where pidfiles go (the original's /var/run), and dhclient's leases. */
export const runDir = () => process.env.PIPEWORK_RUN_DIR ?? '/var/run';
export const leaseDir = () => process.env.PIPEWORK_LEASE_DIR ?? '/var/lib/dhcp';
/** Where clients' scratch dirs live: one per attach, `<guest>.<ifname>.XXXXXX`. */
export const scratchBase = () => `${runDir()}/pipework-dhcp`;

/** A guest name made safe for a file name (netns paths contain '/'). */
export const fileSafe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_').slice(0, 100) || '_';

/**
 * The client's argv as the original runs it (udhcpc, dhclient, dhcpcd), or
 * the busybox udhcpc of the Docker `dhcp` method.
 */
export function dhcpCommandLine(ifname: string, r: DhcpRequest): string[] {
  switch (r.client) {
    case 'dhcp':
      // -f: the helper container's udhcpc stays to renew the lease (the original's went to the background and its container exited).
      return ['udhcpc', '-f', '-i', ifname, '-x', `hostname:${r.hostname}`, ...r.options];
    case 'udhcpc':
      // -q: exit once leased; -f (foreground variants): stay and renew, so no -q.
      return ['udhcpc', r.foreground ? '-fi' : '-qi', ifname, '-x', `hostname:${r.hostname}`, '-p', `${runDir()}/udhcpc.${fileSafe(r.hostname)}.pid`, ...r.options];
    case 'dhclient':
      return ['dhclient', ifname, '-pf', `${runDir()}/dhclient.${fileSafe(r.hostname)}.pid`, '-lf', `${leaseDir()}/dhclient.${fileSafe(r.hostname)}.leases`, ...r.options];
    case 'dhcpcd':
      return ['dhcpcd', '-q', ifname, '-h', r.hostname, ...r.options];
  }
}
