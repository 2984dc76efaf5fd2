// What a DHCP client configured, read back from the kernel over netlink.
import { formatIp } from '../addressing';
import { readAddresses } from '../netlink/address';
import { AF_INET, AF_INET6, RT_SCOPE_UNIVERSE } from '../netlink/constants';
import { getLinkByName, parseLink } from '../netlink/link';
import type { RtnlSocket } from '../netlink/socket';

export async function linkIndex(sock: RtnlSocket, ifname: string): Promise<number> {
  return parseLink((await sock.request(getLinkByName(ifname)))[0]).index;
}

/** The link's IPv4 addresses (and with v6, its global IPv6 ones) as CIDR strings. */
export async function addresses(sock: RtnlSocket, index: number, v6: boolean): Promise<string[]> {
  return (await readAddresses(sock, v6 ? 0 : AF_INET))
    .filter((a) => a.index === index && (a.family === AF_INET || (a.family === AF_INET6 && a.scope === RT_SCOPE_UNIVERSE)))
    .map((a) => `${formatIp(a.address)}/${a.prefixLen}`);
}
