/* test_rtnl.c: the rtnetlink decoder against canned kernel messages, and
 * against truncated, corrupted and oversized ones (ASan watches the reads:
 * each malformed case is decoded from an exact-size heap copy). */
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>

#include "netmon/rtnl.h"

#ifndef IFLA_OPERSTATE
#define IFLA_OPERSTATE 16
#endif
#define OPER_UP   6
#define OPER_DOWN 2

static union {
    struct nlmsghdr h;
    char            b[16384];
} mb;

static struct rtnl_event ev[64];
static size_t nev;

static struct nlmsghdr *
at(size_t off)
{
    return (struct nlmsghdr *)(mb.b + off);
}

static size_t
end_of(const struct nlmsghdr *nlh)
{
    return (size_t)((const char *)nlh - mb.b) + MNL_ALIGN(nlh->nlmsg_len);
}

static struct nlmsghdr *
put_link(size_t off, uint16_t type, int idx, unsigned flags, const char *name,
         int oper)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(at(off));
    struct ifinfomsg *ifi;

    nlh->nlmsg_type = type;
    ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_index = idx;
    ifi->ifi_flags = flags;
    ifi->ifi_change = 0x1;
    if (name)
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if (oper >= 0)
        mnl_attr_put_u8(nlh, IFLA_OPERSTATE, (uint8_t)oper);
    return nlh;
}

static struct nlmsghdr *
put_addr(size_t off, uint16_t type, int family, int idx, const char *local,
         const char *peer, uint8_t plen)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(at(off));
    struct ifaddrmsg *ifa;
    unsigned char a[16];
    size_t alen = family == AF_INET ? 4 : 16;

    nlh->nlmsg_type = type;
    ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = (uint8_t)family;
    ifa->ifa_index = (uint32_t)idx;
    ifa->ifa_prefixlen = plen;
    if (peer && inet_pton(family, peer, a) == 1)
        mnl_attr_put(nlh, IFA_ADDRESS, alen, a);
    if (local && inet_pton(family, local, a) == 1)
        mnl_attr_put(nlh, IFA_LOCAL, alen, a);
    return nlh;
}

static struct nlmsghdr *
put_route(size_t off, uint16_t type, int family, uint8_t table,
          uint8_t dst_len, int oif, const char *gw)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(at(off));
    struct rtmsg *rtm;
    unsigned char a[16];

    nlh->nlmsg_type = type;
    rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = (uint8_t)family;
    rtm->rtm_table = table;
    rtm->rtm_dst_len = dst_len;
    rtm->rtm_type = RTN_UNICAST;
    if (oif > 0)
        mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)oif);
    if (gw && inet_pton(family, gw, a) == 1)
        mnl_attr_put(nlh, RTA_GATEWAY, family == AF_INET ? 4 : 16, a);
    return nlh;
}

/* Decode len bytes from an exact-size heap copy, so that any read past the
 * end is an ASan error rather than a read of our own stale bytes. */
static int
decode_copy(const void *src, size_t len, size_t max)
{
    void *copy = malloc(len ? len : 1);
    int rc;

    memcpy(copy, src, len);
    rc = rtnl_decode(copy, len, ev, max, &nev);
    free(copy);
    return rc;
}

static void
test_link(void)
{
    struct nlmsghdr *nlh = put_link(0, RTM_NEWLINK, 3, IFF_UP | IFF_RUNNING,
                                    "veth0", OPER_UP);

    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 1);
    CU_ASSERT_EQUAL(ev[0].kind, RTNL_LINK_NEW);
    CU_ASSERT_EQUAL(ev[0].ifindex, 3);
    CU_ASSERT_STRING_EQUAL(ev[0].ifname, "veth0");
    CU_ASSERT_EQUAL(ev[0].flags, IFF_UP | IFF_RUNNING);
    CU_ASSERT_EQUAL(ev[0].change, 0x1);
    CU_ASSERT_EQUAL(ev[0].operstate, OPER_UP);

    nlh = put_link(0, RTM_DELLINK, 4, 0, NULL, -1);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 1);
    CU_ASSERT_EQUAL(ev[0].kind, RTNL_LINK_DEL);
    CU_ASSERT_STRING_EQUAL(ev[0].ifname, "");
    CU_ASSERT_EQUAL(ev[0].operstate, -1);
}

/* IFLA_IFNAME is a STRING: a sender may omit the NUL or send a long one. */
static void
test_link_name_unterminated(void)
{
    struct nlmsghdr *nlh = put_link(0, RTM_NEWLINK, 3, 0, NULL, -1);

    mnl_attr_put(nlh, IFLA_IFNAME, 20, "abcdefghijklmnopqrst");
    CU_ASSERT_EQUAL(decode_copy(mb.b, nlh->nlmsg_len, 64), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 1);
    CU_ASSERT_STRING_EQUAL(ev[0].ifname, "abcdefghijklmno");
}

static void
test_addr(void)
{
    struct nlmsghdr *nlh;

    /* Point-to-point: IFA_LOCAL is ours, IFA_ADDRESS the peer. */
    nlh = put_addr(0, RTM_NEWADDR, AF_INET, 5, "10.0.0.1", "10.0.0.2", 32);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 1);
    CU_ASSERT_EQUAL(ev[0].kind, RTNL_ADDR_NEW);
    CU_ASSERT_EQUAL(ev[0].family, AF_INET);
    CU_ASSERT_EQUAL(ev[0].ifindex, 5);
    CU_ASSERT_EQUAL(ev[0].prefixlen, 32);
    CU_ASSERT_EQUAL(memcmp(ev[0].addr, "\x0a\x00\x00\x01", 4), 0);

    nlh = put_addr(0, RTM_DELADDR, AF_INET6, 6, NULL, "2001:db8::7", 64);
    mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_TEMPORARY | IFA_F_MANAGETEMPADDR);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 1);
    CU_ASSERT_EQUAL(ev[0].kind, RTNL_ADDR_DEL);
    CU_ASSERT_EQUAL(ev[0].family, AF_INET6);
    CU_ASSERT_EQUAL(ev[0].addr[0], 0x20);
    CU_ASSERT_EQUAL(ev[0].addr[15], 0x07);
    CU_ASSERT_EQUAL(ev[0].addr_flags, IFA_F_TEMPORARY | IFA_F_MANAGETEMPADDR);
}

static void
test_route(void)
{
    struct nlmsghdr *nlh;

    nlh = put_route(0, RTM_NEWROUTE, AF_INET, RT_TABLE_MAIN, 0, 2,
                    "10.0.0.254");
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 1);
    CU_ASSERT_EQUAL(ev[0].kind, RTNL_ROUTE_NEW);
    CU_ASSERT_EQUAL(ev[0].ifindex, 2);
    CU_ASSERT_TRUE(ev[0].is_default_route);
    CU_ASSERT_EQUAL(ev[0].addr[3], 254);

    nlh = put_route(0, RTM_NEWROUTE, AF_INET, RT_TABLE_MAIN, 24, 2, NULL);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 1);
    CU_ASSERT_FALSE(ev[0].is_default_route);

    /* A default in another table (VRF, policy routing) is not "the" one. */
    nlh = put_route(0, RTM_DELROUTE, AF_INET6, RT_TABLE_LOCAL, 0, 2, NULL);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 1);
    CU_ASSERT_EQUAL(ev[0].kind, RTNL_ROUTE_DEL);
    CU_ASSERT_FALSE(ev[0].is_default_route);

    /* Tables above 255 exist only in RTA_TABLE; it overrides rtm_table. */
    nlh = put_route(0, RTM_NEWROUTE, AF_INET, RT_TABLE_MAIN, 0, 2, NULL);
    mnl_attr_put_u32(nlh, RTA_TABLE, 1000);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_FALSE(ev[0].is_default_route);

    nlh = put_route(0, RTM_NEWROUTE, AF_INET, RT_TABLE_MAIN, 0, 2, NULL);
    ((struct rtmsg *)mnl_nlmsg_get_payload(nlh))->rtm_type = RTN_BLACKHOLE;
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, nlh->nlmsg_len, ev, 64, &nev), 0);
    CU_ASSERT_FALSE(ev[0].is_default_route);
}

static struct nlmsghdr *
put_multipath(int idx1, int idx2)
{
    struct nlmsghdr *nlh = put_route(0, RTM_NEWROUTE, AF_INET, RT_TABLE_MAIN,
                                     0, 0, NULL);
    struct nlattr *mp = mnl_attr_nest_start(nlh, RTA_MULTIPATH);
    int idx[2] = { idx1, idx2 };

    for (int i = 0; i < 2; i++) {
        struct rtnexthop *nh = mnl_nlmsg_get_payload_tail(nlh);
        uint32_t gw = htonl(0x0a000001u + (uint32_t)i);
        memset(nh, 0, sizeof(*nh));
        nh->rtnh_ifindex = idx[i];
        nlh->nlmsg_len += sizeof(*nh);
        mnl_attr_put(nlh, RTA_GATEWAY, 4, &gw);
        nh->rtnh_len = (unsigned short)((char *)mnl_nlmsg_get_payload_tail(nlh)
                                        - (char *)nh);
    }
    mnl_attr_nest_end(nlh, mp);
    return nlh;
}

static void
test_route_multipath(void)
{
    struct nlmsghdr *nlh = put_multipath(7, 8);

    CU_ASSERT_EQUAL(decode_copy(mb.b, nlh->nlmsg_len, 64), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 2);
    CU_ASSERT_EQUAL(ev[0].ifindex, 7);
    CU_ASSERT_EQUAL(ev[1].ifindex, 8);
    CU_ASSERT_TRUE(ev[0].is_default_route && ev[1].is_default_route);
    CU_ASSERT_EQUAL(ev[1].addr[3], 2);

    /* A hop claiming more bytes than the attribute holds. */
    struct nlattr *mp = (struct nlattr *)((char *)mnl_nlmsg_get_payload(nlh)
                                          + MNL_ALIGN(sizeof(struct rtmsg)));
    struct rtnexthop *nh = mnl_attr_get_payload(mp);
    nh->rtnh_len = 200;
    CU_ASSERT_EQUAL(decode_copy(mb.b, nlh->nlmsg_len, 64), -1);
    CU_ASSERT_EQUAL(errno, EBADMSG);
}

/* link + addr + route + NLMSG_DONE in one datagram, the shape of a dump. */
static size_t
build_multi(void)
{
    struct nlmsghdr *nlh;
    size_t off;

    nlh = put_link(0, RTM_NEWLINK, 2, IFF_UP, "eth0", OPER_DOWN);
    off = end_of(nlh);
    nlh = put_addr(off, RTM_NEWADDR, AF_INET6, 2, NULL, "fe80::1", 64);
    off = end_of(nlh);
    nlh = put_route(off, RTM_NEWROUTE, AF_INET6, RT_TABLE_MAIN, 0, 2, NULL);
    off = end_of(nlh);
    nlh = mnl_nlmsg_put_header(at(off));
    nlh->nlmsg_type = NLMSG_DONE;
    mnl_nlmsg_put_extra_header(nlh, sizeof(int));
    return end_of(nlh);
}

static void
test_multi_message(void)
{
    size_t len = build_multi();

    CU_ASSERT_EQUAL(rtnl_decode(mb.b, len, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL_FATAL(nev, 3);
    CU_ASSERT_EQUAL(ev[0].kind, RTNL_LINK_NEW);
    CU_ASSERT_EQUAL(ev[1].kind, RTNL_ADDR_NEW);
    CU_ASSERT_EQUAL(ev[2].kind, RTNL_ROUTE_NEW);

    /* No room: the events that fit are kept, and the caller is told. */
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, len, ev, 2, &nev), -1);
    CU_ASSERT_EQUAL(errno, ENOSPC);
    CU_ASSERT_EQUAL(nev, 2);
}

static void
test_skips_unrelated(void)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(mb.b);
    struct ndmsg *nd;
    size_t off;

    nlh->nlmsg_type = RTM_NEWNEIGH;
    nd = mnl_nlmsg_put_extra_header(nlh, sizeof(*nd));
    nd->ndm_family = AF_INET;
    off = end_of(nlh);
    /* An address of a family we do not follow (AF_PACKET). */
    nlh = put_addr(off, RTM_NEWADDR, AF_INET, 2, "10.0.0.1", NULL, 8);
    ((struct ifaddrmsg *)mnl_nlmsg_get_payload(nlh))->ifa_family = 17;
    off = end_of(nlh);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, off, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL(nev, 0);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, 0, ev, 64, &nev), 0);
    CU_ASSERT_EQUAL(nev, 0);
}

/* Every cut of a valid datagram: whole messages decode, anything else is
 * refused, and nothing is read beyond the cut. */
static void
test_truncated(void)
{
    size_t len = build_multi();
    size_t bounds[] = { 0, 0, 0, 0, len };
    size_t off = 0;
    int nb = 0;

    for (nb = 1; nb < 4; nb++) {
        off += MNL_ALIGN(at(off)->nlmsg_len);
        bounds[nb] = off;
    }
    for (size_t cut = 0; cut <= len; cut++) {
        bool whole = false;
        for (int i = 0; i < 5; i++)
            whole |= cut == bounds[i];
        int rc = decode_copy(mb.b, cut, 64);
        if (whole) {
            CU_ASSERT_EQUAL(rc, 0);
        } else {
            CU_ASSERT_EQUAL(rc, -1);
            CU_ASSERT_EQUAL(errno, EBADMSG);
        }
    }
}

static void
expect_bad(size_t len)
{
    CU_ASSERT_EQUAL(decode_copy(mb.b, len, 64), -1);
    CU_ASSERT_EQUAL(errno, EBADMSG);
    CU_ASSERT_EQUAL(nev, 0);
}

static void
test_malformed(void)
{
    struct nlmsghdr *nlh;

    /* libmnl's own check compares (int)nlmsg_len: top bit set passes. */
    nlh = put_link(0, RTM_NEWLINK, 3, 0, "x", -1);
    nlh->nlmsg_len = 0xfffffff0u;
    expect_bad(64);
    nlh->nlmsg_len = 8;
    expect_bad(64);

    nlh = put_link(0, RTM_NEWLINK, 3, 0, NULL, -1);
    nlh->nlmsg_len = MNL_NLMSG_HDRLEN + 8;      /* short ifinfomsg */
    expect_bad(nlh->nlmsg_len);

    nlh = put_link(0, RTM_NEWLINK, 3, 0, "eth0", -1);
    ((struct nlattr *)mnl_nlmsg_get_payload_offset(nlh,
        sizeof(struct ifinfomsg)))->nla_len = 200;   /* overruns message */
    expect_bad(nlh->nlmsg_len);

    nlh = put_link(0, RTM_NEWLINK, 3, 0, NULL, -1);
    mnl_attr_put_u32(nlh, IFLA_OPERSTATE, OPER_UP);  /* u8 expected */
    expect_bad(nlh->nlmsg_len);

    nlh = put_link(0, RTM_NEWLINK, 0, 0, "eth0", -1);  /* no ifindex */
    expect_bad(nlh->nlmsg_len);

    nlh = put_addr(0, RTM_NEWADDR, AF_INET, 2, NULL, NULL, 8);
    mnl_attr_put(nlh, IFA_LOCAL, 3, "\x0a\0\0");     /* short address */
    expect_bad(nlh->nlmsg_len);

    nlh = put_addr(0, RTM_NEWADDR, AF_INET, 2, "10.0.0.1", NULL, 33);
    expect_bad(nlh->nlmsg_len);

    nlh = put_addr(0, RTM_DELADDR, AF_INET6, 2, NULL, NULL, 64);
    expect_bad(nlh->nlmsg_len);                     /* no address at all */

    nlh = put_route(0, RTM_NEWROUTE, AF_INET, RT_TABLE_MAIN, 40, 2, NULL);
    expect_bad(nlh->nlmsg_len);

    nlh = put_route(0, RTM_NEWROUTE, AF_INET, RT_TABLE_MAIN, 0, 2, NULL);
    memset(mnl_nlmsg_get_payload_tail(nlh), 0, 4);
    nlh->nlmsg_len += 4;                    /* 4 stray bytes after attrs */
    expect_bad(nlh->nlmsg_len);
}

static void
test_bad_args(void)
{
    put_link(0, RTM_NEWLINK, 3, 0, NULL, -1);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b + 1, 32, ev, 64, &nev), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(rtnl_decode(NULL, 32, ev, 64, &nev), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(rtnl_decode(mb.b, (size_t)1 << 32, ev, 64, &nev), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
}

static uint32_t
xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* A small in-process fuzz: random byte corruption of valid datagrams must
 * never crash, and whatever is returned must be sane. */
static void
test_mutations(void)
{
    uint32_t seed = 0x9e3779b9u;
    size_t len;
    int sane = 1;

    for (int iter = 0; iter < 20000; iter++) {
        if (iter & 1)
            len = (size_t)(put_multipath(7, 8)->nlmsg_len);
        else
            len = build_multi();
        for (int k = 1 + (int)(xorshift(&seed) % 4); k > 0; k--)
            mb.b[xorshift(&seed) % len] = (char)xorshift(&seed);
        int rc = decode_copy(mb.b, len, 64);
        sane &= rc == 0 || rc == -1;
        for (size_t i = 0; i < nev; i++) {
            sane &= ev[i].kind >= RTNL_LINK_NEW && ev[i].kind <= RTNL_ROUTE_DEL;
            sane &= ev[i].ifindex >= 0 && ev[i].prefixlen <= 128;
            sane &= memchr(ev[i].ifname, '\0', sizeof(ev[i].ifname)) != NULL;
        }
    }
    CU_ASSERT_TRUE(sane);
}

static CU_TestInfo tests[] = {
    { "link", test_link },
    { "link name unterminated", test_link_name_unterminated },
    { "addr", test_addr },
    { "route", test_route },
    { "route multipath", test_route_multipath },
    { "multi-message buffer", test_multi_message },
    { "skips unrelated", test_skips_unrelated },
    { "truncated at every byte", test_truncated },
    { "malformed", test_malformed },
    { "bad arguments", test_bad_args },
    { "random corruption", test_mutations },
    CU_TEST_INFO_NULL
};
UNIT_SUITE("rtnl", NULL, NULL, tests);
