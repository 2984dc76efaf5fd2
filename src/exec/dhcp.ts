// Runs a DHCP client for a container interface, the way the original did,
// minus its side effects on the host:
// - the client runs in the guest's netns, in a private mount namespace where
//   /etc is an overlay (its scripts' resolv.conf, hostname files and temp
//   files land in a scratch dir) and in a private UTS namespace (a script's
//   `hostname` renames nobody);
// - the lease's DNS servers go to the guest's own resolv.conf (Docker, LXC);
// - a client that stays running is remembered (state file), so its undo and
//   a later `pipework unplug` can stop exactly that process.
// The ways to run one live in modules of their own, loaded only when used:
// dhcp-local.ts (udhcpc, dhclient, dhcpcd) and dhcp-docker.ts (the `dhcp`
// method's helper container).
import type { DhcpRequest } from '../plan/dhcp';
import { checkDhcpRequest, type DhcpOutcome } from './dhcp-client';

export async function runDhcpClient(ctx: { guestFd: number; ifname: string; request: DhcpRequest }): Promise<DhcpOutcome> {
  checkDhcpRequest(ctx.request);
  if (ctx.request.client === 'dhcp') {
    const { runDockerHelper }: typeof import('./dhcp-docker') = require('./dhcp-docker');
    return runDockerHelper(ctx.guestFd, ctx.ifname, ctx.request);
  }
  const { runLocalClient }: typeof import('./dhcp-local') = require('./dhcp-local');
  return runLocalClient(ctx.guestFd, ctx.ifname, ctx.request);
}
