// What a DHCP client configured, read back from the kernel over netlink.
import { formatIp } from '../addressing';
import { dumpAddresses } from '../netlink/address';
import { get32, parseAttrs } from '../netlink/attributes';
import { AF_INET, AF_INET6, IFA_ADDRESS, IFA_LOCAL, RT_SCOPE_UNIVERSE } from '../netlink/constants';
import { getLinkByName, parseLink } from '../netlink/link';
import type { RtnlSocket } from '../netlink/socket';

export async function linkIndex(sock: RtnlSocket, ifname: string): Promise<number> {
  return parseLink((await sock.request(getLinkByName(ifname)))[0]).index;
}

/** The link's IPv4 addresses (and with v6, its global IPv6 ones) as CIDR strings. */
export async function addresses(sock: RtnlSocket, index: number, v6: boolean): Promise<string[]> {
  const out: string[] = [];
  for (const reply of await sock.request(dumpAddresses(v6 ? 0 : AF_INET))) {
    const p = reply.payload;
    const family = p[0];
    if (get32(p, 4) !== index) continue;
    const attrs = parseAttrs(p, 8);
    const a = family === AF_INET ? attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS)
      : family === AF_INET6 && p[3] === RT_SCOPE_UNIVERSE ? attrs.get(IFA_ADDRESS) : undefined;
    if (a) out.push(`${formatIp(a)}/${p[1]}`);
  }
  return out;
}
