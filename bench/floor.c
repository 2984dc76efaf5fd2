/*
 * bench/floor.c: the "floor" baseline for pipework-style attaches: the same
 * per-container work as every other implementation, done with hand-packed
 * rtnetlink from C, as fast as we know how.  Per container:
 *
 *   host netns:       RTM_NEWLINK  veth "v<i>", IFLA_MASTER=br<k>, IFF_UP,
 *                                  peer born inside the container netns
 *                                  (IFLA_NET_NS_FD inside VETH_INFO_PEER)
 *                                  already named "eth1"; one TX and one
 *                                  RX queue on each end
 *   container netns:  one sendmsg on a socket made in the container netns,
 *                     NLM_F_ACK on each request:
 *                        RTM_NEWADDR  10.k.x.y/16 brd 10.k.255.255
 *                        RTM_NEWLINK  eth1 up
 *                        RTM_NEWROUTE replace default via 10.k.0.1, proto boot
 *   every ACK is read and must carry errno 0.
 *
 * How the requests go out:
 *   sequential (default, the historic floor): one container after another,
 *     the host request ACKed before the container's batch is sent.
 *   --pipeline K: K containers at a time: their K host-side RTM_NEWLINK in
 *     one sendmsg (ACKs drained after), then K container sockets, each with
 *     its batch sent, then all their ACKs drained.  bench/run.js sweeps K and
 *     takes the best as "the floor".
 *   --threads T: T threads, each doing a contiguous share of the containers
 *     (pipelined or not) on a host socket of its own.  RTNL serializes the
 *     kernel's link work; what can overlap is socket creation, setns, and the
 *     container-side requests of one thread with the host side of another.
 *
 * Kernel work that can be avoided, each a flag (the bench measures on/off):
 *   --host-addrgen-none   IPv6 address generation off on the host ends (they
 *                         are bridge ports: no link-local address, no DAD, no
 *                         MLD).  IFLA_INET6_ADDR_GEN_MODE cannot ride in the
 *                         creating RTM_NEWLINK (EAFNOSUPPORT: the link has no
 *                         IPv6 state yet), so a second RTM_NEWLINK by name
 *                         follows it in the same sendmsg, before the end has
 *                         carrier (its peer is still down).
 *   --guest-addrgen-none  the same on the container end, in the container's
 *                         batch before the link-up (what the library's
 *                         `ipv6: false` does).
 *   --arp-notify          the container's batch sets arp_notify around the
 *                         link-up, so the kernel sends a gratuitous ARP (what
 *                         the library's default `announce: true` does).
 *   --no-ipv6             diagnostic: net.ipv6.conf.default.disable_ipv6=1 in
 *                         each container netns when it is made (untimed).
 *
 * Peer ifindex: we do NOT look it up.  The peer is created in a fresh netns,
 * so we ask the kernel for a fixed ifindex (ifinfomsg.ifi_index inside
 * VETH_INFO_PEER; ifindexes are per-netns).  The value is probed once: the
 * highest ifindex present in the first fresh netns, plus one.
 *
 * Container netns: anonymous, unshare(CLONE_NEWNET) + open
 * /proc/thread-self/ns/net + setns() back; they are only held by the fd and
 * vanish when the process exits.
 *
 * Address scheme: bridge k (k = i / per_bridge) is "br<k>" with 10.k.0.1/16;
 * container j on that bridge gets 10.k.0.0 + (j + 2), broadcast 10.k.255.255.
 *
 * SAFETY: the attach mode never touches the netns it was started in.  First
 * thing it does is unshare(CLONE_NEWNET) into a brand-new private netns,
 * checks that it really is a different netns and that it contains nothing
 * but "lo", and refuses to run otherwise.  Everything lives in that private
 * netns and disappears when the process exits.  The check mode (below) only
 * reads.
 *
 * Build:  gcc -O2 -pthread -o bench/out/floor bench/floor.c
 * Usage:  bench/out/floor N [PER_BRIDGE] [--verify] [--pipeline K] [--threads T]
 *                         [--host-addrgen-none] [--guest-addrgen-none] [--arp-notify]
 *                         [--group-teardown] [--no-ipv6] [--no-teardown]
 *         bench/out/floor check N [PER_BRIDGE] [--gateway-last] [--host-addrgen-none]
 *                         [--guest-addrgen-none]   < netns paths, one per container
 *
 * Output (stdout, key=value tokens):
 *   impl=floor n=.. bridges=.. per_bridge=.. peer_ifindex=.. pipeline=.. threads=..
 *   netns_ms=..                       (creating N anonymous netns)
 *   attach_ms=.. per_container_ms=..  (the per-container work above)
 *   verify=ok ...                     (with --verify)
 *   teardown_ms=.. teardown_per_container_ms=..
 *
 * Verification (--verify, and the check mode other implementations are
 * checked with) reads every container back: eth1 UP and LOWER_UP, its
 * address, prefix and broadcast, the default route via the gateway on eth1;
 * on the host, every bridge's port count, all ports UP and LOWER_UP, and the
 * number of links.  With the addrgen flags, also that the ends concerned have
 * no IPv6 address and addrgenmode none.
 *
 * Teardown: one RTM_DELLINK (by name, with ACK) per host-side veth; the
 * kernel deletes the peer with it.  With --group-teardown the host ends are
 * created with IFLA_GROUP set and teardown is one RTM_DELLINK by IFLA_GROUP
 * (a single batched unregister in the kernel) instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/veth.h>
#include <linux/ip.h>

#define TEARDOWN_GROUP 4242u

#ifndef IFF_LOWER_UP           /* glibc <net/if.h> lacks it */
#define IFF_LOWER_UP 0x10000
#endif

static int origns = -1;            /* fd of our private bench netns */

static void die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void dief(const char *msg)
{
    fprintf(stderr, "floor: %s\n", msg);
    exit(1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------- tiny netlink message builder ---------- */

struct msg {
    struct nlmsghdr *h;
    size_t cap;
};

#define ALIGNED_BUF(name, size) \
    static char name[size] __attribute__((aligned(NLMSG_ALIGNTO)))

static void *msg_init(struct msg *m, void *buf, size_t cap, uint16_t type,
                      uint16_t flags, uint32_t seq, size_t hdrlen)
{
    m->h = buf;
    m->cap = cap;
    memset(buf, 0, NLMSG_SPACE(hdrlen));
    m->h->nlmsg_len = NLMSG_LENGTH(hdrlen);
    m->h->nlmsg_type = type;
    m->h->nlmsg_flags = NLM_F_REQUEST | flags;
    m->h->nlmsg_seq = seq;
    return NLMSG_DATA(m->h);
}

static struct rtattr *msg_tail(struct msg *m)
{
    return (struct rtattr *)((char *)m->h + NLMSG_ALIGN(m->h->nlmsg_len));
}

static void put(struct msg *m, uint16_t type, const void *data, size_t len)
{
    struct rtattr *a = msg_tail(m);
    size_t newlen = NLMSG_ALIGN(m->h->nlmsg_len) + RTA_SPACE(len);
    if (newlen > m->cap)
        dief("netlink message buffer too small");
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    m->h->nlmsg_len = newlen;
}

static void put_u32(struct msg *m, uint16_t type, uint32_t v) { put(m, type, &v, 4); }
static void put_str(struct msg *m, uint16_t type, const char *s) { put(m, type, s, strlen(s) + 1); }

static struct rtattr *nest_begin(struct msg *m, uint16_t type)
{
    struct rtattr *a = msg_tail(m);
    put(m, type, NULL, 0);
    return a;
}

static void nest_end(struct msg *m, struct rtattr *a)
{
    a->rta_len = (char *)m->h + m->h->nlmsg_len - (char *)a;
}

/* raw bytes inside the current message (used for the peer's ifinfomsg) */
static void *put_raw(struct msg *m, size_t len)
{
    void *p = msg_tail(m);
    size_t newlen = NLMSG_ALIGN(m->h->nlmsg_len) + NLMSG_ALIGN(len);
    if (newlen > m->cap)
        dief("netlink message buffer too small");
    memset(p, 0, NLMSG_ALIGN(len));
    m->h->nlmsg_len = newlen;
    return p;
}

/* ---------- sockets ---------- */

static int nl_socket(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        die("socket(NETLINK_ROUTE)");
    int one = 1;
    /* acks carry only the request header, not the whole request */
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    return fd;
}

/* a socket for hundreds of requests per sendmsg: room for the datagram and
 * for all the ACKs, which the kernel queues while still inside sendmsg (an
 * ACK that does not fit is dropped, and the socket reports ENOBUFS) */
static void nl_big(int fd)
{
    int snd = 8 << 20, rcv = 64 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
        die("setsockopt(SO_SNDBUFFORCE/SO_RCVBUFFORCE)");
}

/* netlink socket living in netns `nsfd`: setns in, socket(), setns back */
static int nl_socket_in(int nsfd)
{
    if (setns(nsfd, CLONE_NEWNET) < 0)
        die("setns(container)");
    int fd = nl_socket();
    if (setns(origns, CLONE_NEWNET) < 0)
        die("setns(back)");
    return fd;
}

static void nl_send(int fd, const void *buf, size_t len)
{
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    ssize_t r = sendto(fd, buf, len, 0, (struct sockaddr *)&sa, sizeof(sa));
    if (r < 0)
        die("sendto(netlink)");
    if ((size_t)r != len)
        dief("short netlink send");
}

static const char *what_of(uint16_t type)
{
    switch (type) {
    case RTM_NEWLINK: return "RTM_NEWLINK";
    case RTM_DELLINK: return "RTM_DELLINK";
    case RTM_NEWADDR: return "RTM_NEWADDR";
    case RTM_NEWROUTE: return "RTM_NEWROUTE";
    default: return "request";
    }
}

/*
 * Read `want` ACKs.  Every rtnetlink request is processed synchronously
 * inside sendmsg(), so by the time we get here all replies are queued; each
 * reply is its own datagram, so recvmmsg() collects them in one syscall.
 */
#define MAXACK 64
static void nl_acks(int fd, int want, const char *ctx, long idx)
{
    char bufs[MAXACK][256] __attribute__((aligned(NLMSG_ALIGNTO)));
    struct iovec iov[MAXACK];
    struct mmsghdr mm[MAXACK];
    int got = 0;
    while (got < want) {
        int n = want - got < MAXACK ? want - got : MAXACK;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof(bufs[i]);
            memset(&mm[i], 0, sizeof(mm[i]));
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int r = recvmmsg(fd, mm, n, MSG_WAITFORONE, NULL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("recvmmsg(netlink)");
        }
        for (int i = 0; i < r; i++) {
            int len = mm[i].msg_len;
            for (struct nlmsghdr *h = (void *)bufs[i]; NLMSG_OK(h, len);
                 h = NLMSG_NEXT(h, len)) {
                if (h->nlmsg_type != NLMSG_ERROR)
                    continue;
                struct nlmsgerr *e = NLMSG_DATA(h);
                if (e->error != 0) {
                    fprintf(stderr, "floor: %s: %s #%ld (seq %u) failed: %s\n",
                            ctx, what_of(e->msg.nlmsg_type), idx, h->nlmsg_seq,
                            strerror(-e->error));
                    exit(1);
                }
                got++;
            }
        }
    }
}

/* ---------- addresses ---------- */

static inline uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d)
{
    return htonl((a << 24) | (b << 16) | (c << 8) | d);
}
static inline uint32_t gw_of(int k) { return ip4(10, k, 0, 1); }
static inline uint32_t brd_of(int k) { return ip4(10, k, 255, 255); }
static inline uint32_t addr_of(int k, int j)
{
    unsigned h = (unsigned)j + 2;
    return ip4(10, k, (h >> 8) & 255, h & 255);
}

/* ---------- setup ---------- */

static int count_links_here(int *maxidx)
{
    struct if_nameindex *ni = if_nameindex();
    if (!ni)
        die("if_nameindex");
    int n = 0, mx = 0;
    for (struct if_nameindex *p = ni; p->if_index; p++) {
        n++;
        if ((int)p->if_index > mx)
            mx = p->if_index;
    }
    if_freenameindex(ni);
    if (maxidx)
        *maxidx = mx;
    return n;
}

static void enter_private_netns(void)
{
    struct stat before, after;
    if (stat("/proc/self/ns/net", &before) < 0)
        die("stat(/proc/self/ns/net)");
    if (unshare(CLONE_NEWNET) < 0)
        die("unshare(CLONE_NEWNET) (are you root?)");
    if (stat("/proc/self/ns/net", &after) < 0)
        die("stat(/proc/self/ns/net)");
    if (before.st_ino == after.st_ino && before.st_dev == after.st_dev)
        dief("refusing to run: not in a private network namespace");
    struct if_nameindex *ni = if_nameindex();
    if (!ni)
        die("if_nameindex");
    int ok = ni[0].if_index && !strcmp(ni[0].if_name, "lo") && !ni[1].if_index;
    if_freenameindex(ni);
    if (!ok)
        dief("refusing to run: new netns is not empty (expected only lo)");
    origns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (origns < 0)
        die("open(/proc/thread-self/ns/net)");
}

static int create_bridge(int fd, int k, uint32_t *seq)
{
    ALIGNED_BUF(buf, 1024);
    struct msg m;
    char name[IFNAMSIZ];
    snprintf(name, sizeof(name), "br%d", k);

    struct ifinfomsg *ifi = msg_init(&m, buf, sizeof(buf), RTM_NEWLINK,
                                     NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                                     ++*seq, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    put_str(&m, IFLA_IFNAME, name);
    struct rtattr *li = nest_begin(&m, IFLA_LINKINFO);
    put_str(&m, IFLA_INFO_KIND, "bridge");
    nest_end(&m, li);
    nl_send(fd, buf, m.h->nlmsg_len);
    nl_acks(fd, 1, "bridge", k);

    int idx = if_nametoindex(name);
    if (!idx)
        die("if_nametoindex(bridge)");

    struct ifaddrmsg *ifa = msg_init(&m, buf, sizeof(buf), RTM_NEWADDR,
                                     NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                                     ++*seq, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = 16;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = idx;
    uint32_t gw = gw_of(k), brd = brd_of(k);
    put(&m, IFA_LOCAL, &gw, 4);
    put(&m, IFA_ADDRESS, &gw, 4);
    put(&m, IFA_BROADCAST, &brd, 4);
    nl_send(fd, buf, m.h->nlmsg_len);
    nl_acks(fd, 1, "bridge address", k);
    return idx;
}

/*
 * --no-ipv6 (diagnostic, not part of the pipework work): called while we are
 * inside a freshly unshared container netns; sets that netns's
 * net.ipv6.conf.default.disable_ipv6=1 so eth1 never starts IPv6 (no
 * link-local address, DAD or MLD packets flooded through the bridge).
 * /proc/sys/net resolves to the netns of the calling thread; we double-check
 * that this is not our bench netns before writing.
 */
static void disable_ipv6_here(int nsfd)
{
    struct stat here, bench;
    if (fstat(nsfd, &here) < 0 || fstat(origns, &bench) < 0)
        die("fstat(netns)");
    if (here.st_ino == bench.st_ino)
        dief("refusing to set a sysctl outside a container netns");
    int fd = open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        die("open(disable_ipv6)");
    if (write(fd, "1\n", 2) != 2)
        die("write(disable_ipv6)");
    close(fd);
}

/* ---------- verification ---------- */

static void *dumpbuf_alloc(void)
{
    static char *b;
    if (!b && !(b = aligned_alloc(NLMSG_ALIGNTO, 1 << 20)))
        die("aligned_alloc");
    return b;
}

typedef void (*dump_cb)(struct nlmsghdr *h, void *ctx);

static void nl_dump(int fd, uint16_t type, int family, uint32_t seq, dump_cb cb, void *ctx)
{
    ALIGNED_BUF(req, 256);
    char *dumpbuf = dumpbuf_alloc();
    struct msg m;
    if (type == RTM_GETLINK) {
        struct ifinfomsg *i = msg_init(&m, req, sizeof(req), type, NLM_F_DUMP, seq, sizeof(*i));
        i->ifi_family = family;
    } else if (type == RTM_GETADDR) {
        struct ifaddrmsg *a = msg_init(&m, req, sizeof(req), type, NLM_F_DUMP, seq, sizeof(*a));
        a->ifa_family = family;
    } else {
        struct rtmsg *r = msg_init(&m, req, sizeof(req), type, NLM_F_DUMP, seq, sizeof(*r));
        r->rtm_family = family;
    }
    nl_send(fd, req, m.h->nlmsg_len);
    for (;;) {
        ssize_t len = recv(fd, dumpbuf, 1 << 20, 0);
        if (len < 0) {
            if (errno == EINTR)
                continue;
            die("recv(dump)");
        }
        for (struct nlmsghdr *h = (void *)dumpbuf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE)
                return;
            if (h->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = NLMSG_DATA(h);
                errno = -e->error;
                die("netlink dump");
            }
            cb(h, ctx);
        }
    }
}

static void parse_attrs(struct rtattr *tb[], int max, struct rtattr *a, int len)
{
    memset(tb, 0, sizeof(*tb) * (max + 1));
    for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type <= max)
            tb[a->rta_type] = a;
}

/* IFLA_AF_SPEC -> AF_INET6 -> IFLA_INET6_ADDR_GEN_MODE, or -1 */
static int addr_gen_mode(struct rtattr *afspec)
{
    if (!afspec)
        return -1;
    int len = RTA_PAYLOAD(afspec);
    for (struct rtattr *a = RTA_DATA(afspec); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type != AF_INET6)
            continue;
        struct rtattr *tb[IFLA_INET6_MAX + 1];
        parse_attrs(tb, IFLA_INET6_MAX, RTA_DATA(a), RTA_PAYLOAD(a));
        return tb[IFLA_INET6_ADDR_GEN_MODE] ? *(uint8_t *)RTA_DATA(tb[IFLA_INET6_ADDR_GEN_MODE]) : -1;
    }
    return -1;
}

/* What a good attach looks like, for --verify and for the check mode. */
struct expect {
    long n, per_bridge;
    int nbr;
    int *bridx;
    int gateway_last;      /* gateway 10.k.255.254 (ours) instead of 10.k.0.1 */
    int proto_boot;        /* the default route must be proto boot (the floor's) */
    int host_agm, guest_agm;
};

static uint32_t gateway_for(const struct expect *e, int k)
{
    return e->gateway_last ? ip4(10, k, 255, 254) : gw_of(k);
}

struct host_ctx {
    const struct expect *e;
    int *ports; int total; int up; int agm_wrong;
    unsigned char *is_port; int cap;   /* ifindex -> 1 for a bridge port */
    int v6_on_ports;
};

static void host_link_cb(struct nlmsghdr *h, void *vctx)
{
    struct host_ctx *c = vctx;
    struct ifinfomsg *ifi = NLMSG_DATA(h);
    struct rtattr *tb[IFLA_MAX + 1];
    parse_attrs(tb, IFLA_MAX, IFLA_RTA(ifi), IFLA_PAYLOAD(h));
    c->total++;
    if (!tb[IFLA_MASTER])
        return;
    uint32_t master = *(uint32_t *)RTA_DATA(tb[IFLA_MASTER]);
    for (int k = 0; k < c->e->nbr; k++)
        if ((uint32_t)c->e->bridx[k] == master) {
            c->ports[k]++;
            if ((ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_LOWER_UP))
                c->up++;
            if (c->e->host_agm && addr_gen_mode(tb[IFLA_AF_SPEC]) != IN6_ADDR_GEN_MODE_NONE)
                c->agm_wrong++;
            if (ifi->ifi_index >= c->cap) {
                int cap = ifi->ifi_index * 2 + 64;
                c->is_port = realloc(c->is_port, cap);
                if (!c->is_port)
                    die("realloc");
                memset(c->is_port + c->cap, 0, cap - c->cap);
                c->cap = cap;
            }
            c->is_port[ifi->ifi_index] = 1;
        }
}

static void host_addr6_cb(struct nlmsghdr *h, void *vctx)
{
    struct host_ctx *c = vctx;
    struct ifaddrmsg *ifa = NLMSG_DATA(h);
    if ((int)ifa->ifa_index < c->cap && c->is_port[ifa->ifa_index])
        c->v6_on_ports++;
}

struct ct_ctx {
    const struct expect *e;
    int idx; uint32_t addr, brd, gw;
    int addr_ok, link_ok, route_ok, agm, v6addrs;
};

static void ct_cb(struct nlmsghdr *h, void *vctx)
{
    struct ct_ctx *c = vctx;
    if (h->nlmsg_type == RTM_NEWADDR) {
        struct ifaddrmsg *ifa = NLMSG_DATA(h);
        struct rtattr *tb[IFA_MAX + 1];
        parse_attrs(tb, IFA_MAX, IFA_RTA(ifa), IFA_PAYLOAD(h));
        if ((int)ifa->ifa_index != c->idx)
            return;
        if (ifa->ifa_family == AF_INET6)
            c->v6addrs++;
        else if (ifa->ifa_prefixlen == 16 &&
            tb[IFA_LOCAL] && *(uint32_t *)RTA_DATA(tb[IFA_LOCAL]) == c->addr &&
            tb[IFA_BROADCAST] && *(uint32_t *)RTA_DATA(tb[IFA_BROADCAST]) == c->brd)
            c->addr_ok++;
    } else if (h->nlmsg_type == RTM_NEWLINK) {
        struct ifinfomsg *ifi = NLMSG_DATA(h);
        struct rtattr *tb[IFLA_MAX + 1];
        parse_attrs(tb, IFLA_MAX, IFLA_RTA(ifi), IFLA_PAYLOAD(h));
        if (tb[IFLA_IFNAME] && !strcmp(RTA_DATA(tb[IFLA_IFNAME]), "eth1")) {
            c->idx = ifi->ifi_index;
            c->agm = addr_gen_mode(tb[IFLA_AF_SPEC]);
            if ((ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_LOWER_UP))
                c->link_ok++;
        }
    } else if (h->nlmsg_type == RTM_NEWROUTE) {
        struct rtmsg *r = NLMSG_DATA(h);
        struct rtattr *tb[RTA_MAX + 1];
        parse_attrs(tb, RTA_MAX, RTM_RTA(r), RTM_PAYLOAD(h));
        if (r->rtm_dst_len == 0 && r->rtm_table == RT_TABLE_MAIN &&
            (!c->e->proto_boot || r->rtm_protocol == RTPROT_BOOT) && tb[RTA_GATEWAY] &&
            *(uint32_t *)RTA_DATA(tb[RTA_GATEWAY]) == c->gw && tb[RTA_OIF] &&
            (int)*(uint32_t *)RTA_DATA(tb[RTA_OIF]) == c->idx)
            c->route_ok++;
    }
}

/* Reads back every container and the host side; exits 1 on the first thing
 * wrong.  nsfd_of(i) gives container i's netns fd (closed after if owned). */
static void verify(int hostfd, const struct expect *e, int (*nsfd_of)(long i, int *owned))
{
    int ports[256] = {0};
    struct host_ctx hc = { .e = e, .ports = ports };
    nl_dump(hostfd, RTM_GETLINK, AF_UNSPEC, 900000, host_link_cb, &hc);
    for (int k = 0; k < e->nbr; k++) {
        long want = (k == e->nbr - 1) ? e->n - k * e->per_bridge : e->per_bridge;
        if (ports[k] != want) {
            fprintf(stderr, "floor: verify: br%d has %d ports, want %ld\n", k, ports[k], want);
            exit(1);
        }
    }
    if (hc.up != e->n) {
        fprintf(stderr, "floor: verify: %d of %ld host veths are UP,LOWER_UP\n", hc.up, e->n);
        exit(1);
    }
    if (hc.total != 1 + e->nbr + e->n) {
        fprintf(stderr, "floor: verify: %d host links, want %ld\n", hc.total, 1 + e->nbr + e->n);
        exit(1);
    }
    if (e->host_agm) {
        nl_dump(hostfd, RTM_GETADDR, AF_INET6, 900002, host_addr6_cb, &hc);
        if (hc.agm_wrong || hc.v6_on_ports) {
            fprintf(stderr, "floor: verify: %d host ends without addrgenmode none, %d IPv6 addresses on host ends\n",
                    hc.agm_wrong, hc.v6_on_ports);
            exit(1);
        }
    }
    free(hc.is_port);
    for (long i = 0; i < e->n; i++) {
        int k = i / e->per_bridge, j = i % e->per_bridge;
        struct ct_ctx c = { .e = e, .idx = -1, .addr = addr_of(k, j), .brd = brd_of(k), .gw = gateway_for(e, k) };
        int owned = 0;
        int ns = nsfd_of(i, &owned);
        int fd = nl_socket_in(ns);
        if (owned)
            close(ns);
        nl_dump(fd, RTM_GETLINK, AF_UNSPEC, 1, ct_cb, &c);
        nl_dump(fd, RTM_GETADDR, AF_INET, 2, ct_cb, &c);
        nl_dump(fd, RTM_GETROUTE, AF_INET, 3, ct_cb, &c);
        if (e->guest_agm)
            nl_dump(fd, RTM_GETADDR, AF_INET6, 4, ct_cb, &c);
        close(fd);
        if (c.addr_ok != 1 || c.link_ok != 1 || c.route_ok != 1) {
            fprintf(stderr, "floor: verify: container %ld: eth1 up=%d addr=%d default-route=%d\n",
                    i, c.link_ok, c.addr_ok, c.route_ok);
            exit(1);
        }
        if (e->guest_agm && (c.agm != IN6_ADDR_GEN_MODE_NONE || c.v6addrs)) {
            fprintf(stderr, "floor: verify: container %ld: eth1 addrgenmode %d, %d IPv6 addresses\n",
                    i, c.agm, c.v6addrs);
            exit(1);
        }
    }
    printf("verify=ok host_links=%d bridge_ports=%ld containers_checked=%ld%s%s\n",
           hc.total, e->n, e->n, e->host_agm ? " host_ipv6=none" : "", e->guest_agm ? " container_ipv6=none" : "");
    fflush(stdout);
}

static void count_host_cb(struct nlmsghdr *h, void *vctx)
{
    (void)h;
    ++*(int *)vctx;
}

/* ---------- the requests ---------- */

struct job {
    long n, per_bridge;
    int *bridx, *nsfd, peer_idx;
    long pipeline;                  /* 0: sequential */
    int group_teardown, host_agm, guest_agm, arp_notify;
};

/* IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE = NONE } } */
static void put_addrgen_none(struct msg *m)
{
    struct rtattr *af = nest_begin(m, IFLA_AF_SPEC);
    struct rtattr *v6 = nest_begin(m, AF_INET6);
    uint8_t mode = IN6_ADDR_GEN_MODE_NONE;
    put(m, IFLA_INET6_ADDR_GEN_MODE, &mode, 1);
    nest_end(m, v6);
    nest_end(m, af);
}

/* One queue each way: a veth asked for none gets one per possible CPU and is
 * then cut to one in use, which costs a synchronize_net() under the rtnl lock
 * per creation. */
static void put_one_queue(struct msg *m)
{
    put_u32(m, IFLA_NUM_TX_QUEUES, 1);
    put_u32(m, IFLA_NUM_RX_QUEUES, 1);
}

/* The host side of container i at buf; its length.  *msgs += requests. */
static size_t build_host(const struct job *j, long i, char *buf, size_t cap, uint32_t seq, int *msgs)
{
    int k = i / j->per_bridge;
    char name[IFNAMSIZ];
    snprintf(name, sizeof(name), "v%ld", i);
    struct msg m;
    struct ifinfomsg *ifi = msg_init(&m, buf, cap, RTM_NEWLINK,
                                     NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    put_str(&m, IFLA_IFNAME, name);
    put_u32(&m, IFLA_MASTER, j->bridx[k]);
    put_one_queue(&m);
    if (j->group_teardown)
        put_u32(&m, IFLA_GROUP, TEARDOWN_GROUP);
    struct rtattr *li = nest_begin(&m, IFLA_LINKINFO);
    put_str(&m, IFLA_INFO_KIND, "veth");
    struct rtattr *data = nest_begin(&m, IFLA_INFO_DATA);
    struct rtattr *peer = nest_begin(&m, VETH_INFO_PEER);
    struct ifinfomsg *pifi = put_raw(&m, sizeof(struct ifinfomsg));
    pifi->ifi_family = AF_UNSPEC;
    pifi->ifi_index = j->peer_idx;          /* fixed ifindex, see header */
    put_str(&m, IFLA_IFNAME, "eth1");
    put_u32(&m, IFLA_NET_NS_FD, j->nsfd[i]);
    put_one_queue(&m);
    nest_end(&m, peer);
    nest_end(&m, data);
    nest_end(&m, li);
    size_t off = NLMSG_ALIGN(m.h->nlmsg_len);
    ++*msgs;
    if (j->host_agm) {
        /* by name, in the same sendmsg: the end has no carrier yet (its peer is down) */
        ifi = msg_init(&m, buf + off, cap - off, RTM_NEWLINK, NLM_F_ACK, seq + 1, sizeof(*ifi));
        ifi->ifi_family = AF_UNSPEC;
        put_str(&m, IFLA_IFNAME, name);
        put_addrgen_none(&m);
        off += NLMSG_ALIGN(m.h->nlmsg_len);
        ++*msgs;
    }
    return off;
}

/* RTM_NEWLINK on eth1: arp_notify = v */
static size_t build_arp_notify(const struct job *j, char *buf, size_t cap, uint32_t seq, uint32_t v)
{
    struct msg m;
    struct ifinfomsg *ifi = msg_init(&m, buf, cap, RTM_NEWLINK, NLM_F_ACK, seq, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = j->peer_idx;
    struct rtattr *af = nest_begin(&m, IFLA_AF_SPEC);
    struct rtattr *v4 = nest_begin(&m, AF_INET);
    struct rtattr *conf = nest_begin(&m, IFLA_INET_CONF);
    put_u32(&m, IPV4_DEVCONF_ARP_NOTIFY, v);
    nest_end(&m, conf);
    nest_end(&m, v4);
    nest_end(&m, af);
    return NLMSG_ALIGN(m.h->nlmsg_len);
}

/* Container i's batch at buf: address, [addrgen none], [arp_notify on], up, [arp_notify off], route. */
static size_t build_guest(const struct job *j, long i, char *buf, size_t cap, int *msgs)
{
    int k = i / j->per_bridge, jj = i % j->per_bridge;
    uint32_t addr = addr_of(k, jj), brd = brd_of(k), gw = gw_of(k), seq = 1;
    size_t off = 0;
    struct msg c;

    struct ifaddrmsg *ifa = msg_init(&c, buf, cap, RTM_NEWADDR,
                                     NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq++, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = 16;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = j->peer_idx;
    put(&c, IFA_LOCAL, &addr, 4);
    put(&c, IFA_ADDRESS, &addr, 4);
    put(&c, IFA_BROADCAST, &brd, 4);
    off += NLMSG_ALIGN(c.h->nlmsg_len);

    if (j->guest_agm) {
        struct ifinfomsg *g = msg_init(&c, buf + off, cap - off, RTM_NEWLINK, NLM_F_ACK, seq++, sizeof(*g));
        g->ifi_family = AF_UNSPEC;
        g->ifi_index = j->peer_idx;
        put_addrgen_none(&c);
        off += NLMSG_ALIGN(c.h->nlmsg_len);
    }
    if (j->arp_notify)
        off += build_arp_notify(j, buf + off, cap - off, seq++, 1);

    struct ifinfomsg *up = msg_init(&c, buf + off, cap - off, RTM_NEWLINK, NLM_F_ACK, seq++, sizeof(*up));
    up->ifi_family = AF_UNSPEC;
    up->ifi_index = j->peer_idx;
    up->ifi_flags = IFF_UP;
    up->ifi_change = IFF_UP;
    off += NLMSG_ALIGN(c.h->nlmsg_len);

    if (j->arp_notify)
        off += build_arp_notify(j, buf + off, cap - off, seq++, 0);

    struct rtmsg *rt = msg_init(&c, buf + off, cap - off, RTM_NEWROUTE,
                                NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq++, sizeof(*rt));
    rt->rtm_family = AF_INET;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    put(&c, RTA_GATEWAY, &gw, 4);
    put_u32(&c, RTA_OIF, j->peer_idx);
    off += NLMSG_ALIGN(c.h->nlmsg_len);
    *msgs = seq - 1;
    return off;
}

#define HOST_MSG_MAX 512     /* one container's host-side requests */
#define GUEST_MSG_MAX 768    /* one container's batch */

struct share { const struct job *j; long from, to; };

/* Attaches containers [from, to) on a host socket of this thread's own. */
static void *attach_range(void *arg)
{
    const struct share *sh = arg;
    const struct job *j = sh->j;
    long batch = j->pipeline > 0 ? j->pipeline : 1;
    int hostfd = nl_socket();
    if (j->pipeline > 0)
        nl_big(hostfd);
    char *hbuf = aligned_alloc(NLMSG_ALIGNTO, batch * HOST_MSG_MAX);
    char *gbuf = aligned_alloc(NLMSG_ALIGNTO, batch * GUEST_MSG_MAX);
    int *cfd = calloc(batch, sizeof(int)), *cmsgs = calloc(batch, sizeof(int));
    if (!hbuf || !gbuf || !cfd || !cmsgs)
        die("alloc");
    uint32_t seq = 0;
    for (long b = sh->from; b < sh->to; b += batch) {
        long m = sh->to - b < batch ? sh->to - b : batch;
        /* 1. host side: the creations of m containers in one sendmsg */
        size_t off = 0;
        int msgs = 0;
        for (long x = 0; x < m; x++) {
            off += build_host(j, b + x, hbuf + off, batch * HOST_MSG_MAX - off, seq + 1, &msgs);
            seq += 2;
        }
        nl_send(hostfd, hbuf, off);
        nl_acks(hostfd, msgs, "host", b);
        /* 2. container side: every batch sent, then every ACK read */
        for (long x = 0; x < m; x++) {
            cfd[x] = nl_socket_in(j->nsfd[b + x]);
            char *g = gbuf + x * GUEST_MSG_MAX;
            size_t len = build_guest(j, b + x, g, GUEST_MSG_MAX, &cmsgs[x]);
            nl_send(cfd[x], g, len);
        }
        for (long x = 0; x < m; x++) {
            nl_acks(cfd[x], cmsgs[x], "container", b + x);
            close(cfd[x]);
        }
    }
    close(hostfd);
    free(hbuf);
    free(gbuf);
    free(cfd);
    free(cmsgs);
    return NULL;
}

/* ---------- main ---------- */

static int *floor_nsfd;
static int floor_ns(long i, int *owned) { *owned = 0; return floor_nsfd[i]; }

static FILE *check_paths;
static int check_ns(long i, int *owned)
{
    char path[4096];
    if (!fgets(path, sizeof(path), check_paths)) {
        fprintf(stderr, "floor check: stdin ended before container %ld's netns path\n", i);
        exit(1);
    }
    path[strcspn(path, "\n")] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "floor check: open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    *owned = 1;
    return fd;
}

static void raise_nofile(long want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)want) {
        rl.rlim_cur = want;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            die("setrlimit(RLIMIT_NOFILE)");
    }
}

#define USAGE "usage: floor N [PER_BRIDGE] [--verify] [--pipeline K] [--threads T] [--host-addrgen-none]" \
    " [--guest-addrgen-none] [--arp-notify] [--group-teardown] [--no-ipv6] [--no-teardown]\n" \
    "       floor check N [PER_BRIDGE] [--gateway-last] [--host-addrgen-none] [--guest-addrgen-none] < netns paths\n"

/* `floor check`: reads back what another implementation made, in the
 * caller's netns (it only reads); container i's netns path is line i of stdin. */
static int check_main(int argc, char **argv)
{
    struct expect e = { .per_bridge = 1000 };
    long n = -1;
    int npos = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--gateway-last")) e.gateway_last = 1;
        else if (!strcmp(argv[i], "--host-addrgen-none")) e.host_agm = 1;
        else if (!strcmp(argv[i], "--guest-addrgen-none")) e.guest_agm = 1;
        else if (argv[i][0] != '-' && npos == 0) { n = strtol(argv[i], NULL, 10); npos++; }
        else if (argv[i][0] != '-' && npos == 1) { e.per_bridge = strtol(argv[i], NULL, 10); npos++; }
        else { fputs(USAGE, stderr); return 2; }
    }
    if (n < 1 || e.per_bridge < 1) { fputs(USAGE, stderr); return 2; }
    e.n = n;
    e.nbr = (n + e.per_bridge - 1) / e.per_bridge;
    if (e.nbr > 256)
        dief("too many bridges (max 256)");
    int bridx[256];
    for (int k = 0; k < e.nbr; k++) {
        char name[IFNAMSIZ];
        snprintf(name, sizeof(name), "br%d", k);
        if (!(bridx[k] = if_nametoindex(name)))
            die("if_nametoindex(bridge)");
    }
    e.bridx = bridx;
    origns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (origns < 0)
        die("open(/proc/thread-self/ns/net)");
    check_paths = stdin;
    int hostfd = nl_socket();
    verify(hostfd, &e, check_ns);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "check"))
        return check_main(argc, argv);
    long n = -1, per_bridge = 1000, pipeline = 0, threads = 1;
    int do_verify = 0, group_teardown = 0, no_ipv6 = 0, no_teardown = 0, npos = 0;
    int host_agm = 0, guest_agm = 0, arp_notify = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verify"))
            do_verify = 1;
        else if (!strcmp(argv[i], "--group-teardown"))
            group_teardown = 1;
        else if (!strcmp(argv[i], "--no-ipv6"))
            no_ipv6 = 1;
        else if (!strcmp(argv[i], "--no-teardown"))
            no_teardown = 1;
        else if (!strcmp(argv[i], "--host-addrgen-none"))
            host_agm = 1;
        else if (!strcmp(argv[i], "--guest-addrgen-none"))
            guest_agm = 1;
        else if (!strcmp(argv[i], "--arp-notify"))
            arp_notify = 1;
        else if (!strcmp(argv[i], "--pipeline") && i + 1 < argc)
            pipeline = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = strtol(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && npos == 0) {
            n = strtol(argv[i], NULL, 10);
            npos++;
        } else if (argv[i][0] != '-' && npos == 1) {
            per_bridge = strtol(argv[i], NULL, 10);
            npos++;
        } else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (n < 1 || per_bridge < 1 || per_bridge > 65000 || pipeline < 0 || pipeline > 4096 || threads < 1 || threads > 64) {
        fputs(USAGE, stderr);
        return 2;
    }
    int nbr = (n + per_bridge - 1) / per_bridge;
    if (nbr > 256)
        dief("too many bridges (max 256): raise PER_BRIDGE");
    if (per_bridge > 1023)
        fprintf(stderr, "floor: warning: a Linux bridge holds at most 1023 ports\n");

    enter_private_netns();
    raise_nofile(n + threads * (pipeline + 8) + 64);

    int hostfd = nl_socket();
    uint32_t seq = 0;
    int bridx[256];
    for (int k = 0; k < nbr; k++)
        bridx[k] = create_bridge(hostfd, k, &seq);

    /* ---- container netns ---- */
    int *nsfd = calloc(n, sizeof(int));
    if (!nsfd)
        die("calloc");
    int peer_idx = 0;
    double t0 = now_ms();
    for (long i = 0; i < n; i++) {
        if (unshare(CLONE_NEWNET) < 0)
            die("unshare(container netns)");
        nsfd[i] = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (nsfd[i] < 0)
            die("open(container netns)");
        if (no_ipv6)
            disable_ipv6_here(nsfd[i]);
        if (i == 0) {
            int mx;
            count_links_here(&mx);
            peer_idx = mx + 1;
        }
        if (setns(origns, CLONE_NEWNET) < 0)
            die("setns(back)");
    }
    double t1 = now_ms();
    printf("impl=floor n=%ld bridges=%d per_bridge=%ld peer_ifindex=%d pipeline=%ld threads=%ld%s%s%s%s\n",
           n, nbr, per_bridge, peer_idx, pipeline, threads, no_ipv6 ? " container_ipv6=off" : "",
           host_agm ? " host_addrgen=none" : "", guest_agm ? " guest_addrgen=none" : "",
           arp_notify ? " arp_notify=on" : "");
    printf("netns_ms=%.1f\n", t1 - t0);
    fflush(stdout);

    /* ---- attach ---- */
    struct job job = {
        .n = n, .per_bridge = per_bridge, .bridx = bridx, .nsfd = nsfd, .peer_idx = peer_idx,
        .pipeline = pipeline, .group_teardown = group_teardown, .host_agm = host_agm,
        .guest_agm = guest_agm, .arp_notify = arp_notify,
    };
    struct share sh[64];
    pthread_t tid[64];
    t0 = now_ms();
    for (long t = 0; t < threads; t++) {
        sh[t] = (struct share){ &job, n * t / threads, n * (t + 1) / threads };
        if (threads == 1)
            attach_range(&sh[t]);
        else if (pthread_create(&tid[t], NULL, attach_range, &sh[t]))
            dief("pthread_create failed");
    }
    for (long t = 0; threads > 1 && t < threads; t++)
        pthread_join(tid[t], NULL);
    t1 = now_ms();
    printf("attach_ms=%.1f per_container_ms=%.4f\n", t1 - t0, (t1 - t0) / n);
    fflush(stdout);

    if (do_verify) {
        struct expect e = { .n = n, .per_bridge = per_bridge, .nbr = nbr, .bridx = bridx, .proto_boot = 1,
                            .host_agm = host_agm, .guest_agm = guest_agm };
        floor_nsfd = nsfd;
        verify(hostfd, &e, floor_ns);
    }

    /* ---- teardown: delete every host-side veth (peer goes with it) ---- */
    if (no_teardown)
        return 0;             /* everything goes with our netns at exit */
    ALIGNED_BUF(lbuf, 1024);
    t0 = now_ms();
    /* one RTM_DELLINK for the whole group, or one per veth by name */
    for (long i = 0; i < (group_teardown ? 1 : n); i++) {
        struct msg m;
        struct ifinfomsg *ifi = msg_init(&m, lbuf, sizeof(lbuf), RTM_DELLINK,
                                         NLM_F_ACK, ++seq, sizeof(*ifi));
        ifi->ifi_family = AF_UNSPEC;
        if (group_teardown) {
            put_u32(&m, IFLA_GROUP, TEARDOWN_GROUP);
        } else {
            char name[IFNAMSIZ];
            snprintf(name, sizeof(name), "v%d", (int)i);
            put_str(&m, IFLA_IFNAME, name);
        }
        nl_send(hostfd, lbuf, m.h->nlmsg_len);
        nl_acks(hostfd, 1, group_teardown ? "teardown(group)" : "teardown", i);
    }
    t1 = now_ms();
    printf("teardown_ms=%.1f teardown_per_container_ms=%.4f teardown_mode=%s\n",
           t1 - t0, (t1 - t0) / n, group_teardown ? "group" : "per-veth");
    fflush(stdout);

    if (do_verify) {
        int left = 0;
        nl_dump(hostfd, RTM_GETLINK, AF_UNSPEC, 900001, count_host_cb, &left);
        if (left != 1 + nbr) {
            fprintf(stderr, "floor: verify: %d links left after teardown, want %d\n",
                    left, 1 + nbr);
            return 1;
        }
        printf("verify_teardown=ok host_links=%d\n", left);
    }
    /* container netns are released when their fds close at exit */
    return 0;
}
