// The `dhcp` method: busybox udhcpc in a helper container sharing the
// guest's netns, left running to renew the lease.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PipeworkError } from '../errors';
import { dockerApi } from '../guest/docker';
import { RtnlSocket } from '../netlink/socket';
import { type DhcpRequest, dhcpCommandLine } from '../plan/dhcp';
import { type DhcpOutcome, dhcpTimeoutMs } from './dhcp-client';
import { alive, childrenOf, identify, once, sleep } from './dhcp-procs';
import { addresses, linkIndex } from './dhcp-readback';
import { type ClientState, scratchDir, writeState } from './dhcp-records';
import { nameservers, readInRoot } from './dhcp-resolv';
import { stopRecorded } from './dhcp-stop';

const HELPER_LABEL = 'pipework.dhcp-helper';

/**
 * udhcpc does nothing with a lease but run its event script, and Docker's
 * official busybox image ships none (upstream issue 163: the original's
 * `dhcp` method leased an address and configured nothing). The helper gets
 * this one, read-only, where either busybox build looks for its default
 * (a user's own `-s` still wins). Like Debian's default.script, with
 * busybox applets only, except that a lease without DNS servers leaves the
 * container's resolv.conf alone instead of emptying it.
 */
const HELPER_SCRIPT = `#!/bin/sh
# udhcpc event script of pipework's DHCP helper container
case "$1" in
  deconfig)
    ip link set "$interface" up
    ip -4 addr flush dev "$interface"
    ;;
  bound|renew)
    ifconfig "$interface" \${mtu:+mtu $mtu} "$ip" netmask "$subnet" \${broadcast:+broadcast $broadcast}
    router="\${router%% *}"
    current=$(ip -4 route show dev "$interface" | awk '$1 == "default" { print $3 }')
    [ ".$router" != ".$current" ] && ip -4 route flush exact 0.0.0.0/0 dev "$interface"
    [ -n "$router" ] && ip -4 route replace default via "$router" dev "$interface"
    if [ -n "$dns" ]; then
      R=""
      [ -n "$domain" ] && R="search $domain
"
      for i in $dns; do R="\${R}nameserver $i
"; done
      printf '%s' "$R" > /etc/resolv.conf
    fi
    ;;
esac
exit 0
`;

const HELPER_SCRIPT_TARGETS = ['/usr/share/udhcpc/default.script', '/etc/udhcpc/default.script'];

export async function runDockerHelper(guestFd: number, ifname: string, request: DhcpRequest): Promise<DhcpOutcome> {
  const docker = request.docker!;
  const timeoutMs = dhcpTimeoutMs();
  const deadline = Date.now() + timeoutMs;
  const dir = scratchDir(request.hostname, ifname);
  const script = join(dir, 'udhcpc.script');
  writeFileSync(script, HELPER_SCRIPT, { mode: 0o755 });
  // -f: busybox udhcpc otherwise forks to the background once leased, so
  // the helper's PID 1 exits, Docker ends the container, and nobody renews
  // the lease: what the original did (upstream issues 111, 133, 181).
  const [prog, ...args] = dhcpCommandLine(ifname, request);
  const spec = {
    Image: 'busybox',
    Cmd: [prog, ...args],
    Labels: { [HELPER_LABEL]: 'true', 'pipework.containerid': docker.id, 'pipework.interface': ifname },
    // udhcpc stays running to renew the lease (as in the original); AutoRemove:
    // no stray exited helpers (upstream issue 163).
    HostConfig: {
      NetworkMode: `container:${docker.id}`, CapAdd: ['NET_ADMIN'], AutoRemove: true,
      Binds: HELPER_SCRIPT_TARGETS.map((t) => `${script}:${t}:ro`),
    },
  };
  const message = (r: { status: number; body: any }) => `${r.status} ${typeof r.body === 'string' ? r.body.trim() : r.body?.message ?? ''}`;
  let id: string | undefined;
  let failed = false;
  const remove = async () => {
    if (!id) return;
    const r = await dockerApi('DELETE', `/containers/${id}?force=true`).catch((e: Error) => ({ status: 0, body: e.message }));
    if (r.status !== 204 && r.status !== 404 && r.status !== 409) throw new PipeworkError(`Cannot remove the DHCP helper container ${id.slice(0, 12)}: ${message(r)}`);
  };
  const fail = async (why: string): Promise<never> => {
    failed = true;
    const logs = id ? await dockerApi('GET', `/containers/${id}/logs?stdout=1&stderr=1&tail=20`).catch(() => undefined) : undefined;
    await remove().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    const text = logs?.status === 200 && typeof logs.body === 'string' ? stripDockerStream(logs.body) : '';
    throw new PipeworkError(`DHCP helper container (busybox udhcpc) on ${ifname} ${why}${text ? `:\n${text}` : '.'}`);
  };

  const sock = RtnlSocket.open(guestFd);
  try {
    let created = await dockerApi('POST', '/containers/create', spec);
    if (created.status === 404) {
      // `docker run` pulls a missing image: so do we.
      const pulled = await dockerApi('POST', '/images/create?fromImage=busybox&tag=latest');
      const text = typeof pulled.body === 'string' ? pulled.body : JSON.stringify(pulled.body ?? '');
      if (pulled.status !== 200 || /"error"/.test(text)) return await fail(`could not be created: cannot pull the busybox image: ${message(pulled)}`);
      created = await dockerApi('POST', '/containers/create', spec);
    }
    if (created.status !== 201) return await fail(`could not be created: ${message(created)}`);
    id = created.body.Id as string;
    const started = await dockerApi('POST', `/containers/${id}/start`);
    if (started.status !== 204 && started.status !== 304) return await fail(`could not start: ${message(started)}`);
    const inspected = await dockerApi('GET', `/containers/${id}/json`);
    const pid = Number(inspected.body?.State?.Pid ?? 0);
    const helper = pid > 0 ? identify(pid) : undefined;
    if (!helper) return await fail('exited at once');

    const index = await linkIndex(sock, ifname);
    for (;;) {
      if (!alive(helper)) return await fail('exited without a lease');
      if ((await addresses(sock, index, false)).length > 0 && childrenOf(pid).length === 0) break;
      if (Date.now() >= deadline) return await fail(`got no lease within ${timeoutMs / 1000} s`);
      await sleep(25);
    }
    const addrs = await addresses(sock, index, true);
    // The helper shares the guest's resolv.conf (Docker gives container:
    // network mode the other container's file): its script wrote it already.
    const written = request.rootfs ? readInRoot(request.rootfs, 'etc/resolv.conf') : undefined;
    const state: ClientState = { client: 'dhcp', hostname: request.hostname, ifname, helperContainer: id, pid, startTime: helper.startTime };
    writeState(dir, state);
    return {
      addresses: addrs, dns: nameservers(written ?? ''), resolvConf: written !== undefined ? join(request.rootfs!, 'etc/resolv.conf') : undefined,
      pid, helperContainer: id,
      stop: once(() => stopRecorded(dir, state)),
    };
  } catch (e) {
    if (failed) throw e;
    return await fail(`was stopped: ${(e as Error).message}`);
  } finally {
    sock.close();
  }
}

/** Docker's log stream for a non-TTY container: 8-byte frame headers before each chunk. */
function stripDockerStream(s: string): string {
  return s.replace(/[\x00-\x02]\x00\x00\x00[\s\S]{4}/g, '').trim().split('\n').slice(-20).join('\n');
}
