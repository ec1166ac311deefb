/* rtnl.c: rtnetlink bytes -> struct rtnl_event.
 *
 * Walks the messages with libmnl's helpers, collects attributes with
 * mnl_attr_parse and checks each one it uses with mnl_attr_validate before
 * reading it. An event is built in a local and only stored once the whole
 * message has been checked, so a malformed message never leaves half an
 * event behind. */
#include "netmon/rtnl.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <limits.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>

#ifndef IFLA_OPERSTATE
#define IFLA_OPERSTATE 16
#endif

/* Every attribute type we read is below this; the rest are skipped. */
#define ATTR_SLOTS 32

struct attrs {
    const struct nlattr *tb[ATTR_SLOTS];
    const char          *end;       /* first byte after the last attribute */
};

struct out {
    struct rtnl_event *ev;
    size_t             max;
    size_t             n;
};

static int
bad(void)
{
    errno = EBADMSG;
    return -1;
}

static int
collect_cb(const struct nlattr *attr, void *data)
{
    struct attrs *a = data;
    uint16_t type = mnl_attr_get_type(attr);

    if (type < ATTR_SLOTS)
        a->tb[type] = attr;
    a->end = (const char *)attr + MNL_ALIGN(attr->nla_len);
    return MNL_CB_OK;
}

/* mnl_attr_parse stops quietly at the first attribute that does not fit;
 * bytes left over after the last whole attribute mean a truncated or
 * corrupt message, which we refuse rather than half-read. */
static int
check_tail(const struct attrs *a, const char *start, const char *tail)
{
    const char *pos = a->end ? a->end : start;

    return pos < tail ? bad() : 0;
}

static int
collect_msg(const struct nlmsghdr *nlh, size_t hdrlen, struct attrs *a)
{
    const char *start = (const char *)nlh + MNL_NLMSG_HDRLEN
                        + MNL_ALIGN(hdrlen);
    const char *tail = (const char *)nlh + nlh->nlmsg_len;

    memset(a, 0, sizeof(*a));
    if (mnl_nlmsg_get_payload_len(nlh) < MNL_ALIGN(hdrlen))
        return bad();
    mnl_attr_parse(nlh, (unsigned)hdrlen, collect_cb, a);
    return check_tail(a, start, tail);
}

static int
collect_payload(const void *p, size_t len, struct attrs *a)
{
    memset(a, 0, sizeof(*a));
    mnl_attr_parse_payload(p, len, collect_cb, a);
    return check_tail(a, p, (const char *)p + len);
}

static int
emit(struct out *o, const struct rtnl_event *ev)
{
    if (o->n == o->max) {
        errno = ENOSPC;
        return -1;
    }
    o->ev[o->n++] = *ev;
    return 0;
}

static void
event_init(struct rtnl_event *ev, enum rtnl_kind kind)
{
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->operstate = -1;
}

static size_t
family_addrlen(uint8_t family)
{
    return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

static int
get_u32(const struct nlattr *attr, uint32_t *v)
{
    if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
        return bad();
    *v = mnl_attr_get_u32(attr);
    return 0;
}

static int
get_addr(const struct nlattr *attr, size_t alen, uint8_t out[16])
{
    if (mnl_attr_validate2(attr, MNL_TYPE_BINARY, alen) < 0)
        return bad();
    memcpy(out, mnl_attr_get_payload(attr), alen);
    return 0;
}

static int
decode_link(const struct nlmsghdr *nlh, struct out *o)
{
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    const struct nlattr *name, *oper;
    struct rtnl_event ev;
    struct attrs a;

    if (collect_msg(nlh, sizeof(*ifi), &a) < 0 || ifi->ifi_index <= 0)
        return bad();
    event_init(&ev, nlh->nlmsg_type == RTM_NEWLINK ? RTNL_LINK_NEW
                                                    : RTNL_LINK_DEL);
    ev.ifindex = ifi->ifi_index;
    ev.flags = ifi->ifi_flags;
    ev.change = ifi->ifi_change;
    if ((name = a.tb[IFLA_IFNAME]) != NULL) {
        /* STRING, not NUL_STRING: the NUL is not promised, so copy at most
         * what the attribute holds and terminate ourselves. */
        if (mnl_attr_validate(name, MNL_TYPE_STRING) < 0)
            return bad();
        size_t max = mnl_attr_get_payload_len(name);
        if (max > IFNAMSIZ - 1)
            max = IFNAMSIZ - 1;
        memcpy(ev.ifname, mnl_attr_get_payload(name),
               strnlen(mnl_attr_get_payload(name), max));
    }
    if ((oper = a.tb[IFLA_OPERSTATE]) != NULL) {
        if (mnl_attr_validate(oper, MNL_TYPE_U8) < 0)
            return bad();
        ev.operstate = mnl_attr_get_u8(oper);
    }
    return emit(o, &ev);
}

static int
decode_addr(const struct nlmsghdr *nlh, struct out *o)
{
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    const struct nlattr *at;
    struct rtnl_event ev;
    struct attrs a;
    size_t alen;

    if (collect_msg(nlh, sizeof(*ifa), &a) < 0)
        return -1;
    if ((alen = family_addrlen(ifa->ifa_family)) == 0)
        return 0;
    if (ifa->ifa_index == 0 || ifa->ifa_index > INT_MAX
        || ifa->ifa_prefixlen > alen * 8)
        return bad();
    event_init(&ev, nlh->nlmsg_type == RTM_NEWADDR ? RTNL_ADDR_NEW
                                                    : RTNL_ADDR_DEL);
    ev.ifindex = (int)ifa->ifa_index;
    ev.family = ifa->ifa_family;
    ev.prefixlen = ifa->ifa_prefixlen;
    ev.addr_flags = ifa->ifa_flags;
    /* On point-to-point links IFA_ADDRESS is the peer and IFA_LOCAL ours;
     * otherwise they are equal or only IFA_ADDRESS is sent (iproute2 rule). */
    at = a.tb[IFA_LOCAL] ? a.tb[IFA_LOCAL] : a.tb[IFA_ADDRESS];
    if (at == NULL || get_addr(at, alen, ev.addr) < 0)
        return bad();
    /* ifa_flags is 8 bits; IFA_F_MANAGETEMPADDR and later live only here. */
    if (a.tb[IFA_FLAGS] && get_u32(a.tb[IFA_FLAGS], &ev.addr_flags) < 0)
        return -1;
    return emit(o, &ev);
}

/* RTA_MULTIPATH: a packed run of rtnexthop, each followed by its own
 * attributes. One event per hop so that every device carrying an ECMP
 * default route counts as a default-route interface. */
static int
decode_nexthops(const struct nlattr *mp, const struct rtnl_event *tmpl,
                size_t alen, struct out *o)
{
    const char *p = mnl_attr_get_payload(mp);
    size_t left = mnl_attr_get_payload_len(mp);

    for (int hops = 0; left > 0; hops++) {
        const struct rtnexthop *nh = (const void *)p;
        struct rtnl_event ev = *tmpl;
        struct attrs a;

        if (left < sizeof(*nh) || nh->rtnh_len < sizeof(*nh)
            || nh->rtnh_len > left || nh->rtnh_ifindex < 0)
            return bad();
        if (collect_payload(p + sizeof(*nh), nh->rtnh_len - sizeof(*nh),
                            &a) < 0)
            return -1;
        ev.ifindex = nh->rtnh_ifindex;
        if (a.tb[RTA_GATEWAY] && get_addr(a.tb[RTA_GATEWAY], alen,
                                          ev.addr) < 0)
            return -1;
        if (hops < RTNL_MAX_NEXTHOPS && emit(o, &ev) < 0)
            return -1;
        size_t step = RTNH_ALIGN(nh->rtnh_len);
        if (step >= left)
            break;
        p += step;
        left -= step;
    }
    return 0;
}

static int
decode_route(const struct nlmsghdr *nlh, struct out *o)
{
    const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
    struct rtnl_event ev;
    struct attrs a;
    uint32_t table, oif = 0;
    size_t alen;

    if (collect_msg(nlh, sizeof(*rtm), &a) < 0)
        return -1;
    if ((alen = family_addrlen(rtm->rtm_family)) == 0)
        return 0;
    if (rtm->rtm_dst_len > alen * 8)
        return bad();
    event_init(&ev, nlh->nlmsg_type == RTM_NEWROUTE ? RTNL_ROUTE_NEW
                                                     : RTNL_ROUTE_DEL);
    ev.family = rtm->rtm_family;
    ev.prefixlen = rtm->rtm_dst_len;
    /* rtm_table is 8 bits; tables above 255 are only in RTA_TABLE. */
    table = rtm->rtm_table;
    if (a.tb[RTA_TABLE] && get_u32(a.tb[RTA_TABLE], &table) < 0)
        return -1;
    if (a.tb[RTA_OIF] && (get_u32(a.tb[RTA_OIF], &oif) < 0 || oif > INT_MAX))
        return bad();
    if (a.tb[RTA_GATEWAY] && get_addr(a.tb[RTA_GATEWAY], alen, ev.addr) < 0)
        return -1;
    ev.ifindex = (int)oif;
    ev.is_default_route = rtm->rtm_type == RTN_UNICAST
                          && rtm->rtm_dst_len == 0 && table == RT_TABLE_MAIN;
    if (a.tb[RTA_MULTIPATH] && oif == 0)
        return decode_nexthops(a.tb[RTA_MULTIPATH], &ev, alen, o);
    return emit(o, &ev);
}

static int
decode_one(const struct nlmsghdr *nlh, struct out *o)
{
    switch (nlh->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
        return decode_link(nlh, o);
    case RTM_NEWADDR:
    case RTM_DELADDR:
        return decode_addr(nlh, o);
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
        return decode_route(nlh, o);
    default:
        return 0;
    }
}

int
rtnl_decode(const void *buf, size_t len, struct rtnl_event *ev_out,
            size_t max_ev, size_t *nev_r)
{
    struct out o = { ev_out, max_ev, 0 };
    const struct nlmsghdr *nlh = buf;
    int left;

    *nev_r = 0;
    if (len > INT_MAX || (len > 0 && buf == NULL)
        || ((uintptr_t)buf & (NLMSG_ALIGNTO - 1)) != 0) {
        errno = EINVAL;
        return -1;
    }
    left = (int)len;
    /* mnl_nlmsg_ok compares (int)nlmsg_len, so a length with the top bit
     * set passes as negative; the unsigned check closes that hole. */
    while (mnl_nlmsg_ok(nlh, left) && nlh->nlmsg_len <= (uint32_t)left) {
        /* libmnl bounds attributes by the aligned length; an unaligned one
         * would let the last attribute end past the buffer. The kernel
         * always sends aligned lengths. */
        if (nlh->nlmsg_len % NLMSG_ALIGNTO != 0) {
            *nev_r = o.n;
            return bad();
        }
        if (decode_one(nlh, &o) < 0) {
            *nev_r = o.n;
            return -1;
        }
        nlh = mnl_nlmsg_next(nlh, &left);
    }
    *nev_r = o.n;
    return left > 0 ? bad() : 0;
}
