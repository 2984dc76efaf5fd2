// rtnetlink numbers from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>,
// <linux/if_addr.h> and <linux/fib_rules.h>: only those this project sends or reads.

export const NETLINK_ROUTE = 0;

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
/** In a dump's reply: the table changed while the dump was read, so it may miss or repeat entries. */
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
/** In an NLMSG_ERROR: the request was not echoed back (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
/** In an NLMSG_ERROR: extended-ACK attributes follow. */
export const NLM_F_ACK_TLVS = 0x200;
export const NLMSGERR_ATTR_MSG = 1;

export const NLA_F_NESTED = 0x8000;
export const NLA_TYPE_MASK = 0x3fff;

/** Multicast group of link notifications. */
export const RTNLGRP_LINK = 1;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWRULE = 32;
export const RTM_DELRULE = 33;
export const RTM_GETNSID = 90;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const IFF_UP = 0x1;
export const IFF_LOWER_UP = 0x10000;
export const ARPHRD_INFINIBAND = 32;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_MASTER = 10;
export const IFLA_OPERSTATE = 16;
export const IFLA_IFALIAS = 20;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_FD = 28;
export const IFLA_GROUP = 27;
export const IFLA_NUM_TX_QUEUES = 31;
export const IFLA_NUM_RX_QUEUES = 32;
export const IFLA_CARRIER = 33;
/** In an RTM_GETLINK: what the answer leaves out (RTEXT_FILTER_*). */
export const IFLA_EXT_MASK = 29;
/** No IPv6 counters in IFLA_AF_SPEC (IFLA_INET6_STATS, IFLA_INET6_ICMP6STATS): a quarter of a veth's answer, summed over every CPU by the kernel, and never read here. */
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;
/** The id, in this netns, of the netns IFLA_LINK refers to (absent: the same netns). */
export const IFLA_LINK_NETNSID = 37;
export const IFLA_AF_SPEC = 26;
export const IFLA_INET_CONF = 1;
/** IPV4_DEVCONF_ARP_NOTIFY: gratuitous ARP when the device comes up. */
export const IPV4_DEVCONF_ARP_NOTIFY = 22;
/** In IFLA_AF_SPEC's AF_INET6 nest: how the link's IPv6 addresses (link-local first) are made. */
export const IFLA_INET6_ADDR_GEN_MODE = 8;
/** The kernel's default: addresses from the MAC address. */
export const IN6_ADDR_GEN_MODE_EUI64 = 0;
/** No address generated: no link-local address, so no DAD, MLD or router solicitation. */
export const IN6_ADDR_GEN_MODE_NONE = 1;

/** RTM_GETNSID: the netns asked about, by fd; the answer's id. */
export const NETNSA_NSID = 1;
export const NETNSA_FD = 3;

export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_BROADCAST = 4;
export const IFA_F_NODAD = 0x02;

export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_METRICS = 8;
export const RTA_TABLE = 15;
export const RTAX_MTU = 2;

export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RTN_UNICAST = 1;
export const RTN_UNSPEC = 0;
export const RTNH_F_ONLINK = 4;

export const FRA_DST = 1;
export const FRA_SRC = 2;
export const FRA_IIFNAME = 3;
export const FRA_PRIORITY = 6;
export const FRA_FWMARK = 10;
export const FRA_TABLE = 15;
export const FRA_FWMASK = 16;
export const FRA_OIFNAME = 17;
export const FR_ACT_TO_TBL = 1;
export const FIB_RULE_INVERT = 0x2;
