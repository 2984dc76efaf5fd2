import type { DhcpRequest } from '../exec/dhcp';

/** Where pidfiles go (the original's /var/run), and dhclient's leases. */
export const runDir = () => process.env.PIPEWORK_RUN_DIR ?? '/var/run';
export const leaseDir = () => process.env.PIPEWORK_LEASE_DIR ?? '/var/lib/dhcp';

/**
 * The client's argv as the original runs it (udhcpc, dhclient, dhcpcd), or
 * the busybox udhcpc of the Docker `dhcp` method.
 */
export function dhcpCommandLine(ifname: string, r: DhcpRequest): string[] {
  switch (r.client) {
    case 'dhcp':
      return ['udhcpc', '-i', ifname, '-x', `hostname:${r.hostname}`, ...r.options];
    case 'udhcpc':
      // -q: exit once leased; -f (foreground variants): stay and renew, so no -q.
      return ['udhcpc', r.foreground ? '-fi' : '-qi', ifname, '-x', `hostname:${r.hostname}`, '-p', `${runDir()}/udhcpc.${r.hostname}.pid`, ...r.options];
    case 'dhclient':
      return ['dhclient', ifname, '-pf', `${runDir()}/dhclient.${r.hostname}.pid`, '-lf', `${leaseDir()}/dhclient.${r.hostname}.leases`, ...r.options];
    case 'dhcpcd':
      return ['dhcpcd', '-q', ifname, '-h', r.hostname, ...r.options];
  }
}
