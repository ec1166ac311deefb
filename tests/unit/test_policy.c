/* test_policy.c: "does it matter" and debouncing, driven end to end from
 * canned rtnetlink bytes through rtnl_decode into policy_feed.
 *
 * The host in these tests: lo (1), eth0 (2) holding the listen address
 * 10.0.0.5/24, eth1 (3) carrying the IPv4 default route, eth2 (4) with an
 * unrelated address. All usable at the start. */
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

#include "netmon/policy.h"
#include "netmon/rtnl.h"

#ifndef IFLA_OPERSTATE
#define IFLA_OPERSTATE 16
#endif
#define OPER_DOWN       2
#define OPER_LLDOWN     3
#define OPER_DORMANT    5
#define OPER_UP         6
#define UPRUN           (IFF_UP | IFF_RUNNING)
#define DEBOUNCE        2000

static union {
    struct nlmsghdr h;
    char            b[4096];
} mb;

static struct policy_decision dec;

static const char *
ifname_of(int idx)
{
    static const char *names[] = { "?", "lo", "eth0", "eth1", "eth2", "eth3" };
    return idx >= 1 && idx <= 5 ? names[idx] : "new0";
}

static struct nlmsghdr *
msg_link(uint16_t type, int idx, unsigned flags, int oper)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(mb.b);
    struct ifinfomsg *ifi;

    nlh->nlmsg_type = type;
    ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_index = idx;
    ifi->ifi_flags = flags;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname_of(idx));
    mnl_attr_put_u8(nlh, IFLA_OPERSTATE, (uint8_t)oper);
    return nlh;
}

static struct nlmsghdr *
msg_addr(uint16_t type, int idx, const char *addr, uint8_t plen,
         uint32_t flags)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(mb.b);
    int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    struct ifaddrmsg *ifa;
    unsigned char a[16];

    nlh->nlmsg_type = type;
    ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = (uint8_t)family;
    ifa->ifa_index = (uint32_t)idx;
    ifa->ifa_prefixlen = plen;
    inet_pton(family, addr, a);
    mnl_attr_put(nlh, IFA_ADDRESS, family == AF_INET ? 4 : 16, a);
    if (flags)
        mnl_attr_put_u32(nlh, IFA_FLAGS, flags);
    return nlh;
}

static struct nlmsghdr *
msg_route(uint16_t type, int family, uint8_t dst_len, int oif)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(mb.b);
    struct rtmsg *rtm;

    nlh->nlmsg_type = type;
    rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = (uint8_t)family;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_type = RTN_UNICAST;
    rtm->rtm_dst_len = dst_len;
    mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)oif);
    return nlh;
}

/* Decodes the message and feeds each event; the verdict (and `dec`) of the
 * last event is returned. -1 if the bytes did not decode. */
static int
feed(struct policy *p, const struct nlmsghdr *nlh, uint64_t now)
{
    struct rtnl_event ev[4];
    size_t n;
    int v = POLICY_IGNORE;

    if (rtnl_decode(nlh, nlh->nlmsg_len, ev, 4, &n) < 0 || n == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        v = (int)policy_feed(p, &ev[i], now, &dec);
    return v;
}

/* The host described at the top, learnt through a first sync. */
static int
seed(struct policy *p, bool with_eth2_addr)
{
    int loud = 0;

    policy_sync_begin(p);
    loud += feed(p, msg_link(RTM_NEWLINK, 1, UPRUN | IFF_LOOPBACK, 0), 0);
    for (int idx = 2; idx <= 4; idx++)
        loud += feed(p, msg_link(RTM_NEWLINK, idx, UPRUN, OPER_UP), 0);
    loud += feed(p, msg_addr(RTM_NEWADDR, 1, "127.0.0.1", 8, 0), 0);
    loud += feed(p, msg_addr(RTM_NEWADDR, 2, "10.0.0.5", 24, 0), 0);
    loud += feed(p, msg_addr(RTM_NEWADDR, 3, "192.168.1.5", 24, 0), 0);
    if (with_eth2_addr)
        loud += feed(p, msg_addr(RTM_NEWADDR, 4, "172.16.0.9", 16, 0), 0);
    loud += feed(p, msg_route(RTM_NEWROUTE, AF_INET, 0, 3), 0);
    loud += (int)policy_sync_end(p, 0, &dec);
    return loud;
}

static struct policy *
host(const char *listen1, const char *listen2)
{
    struct conf_listen l[2];
    size_t n = 0;
    struct policy *p;

    memset(l, 0, sizeof(l));
    if (listen1)
        snprintf(l[n++].addr, sizeof(l[0].addr), "%s", listen1);
    if (listen2)
        snprintf(l[n++].addr, sizeof(l[0].addr), "%s", listen2);
    p = policy_new(l, n, DEBOUNCE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(seed(p, true), POLICY_IGNORE);
    return p;
}

static void
test_link_down_up(void)
{
    struct policy *p = host("10.0.0.5", NULL);

    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, 0, OPER_DOWN), 1000),
                    POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "eth0: link down");
    CU_ASSERT_STRING_EQUAL(dec.ifname, "eth0");
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, UPRUN, OPER_UP), 9000),
                    POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "eth0: link up");
    /* Same state again (an MTU change, a promisc flip): nothing new. */
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, UPRUN | IFF_PROMISC,
                                     OPER_UP), 20000), POLICY_IGNORE);
    policy_free(p);
}

/* Carrier loss looks like the veth peer going down: UP stays, RUNNING goes. */
static void
test_carrier_lost(void)
{
    struct policy *p = host("10.0.0.5", NULL);

    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, IFF_UP, OPER_LLDOWN),
                         1000), POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "eth0: carrier lost (lowerlayerdown)");
    policy_free(p);

    /* RUNNING set but operstate not up (dormant, 802.1X pending). */
    p = host("10.0.0.5", NULL);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, UPRUN, OPER_DORMANT),
                         1000), POLICY_CHANGE);
    policy_free(p);
}

static void
test_addr_on_listen_iface(void)
{
    struct policy *p = host("10.0.0.5", NULL);

    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 2, "10.0.0.77", 24, 0),
                         1000), POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "eth0: address 10.0.0.77/24 added");
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_DELADDR, 2, "10.0.0.5", 24, 0),
                         9000), POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "eth0: address 10.0.0.5/24 removed");
    /* The listen address gone, eth0 no longer matters. */
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, 0, OPER_DOWN), 20000),
                    POLICY_IGNORE);
    /* Coming back on another interface makes that one matter. */
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 4, "10.0.0.5", 24, 0),
                         30000), POLICY_CHANGE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 4, 0, OPER_DOWN), 40000),
                    POLICY_CHANGE);
    policy_free(p);
}

/* IPv6 re-sends NEWADDR on every lifetime refresh; privacy addresses
 * rotate on a timer. Neither is a change a connection could notice. */
static void
test_addr_refresh_and_temporary(void)
{
    struct policy *p = host("10.0.0.5", "2001:db8::5");

    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 2, "10.0.0.5", 24, 0),
                         1000), POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 2, "2001:db8::99", 64,
                                     IFA_F_TEMPORARY), 2000), POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_DELADDR, 2, "2001:db8::99", 64,
                                     IFA_F_TEMPORARY), 9000), POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 2, "2001:db8::5", 64, 0),
                         20000), POLICY_CHANGE);
    policy_free(p);
}

static void
test_unrelated_iface(void)
{
    struct policy *p = host("10.0.0.5", NULL);

    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 4, 0, OPER_DOWN), 1000),
                    POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_DELADDR, 4, "172.16.0.9", 16, 0),
                         1100), POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 4, "172.16.0.10", 16, 0),
                         1200), POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_DELLINK, 4, 0, OPER_DOWN), 1300),
                    POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_route(RTM_NEWROUTE, AF_INET, 16, 4), 1400),
                    POLICY_IGNORE);
    CU_ASSERT_EQUAL(policy_next_deadline(p), UINT64_MAX);
    policy_free(p);
}

static void
test_wildcard(void)
{
    const char *wild[] = { "0.0.0.0", "::", "not-an-address" };

    for (int i = 0; i < 3; i++) {
        struct policy *p = host("10.0.0.5", wild[i]);
        CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 4, 0, OPER_DOWN), 1000),
                        POLICY_CHANGE);
        CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 1, "127.0.0.2", 8, 0),
                             1000), POLICY_CHANGE);
        policy_free(p);
    }
    /* A listen address reached as v4-mapped IPv6 is still 10.0.0.5. */
    struct policy *p = host("::ffff:10.0.0.5", NULL);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, 0, OPER_DOWN), 1000),
                    POLICY_CHANGE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 4, 0, OPER_DOWN), 1000),
                    POLICY_IGNORE);
    policy_free(p);
}

static void
test_default_route(void)
{
    struct policy *p = host("10.0.0.5", NULL);

    /* eth1 carries the default route: its address and link matter. */
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 3, "192.168.1.6", 24, 0),
                         1000), POLICY_CHANGE);
    CU_ASSERT_EQUAL(feed(p, msg_route(RTM_NEWROUTE, AF_INET, 0, 3), 9000),
                    POLICY_IGNORE);         /* already known */
    CU_ASSERT_EQUAL(feed(p, msg_route(RTM_DELROUTE, AF_INET, 0, 3), 20000),
                    POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "eth1: IPv4 default route removed");
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 3, 0, OPER_DOWN), 30000),
                    POLICY_IGNORE);         /* no longer interesting */
    /* The default moving to eth2 is a change, and eth2 now matters. */
    CU_ASSERT_EQUAL(feed(p, msg_route(RTM_NEWROUTE, AF_INET6, 0, 4), 40000),
                    POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "eth2: IPv6 default route added");
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 4, IFF_UP, OPER_LLDOWN),
                         50000), POLICY_CHANGE);
    policy_free(p);
}

/* Ten flaps inside the window: one CHANGE; the window closes once, after
 * the last flap; a later change opens a new one. */
static void
test_debounce(void)
{
    struct policy *p = host("10.0.0.5", NULL);
    struct policy_decision d;
    int changes = 0, extends = 0;
    uint64_t t = 1000;

    for (int i = 0; i < 10; i++, t += 300) {
        int v = feed(p, msg_link(RTM_NEWLINK, 2, i % 2 ? UPRUN : 0,
                                 i % 2 ? OPER_UP : OPER_DOWN), t);
        changes += v == POLICY_CHANGE;
        extends += v == POLICY_EXTEND;
    }
    CU_ASSERT_EQUAL(changes, 1);
    CU_ASSERT_EQUAL(extends, 9);
    t -= 300;                                   /* time of the last flap */
    CU_ASSERT_EQUAL(policy_next_deadline(p), t + DEBOUNCE);
    CU_ASSERT_EQUAL(policy_poll(p, t + DEBOUNCE - 1, &d), 0);
    CU_ASSERT_EQUAL(policy_poll(p, t + DEBOUNCE, &d), 1);
    CU_ASSERT_EQUAL(d.suppressed, 9);
    CU_ASSERT_STRING_EQUAL(d.ifname, "eth0");
    CU_ASSERT_EQUAL(policy_poll(p, t + DEBOUNCE, &d), 0);
    CU_ASSERT_EQUAL(policy_next_deadline(p), UINT64_MAX);

    t += DEBOUNCE + 5000;
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, 0, OPER_DOWN), t),
                    POLICY_CHANGE);
    /* Another interface is debounced on its own. */
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 3, 0, OPER_DOWN), t + 1),
                    POLICY_CHANGE);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_DELADDR, 2, "10.0.0.5", 24, 0),
                         t + 2), POLICY_EXTEND);
    policy_free(p);
}

static void
test_link_lifecycle(void)
{
    struct policy *p = host("0.0.0.0", NULL);

    /* A new interface, and its first time up, cannot break a connection. */
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 9, 0, OPER_DOWN), 1000),
                    POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 9, IFF_UP, OPER_LLDOWN),
                         1100), POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 9, UPRUN, OPER_UP), 1200),
                    POLICY_IGNORE);
    /* Once it has been usable, losing it matters, and so does recovery. */
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 9, 0, OPER_DOWN), 1300),
                    POLICY_CHANGE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 9, UPRUN, OPER_UP), 9000),
                    POLICY_CHANGE);
    /* Deleted while usable: news. Deleted after going down: already said. */
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_DELLINK, 9, UPRUN, OPER_UP), 20000),
                    POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "new0: removed");
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 4, 0, OPER_DOWN), 30000),
                    POLICY_CHANGE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_DELLINK, 4, 0, OPER_DOWN), 40000),
                    POLICY_IGNORE);
    policy_free(p);
}

/* After lost events: a dump identical to the state is silent; a dump that
 * no longer shows the listen address reports its removal once. */
static void
test_resync(void)
{
    struct policy *p = host("10.0.0.5", NULL);

    CU_ASSERT_EQUAL(seed(p, true), POLICY_IGNORE);
    CU_ASSERT_EQUAL(policy_next_deadline(p), UINT64_MAX);

    policy_sync_begin(p);
    feed(p, msg_link(RTM_NEWLINK, 1, UPRUN | IFF_LOOPBACK, 0), 1000);
    feed(p, msg_link(RTM_NEWLINK, 2, UPRUN, OPER_UP), 1000);
    feed(p, msg_link(RTM_NEWLINK, 3, UPRUN, OPER_UP), 1000);
    feed(p, msg_addr(RTM_NEWADDR, 3, "192.168.1.5", 24, 0), 1000);
    feed(p, msg_route(RTM_NEWROUTE, AF_INET, 0, 3), 1000);
    CU_ASSERT_EQUAL(policy_sync_end(p, 1000, &dec), POLICY_CHANGE);
    CU_ASSERT_STRING_EQUAL(dec.what, "eth0: address 10.0.0.5/24 removed");
    /* eth2 vanished too, but it never mattered. */
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 4, 0, OPER_DOWN), 9000),
                    POLICY_IGNORE);
    policy_free(p);

    /* A link found down by the dump is reported while the dump runs. */
    p = host("10.0.0.5", NULL);
    policy_sync_begin(p);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, 0, OPER_DOWN), 1000),
                    POLICY_CHANGE);
    policy_free(p);
}

/* The first sync only learns: a host full of addresses is not a change. */
static void
test_first_sync_quiet(void)
{
    struct conf_listen l;
    struct policy *p;

    memset(&l, 0, sizeof(l));
    snprintf(l.addr, sizeof(l.addr), "0.0.0.0");
    p = policy_new(&l, 1, DEBOUNCE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(seed(p, true), POLICY_IGNORE);
    CU_ASSERT_EQUAL(policy_next_deadline(p), UINT64_MAX);
    /* Without any sync the tables start empty and work the same. */
    policy_free(p);
    p = policy_new(&l, 1, DEBOUNCE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, UPRUN, OPER_UP), 0),
                    POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, 0, OPER_DOWN), 10),
                    POLICY_CHANGE);
    policy_free(p);
}

/* Full tables: the interface beyond capacity is counted, not tracked. */
static void
test_table_full(void)
{
    struct policy *p = host("10.0.0.5", NULL);

    for (int idx = 100; idx < 100 + POLICY_MAX_IFACES; idx++)
        feed(p, msg_link(RTM_NEWLINK, idx, UPRUN, OPER_UP), 1000);
    CU_ASSERT_TRUE(policy_dropped(p) > 0);
    /* The ones already known still work. */
    CU_ASSERT_EQUAL(feed(p, msg_link(RTM_NEWLINK, 2, 0, OPER_DOWN), 2000),
                    POLICY_CHANGE);
    policy_free(p);
}

/* The kernel re-adds an IPv6 link-local address ~2 s after link-up; that
 * must not count as a second change (the link event already did), even on
 * the listen interface or with a wildcard listener. A listener on the
 * link-local address itself does care. */
static void
test_linklocal_ignored(void)
{
    struct policy *p = host("10.0.0.5", NULL);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 2, "fe80::1", 64, 0),
                         100000), POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_DELADDR, 2, "fe80::1", 64, 0),
                         200000), POLICY_IGNORE);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 2, "2001:db8::5", 64, 0),
                         300000), POLICY_CHANGE);
    policy_free(p);

    p = host("::", NULL);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 3, "fe80::2", 64, 0),
                         100000), POLICY_IGNORE);
    policy_free(p);

    p = host("fe80::7", NULL);
    CU_ASSERT_EQUAL(feed(p, msg_addr(RTM_NEWADDR, 2, "fe80::7", 64, 0),
                         100000), POLICY_CHANGE);
    policy_free(p);
}

static CU_TestInfo tests[] = {
    { "link down and up", test_link_down_up },
    { "carrier lost", test_carrier_lost },
    { "address on listen interface", test_addr_on_listen_iface },
    { "address refresh and temporary", test_addr_refresh_and_temporary },
    { "unrelated interface", test_unrelated_iface },
    { "wildcard listen", test_wildcard },
    { "default route", test_default_route },
    { "debounce", test_debounce },
    { "link lifecycle", test_link_lifecycle },
    { "resync", test_resync },
    { "first sync quiet", test_first_sync_quiet },
    { "table full", test_table_full },
    { "IPv6 link-local ignored", test_linklocal_ignored },
    CU_TEST_INFO_NULL
};
UNIT_SUITE("policy", NULL, NULL, tests);
