/* rtnl: decode rtnetlink link, address and route messages into events.
 *
 * Pure: no syscalls, no allocation, no state. The bytes come from the kernel,
 * but any local process can unicast to a netlink port, and the decoder is
 * fuzzed, so every length is checked before it is trusted. */
#ifndef NETMON_RTNL_H
#define NETMON_RTNL_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A multipath route yields one event per next hop, up to this many. */
#define RTNL_MAX_NEXTHOPS 32

enum rtnl_kind {
    RTNL_LINK_NEW = 1, RTNL_LINK_DEL,
    RTNL_ADDR_NEW, RTNL_ADDR_DEL,
    RTNL_ROUTE_NEW, RTNL_ROUTE_DEL
};

struct rtnl_event {
    enum rtnl_kind kind;
    int      ifindex;           /* route: output device, 0 if none given */
    char     ifname[IFNAMSIZ];  /* links only (IFLA_IFNAME); "" if absent */
    uint32_t flags;             /* links: ifi_flags (IFF_UP, IFF_RUNNING) */
    uint32_t change;            /* links: ifi_change, ~0 on create/delete */
    int      operstate;         /* links: IF_OPER_*, -1 if absent */
    uint8_t  family;            /* AF_INET or AF_INET6 (addr, route) */
    uint8_t  prefixlen;         /* addr: prefix length; route: dst length */
    uint8_t  addr[16];          /* addr: local address; route: gateway;
                                 * IPv4 in the first 4 bytes */
    uint32_t addr_flags;        /* addr: IFA_F_* (IFA_FLAGS if present) */
    bool     is_default_route;  /* route: unicast, dst len 0, main table */
};

/* Decodes every message in buf (one recv's worth, 4-byte aligned). Control
 * messages (NOOP, DONE, ERROR, OVERRUN) and other message types yield no
 * event, nor do addresses and routes of families other than IPv4/IPv6.
 * Returns 0, or -1 with errno EBADMSG (malformed), ENOSPC (more than max_ev
 * events) or EINVAL (misaligned or oversized buffer); *nev_r always counts
 * the events stored, which are valid even on failure. */
int rtnl_decode(const void *buf, size_t len, struct rtnl_event *ev_out,
                size_t max_ev, size_t *nev_r);

#endif
