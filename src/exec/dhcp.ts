import type { DockerContainer } from '../guest/docker';
import { PipeworkError } from '../errors';

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

/** What the client got. stop() ends a client left running and removes its pidfile (undo). */
export interface DhcpOutcome {
  addresses: string[];
  dns: string[];
  /** The guest's resolv.conf we wrote the lease's DNS servers to, if any. */
  resolvConf?: string;
  /** PID of a client left running (-f variants, dhcpcd). */
  pid?: number;
  stop(): Promise<void>;
}

export async function runDhcpClient(ctx: { guestFd: number; ifname: string; request: DhcpRequest }): Promise<DhcpOutcome> {
  throw new PipeworkError(`DHCP client ${ctx.request.client} is not supported yet`);
}
