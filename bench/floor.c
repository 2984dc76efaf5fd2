/*
 * bench/floor.c: the "floor" baseline for pipework-style attaches.
 *
 * This is the lowest-overhead way we know to do the per-container work with
 * plain rtnetlink from userspace, so that the Node library can be compared
 * with it.  Per container:
 *
 *   host netns, 1 request:   RTM_NEWLINK  veth "v<i>", IFLA_MASTER=br<k>,
 *                            IFF_UP, peer born inside the container netns
 *                            (IFLA_NET_NS_FD inside VETH_INFO_PEER) already
 *                            named "eth1"
 *   container netns, 1 sendmsg carrying 3 requests (NLM_F_ACK on each):
 *                            RTM_NEWADDR  10.k.x.y/16 brd 10.k.255.255
 *                            RTM_NEWLINK  eth1 up
 *                            RTM_NEWROUTE replace default via 10.k.0.1,
 *                                         proto boot
 *   every ACK is read and must carry errno 0.
 *
 * Peer ifindex: we do NOT look it up.  The peer is created in a fresh netns,
 * so we ask the kernel for a fixed ifindex (ifinfomsg.ifi_index inside
 * VETH_INFO_PEER; ifindexes are per-netns).  The value is probed once: the
 * highest ifindex present in the first fresh netns, plus one (2 on a kernel
 * that has only "lo" in a new netns; more if fallback tunnel devices such
 * as tunl0/sit0 are auto-created).  A lookup would cost one more round trip
 * (RTM_GETLINK) per container.
 *
 * Container netns: anonymous, unshare(CLONE_NEWNET) + open
 * /proc/thread-self/ns/net + setns() back; they are only held by the fd and
 * vanish when the process exits.
 *
 * Address scheme: bridge k (k = i / per_bridge) is "br<k>" with 10.k.0.1/16;
 * container j on that bridge gets 10.k.0.0 + (j + 2), broadcast 10.k.255.255.
 *
 * SAFETY: the program never touches the netns it was started in.  First
 * thing it does is unshare(CLONE_NEWNET) into a brand-new private netns (the
 * programmatic equivalent of re-exec'ing under `unshare --net`), checks that
 * it really is a different netns and that it contains nothing but "lo", and
 * refuses to run otherwise.  Everything (bridges, veths, containers) lives
 * in that private netns and disappears when the process exits.
 *
 * Build:  gcc -O2 -o bench/out/floor bench/floor.c
 * Usage:  bench/out/floor N [PER_BRIDGE] [--verify] [--group-teardown] [--no-ipv6]
 *                         [--no-teardown]
 *
 * Output (stdout, key=value tokens):
 *   impl=floor n=.. bridges=.. per_bridge=.. peer_ifindex=..
 *   netns_ms=..                       (creating N anonymous netns)
 *   attach_ms=.. per_container_ms=..  (the per-container work above)
 *   verify=ok ...                     (with --verify)
 *   teardown_ms=.. teardown_per_container_ms=..
 *
 * --no-ipv6 is a diagnostic: it disables IPv6 inside each container netns
 * (at netns creation, untimed) to show how much of the attach cost is the
 * kernel's IPv6 autoconf traffic (DAD/MLD multicast from each new eth1,
 * flooded by the bridge to every port) rather than our requests.
 *
 * Teardown: one RTM_DELLINK (by name, with ACK) per host-side veth; the
 * kernel deletes the peer with it.  With --group-teardown the host ends are
 * created with IFLA_GROUP set and teardown is one RTM_DELLINK by IFLA_GROUP
 * (a single batched unregister in the kernel) instead.  With --no-teardown
 * there is no teardown: everything goes when the process exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
#define MAXACK 8
static void nl_acks(int fd, int want, const char *ctx, long idx)
{
    static char bufs[MAXACK][512] __attribute__((aligned(NLMSG_ALIGNTO)));
    struct iovec iov[MAXACK];
    struct mmsghdr mm[MAXACK];
    int got = 0;
    while (got < want) {
        int n = want - got;
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

static char dumpbuf[65536] __attribute__((aligned(NLMSG_ALIGNTO)));

typedef void (*dump_cb)(struct nlmsghdr *h, void *ctx);

static void nl_dump(int fd, uint16_t type, int family, uint32_t seq, dump_cb cb, void *ctx)
{
    ALIGNED_BUF(req, 256);
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
        ssize_t len = recv(fd, dumpbuf, sizeof(dumpbuf), 0);
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

struct host_ctx { int nbr; int *bridx; int *ports; int total; int up; };

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
    for (int k = 0; k < c->nbr; k++)
        if ((uint32_t)c->bridx[k] == master) {
            c->ports[k]++;
            if ((ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_LOWER_UP))
                c->up++;
        }
}

struct ct_ctx {
    int peer_idx; uint32_t addr, brd, gw;
    int addr_ok, link_ok, route_ok;
};

static void ct_cb(struct nlmsghdr *h, void *vctx)
{
    struct ct_ctx *c = vctx;
    if (h->nlmsg_type == RTM_NEWADDR) {
        struct ifaddrmsg *ifa = NLMSG_DATA(h);
        struct rtattr *tb[IFA_MAX + 1];
        parse_attrs(tb, IFA_MAX, IFA_RTA(ifa), IFA_PAYLOAD(h));
        if ((int)ifa->ifa_index == c->peer_idx && ifa->ifa_prefixlen == 16 &&
            tb[IFA_LOCAL] && *(uint32_t *)RTA_DATA(tb[IFA_LOCAL]) == c->addr &&
            tb[IFA_BROADCAST] && *(uint32_t *)RTA_DATA(tb[IFA_BROADCAST]) == c->brd)
            c->addr_ok++;
    } else if (h->nlmsg_type == RTM_NEWLINK) {
        struct ifinfomsg *ifi = NLMSG_DATA(h);
        struct rtattr *tb[IFLA_MAX + 1];
        parse_attrs(tb, IFLA_MAX, IFLA_RTA(ifi), IFLA_PAYLOAD(h));
        if (ifi->ifi_index == c->peer_idx && tb[IFLA_IFNAME] &&
            !strcmp(RTA_DATA(tb[IFLA_IFNAME]), "eth1") &&
            (ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_LOWER_UP))
            c->link_ok++;
    } else if (h->nlmsg_type == RTM_NEWROUTE) {
        struct rtmsg *r = NLMSG_DATA(h);
        struct rtattr *tb[RTA_MAX + 1];
        parse_attrs(tb, RTA_MAX, RTM_RTA(r), RTM_PAYLOAD(h));
        if (r->rtm_dst_len == 0 && r->rtm_table == RT_TABLE_MAIN &&
            r->rtm_protocol == RTPROT_BOOT && tb[RTA_GATEWAY] &&
            *(uint32_t *)RTA_DATA(tb[RTA_GATEWAY]) == c->gw && tb[RTA_OIF] &&
            (int)*(uint32_t *)RTA_DATA(tb[RTA_OIF]) == c->peer_idx)
            c->route_ok++;
    }
}

static void verify(int hostfd, int n, int per_bridge, int nbr, int *bridx,
                   int *nsfd, int peer_idx)
{
    int ports[256] = {0};
    struct host_ctx hc = { nbr, bridx, ports, 0, 0 };
    nl_dump(hostfd, RTM_GETLINK, AF_UNSPEC, 900000, host_link_cb, &hc);
    for (int k = 0; k < nbr; k++) {
        int want = (k == nbr - 1) ? n - k * per_bridge : per_bridge;
        if (ports[k] != want) {
            fprintf(stderr, "floor: verify: br%d has %d ports, want %d\n", k, ports[k], want);
            exit(1);
        }
    }
    if (hc.up != n) {
        fprintf(stderr, "floor: verify: %d of %d host veths are UP,LOWER_UP\n", hc.up, n);
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        int k = i / per_bridge, j = i % per_bridge;
        struct ct_ctx c = { peer_idx, addr_of(k, j), brd_of(k), gw_of(k), 0, 0, 0 };
        int fd = nl_socket_in(nsfd[i]);
        nl_dump(fd, RTM_GETLINK, AF_UNSPEC, 1, ct_cb, &c);
        nl_dump(fd, RTM_GETADDR, AF_INET, 2, ct_cb, &c);
        nl_dump(fd, RTM_GETROUTE, AF_INET, 3, ct_cb, &c);
        close(fd);
        if (c.addr_ok != 1 || c.link_ok != 1 || c.route_ok != 1) {
            fprintf(stderr, "floor: verify: container %d: eth1 up=%d addr=%d default-route=%d\n",
                    i, c.link_ok, c.addr_ok, c.route_ok);
            exit(1);
        }
    }
    printf("verify=ok host_links=%d bridge_ports=%d containers_checked=%d\n",
           hc.total, n, n);
    fflush(stdout);
}

static void count_host_cb(struct nlmsghdr *h, void *vctx)
{
    (void)h;
    ++*(int *)vctx;
}

/* ---------- main ---------- */

int main(int argc, char **argv)
{
    long n = -1, per_bridge = 1000;
    int do_verify = 0, group_teardown = 0, no_ipv6 = 0, no_teardown = 0, npos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verify"))
            do_verify = 1;
        else if (!strcmp(argv[i], "--group-teardown"))
            group_teardown = 1;
        else if (!strcmp(argv[i], "--no-ipv6"))
            no_ipv6 = 1;
        else if (!strcmp(argv[i], "--no-teardown"))
            no_teardown = 1;
        else if (argv[i][0] != '-' && npos == 0) {
            n = strtol(argv[i], NULL, 10);
            npos++;
        } else if (argv[i][0] != '-' && npos == 1) {
            per_bridge = strtol(argv[i], NULL, 10);
            npos++;
        } else {
            fprintf(stderr, "usage: %s N [PER_BRIDGE] [--verify] [--group-teardown] [--no-ipv6] [--no-teardown]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || per_bridge < 1 || per_bridge > 65000) {
        fprintf(stderr, "usage: %s N [PER_BRIDGE(1..65000, default 1000)] [--verify] [--group-teardown] [--no-ipv6] [--no-teardown]\n", argv[0]);
        return 2;
    }
    int nbr = (n + per_bridge - 1) / per_bridge;
    if (nbr > 256)
        dief("too many bridges (max 256): raise PER_BRIDGE");
    if (per_bridge > 1024)
        fprintf(stderr, "floor: warning: a Linux bridge holds at most 1024 ports\n");

    enter_private_netns();

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
        rl.rlim_cur = n + 64;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            die("setrlimit(RLIMIT_NOFILE)");
    }

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
    printf("impl=floor n=%ld bridges=%d per_bridge=%ld peer_ifindex=%d%s\n",
           n, nbr, per_bridge, peer_idx, no_ipv6 ? " container_ipv6=off" : "");
    printf("netns_ms=%.1f\n", t1 - t0);
    fflush(stdout);

    /* ---- attach ---- */
    ALIGNED_BUF(lbuf, 1024);
    ALIGNED_BUF(cbuf, 1024);
    t0 = now_ms();
    for (long i = 0; i < n; i++) {
        int k = i / per_bridge, j = i % per_bridge;
        char name[IFNAMSIZ];
        snprintf(name, sizeof(name), "v%d", (int)i);

        /* 1. host side: veth + master + up, peer "eth1" born in the container */
        struct msg m;
        struct ifinfomsg *ifi = msg_init(&m, lbuf, sizeof(lbuf), RTM_NEWLINK,
                                         NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                                         ++seq, sizeof(*ifi));
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_flags = IFF_UP;
        ifi->ifi_change = IFF_UP;
        put_str(&m, IFLA_IFNAME, name);
        put_u32(&m, IFLA_MASTER, bridx[k]);
        if (group_teardown)
            put_u32(&m, IFLA_GROUP, TEARDOWN_GROUP);
        struct rtattr *li = nest_begin(&m, IFLA_LINKINFO);
        put_str(&m, IFLA_INFO_KIND, "veth");
        struct rtattr *data = nest_begin(&m, IFLA_INFO_DATA);
        struct rtattr *peer = nest_begin(&m, VETH_INFO_PEER);
        struct ifinfomsg *pifi = put_raw(&m, sizeof(struct ifinfomsg));
        pifi->ifi_family = AF_UNSPEC;
        pifi->ifi_index = peer_idx;          /* fixed ifindex, see header */
        put_str(&m, IFLA_IFNAME, "eth1");
        put_u32(&m, IFLA_NET_NS_FD, nsfd[i]);
        nest_end(&m, peer);
        nest_end(&m, data);
        nest_end(&m, li);
        nl_send(hostfd, lbuf, m.h->nlmsg_len);
        nl_acks(hostfd, 1, "host", i);

        /* 2. container side: one sendmsg, three requests, three acks */
        int cfd = nl_socket_in(nsfd[i]);
        uint32_t addr = addr_of(k, j), brd = brd_of(k), gw = gw_of(k);
        size_t off = 0;
        struct msg c;

        struct ifaddrmsg *ifa = msg_init(&c, cbuf, sizeof(cbuf), RTM_NEWADDR,
                                         NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                                         1, sizeof(*ifa));
        ifa->ifa_family = AF_INET;
        ifa->ifa_prefixlen = 16;
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        ifa->ifa_index = peer_idx;
        put(&c, IFA_LOCAL, &addr, 4);
        put(&c, IFA_ADDRESS, &addr, 4);
        put(&c, IFA_BROADCAST, &brd, 4);
        off += NLMSG_ALIGN(c.h->nlmsg_len);

        struct ifinfomsg *up = msg_init(&c, cbuf + off, sizeof(cbuf) - off,
                                        RTM_NEWLINK, NLM_F_ACK, 2, sizeof(*up));
        up->ifi_family = AF_UNSPEC;
        up->ifi_index = peer_idx;
        up->ifi_flags = IFF_UP;
        up->ifi_change = IFF_UP;
        off += NLMSG_ALIGN(c.h->nlmsg_len);

        struct rtmsg *rt = msg_init(&c, cbuf + off, sizeof(cbuf) - off,
                                    RTM_NEWROUTE,
                                    NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
                                    3, sizeof(*rt));
        rt->rtm_family = AF_INET;
        rt->rtm_table = RT_TABLE_MAIN;
        rt->rtm_protocol = RTPROT_BOOT;
        rt->rtm_scope = RT_SCOPE_UNIVERSE;
        rt->rtm_type = RTN_UNICAST;
        put(&c, RTA_GATEWAY, &gw, 4);
        put_u32(&c, RTA_OIF, peer_idx);
        off += NLMSG_ALIGN(c.h->nlmsg_len);

        nl_send(cfd, cbuf, off);
        nl_acks(cfd, 3, "container", i);
        close(cfd);
    }
    t1 = now_ms();
    printf("attach_ms=%.1f per_container_ms=%.4f\n", t1 - t0, (t1 - t0) / n);
    fflush(stdout);

    if (do_verify)
        verify(hostfd, n, per_bridge, nbr, bridx, nsfd, peer_idx);

    /* ---- teardown: delete every host-side veth (peer goes with it) ---- */
    if (no_teardown)
        return 0;             /* everything goes with our netns at exit */
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
