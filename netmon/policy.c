/* policy.c: interface state, interesting-ness and per-interface debounce.
 *
 * Tables are fixed arrays searched linearly: a host has tens of interfaces
 * and events come at human rates, so a hash would buy nothing but code. */
#include "netmon/policy.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define DEF_V4 0x1
#define DEF_V6 0x2

struct iface {
    int      ifindex;           /* 0: free slot */
    char     name[IFNAMSIZ];
    bool     has_link;          /* a link message has described it */
    bool     usable;
    bool     was_usable;        /* usable at some point since first seen */
    bool     stale;             /* not (yet) seen by the running dump */
    uint8_t  defroute;          /* DEF_V4 | DEF_V6 */
    uint8_t  defseen;           /* default routes seen by the running dump */
};

struct addr {
    int      ifindex;           /* 0: free slot */
    uint8_t  family, prefixlen;
    bool     temporary;
    bool     stale;
    uint8_t  a[16];
};

struct window {
    char     name[IFNAMSIZ];    /* "": free slot */
    uint64_t until;
    unsigned suppressed;
};

struct listen_addr {
    uint8_t  family;
    uint8_t  a[16];
};

struct policy {
    uint64_t           debounce_ms;
    bool               wildcard;
    size_t             nlisten;
    struct listen_addr listen[CONF_MAX_LISTEN];
    bool               syncing, synced_once;
    uint64_t           dropped;
    struct iface       ifaces[POLICY_MAX_IFACES];
    struct addr        addrs[POLICY_MAX_ADDRS];
    struct window      win[POLICY_MAX_WINDOWS];
};

static const char *operstate_names[] = {
    "unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant",
    "up"
};

/* ---- listen addresses ---- */

static bool
listen_parse(const char *s, struct listen_addr *la)
{
    struct in6_addr a6;
    struct in_addr a4;

    memset(la, 0, sizeof(*la));
    if (inet_pton(AF_INET, s, &a4) == 1) {
        la->family = AF_INET;
        memcpy(la->a, &a4, 4);
        return a4.s_addr != htonl(INADDR_ANY);
    }
    if (inet_pton(AF_INET6, s, &a6) != 1 || IN6_IS_ADDR_UNSPECIFIED(&a6))
        return false;
    /* A v4-mapped listen address receives IPv4 connections, and the kernel
     * reports that address as plain IPv4. */
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        la->family = AF_INET;
        memcpy(la->a, &a6.s6_addr[12], 4);
    } else {
        la->family = AF_INET6;
        memcpy(la->a, &a6, 16);
    }
    return true;
}

struct policy *
policy_new(const struct conf_listen *listen, size_t nlisten,
           uint64_t debounce_ms)
{
    struct policy *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->debounce_ms = debounce_ms;
    p->wildcard = nlisten == 0;
    for (size_t i = 0; i < nlisten && i < CONF_MAX_LISTEN; i++) {
        if (listen_parse(listen[i].addr, &p->listen[p->nlisten]))
            p->nlisten++;
        else
            p->wildcard = true;
    }
    return p;
}

void
policy_free(struct policy *p)
{
    free(p);
}

static bool
is_listen(const struct policy *p, uint8_t family, const uint8_t *a)
{
    size_t alen = family == AF_INET ? 4 : 16;

    for (size_t i = 0; i < p->nlisten; i++)
        if (p->listen[i].family == family
            && memcmp(p->listen[i].a, a, alen) == 0)
            return true;
    return false;
}

/* ---- tables ---- */

static struct iface *
iface_find(struct policy *p, int ifindex)
{
    for (size_t i = 0; i < POLICY_MAX_IFACES; i++)
        if (p->ifaces[i].ifindex == ifindex)
            return &p->ifaces[i];
    return NULL;
}

static struct iface *
iface_get(struct policy *p, int ifindex)
{
    struct iface *ifc;

    if (ifindex <= 0)
        return NULL;
    if ((ifc = iface_find(p, ifindex)) != NULL)
        return ifc;
    if ((ifc = iface_find(p, 0)) == NULL) {
        p->dropped++;
        return NULL;
    }
    memset(ifc, 0, sizeof(*ifc));
    ifc->ifindex = ifindex;
    return ifc;
}

static struct addr *
addr_find(struct policy *p, const struct rtnl_event *ev)
{
    size_t alen = ev->family == AF_INET ? 4 : 16;

    for (size_t i = 0; i < POLICY_MAX_ADDRS; i++) {
        struct addr *a = &p->addrs[i];
        if (a->ifindex == ev->ifindex && a->family == ev->family
            && a->prefixlen == ev->prefixlen
            && memcmp(a->a, ev->addr, alen) == 0)
            return a;
    }
    return NULL;
}

static struct addr *
addr_add(struct policy *p, const struct rtnl_event *ev)
{
    for (size_t i = 0; i < POLICY_MAX_ADDRS; i++) {
        struct addr *a = &p->addrs[i];
        if (a->ifindex != 0)
            continue;
        a->ifindex = ev->ifindex;
        a->family = ev->family;
        a->prefixlen = ev->prefixlen;
        a->temporary = (ev->addr_flags & IFA_F_TEMPORARY) != 0;
        a->stale = false;
        memcpy(a->a, ev->addr, 16);
        return a;
    }
    p->dropped++;
    return NULL;
}

static bool
iface_has_listen(const struct policy *p, int ifindex)
{
    for (size_t i = 0; i < POLICY_MAX_ADDRS; i++) {
        const struct addr *a = &p->addrs[i];
        if (a->ifindex == ifindex && is_listen(p, a->family, a->a))
            return true;
    }
    return false;
}

static bool
interesting(const struct policy *p, const struct iface *ifc)
{
    return p->wildcard || ifc->defroute != 0
           || iface_has_listen(p, ifc->ifindex);
}

static void
iface_forget(struct policy *p, struct iface *ifc)
{
    for (size_t i = 0; i < POLICY_MAX_ADDRS; i++)
        if (p->addrs[i].ifindex == ifc->ifindex)
            memset(&p->addrs[i], 0, sizeof(p->addrs[i]));
    memset(ifc, 0, sizeof(*ifc));
}

static void
name_of(const struct iface *ifc, int ifindex, char out[IFNAMSIZ])
{
    if (ifc != NULL && ifc->name[0] != '\0')
        memcpy(out, ifc->name, IFNAMSIZ);
    else
        snprintf(out, IFNAMSIZ, "if%d", ifindex);
}

/* ---- debounce ---- */

static struct window *
window_find(struct policy *p, const char *name)
{
    for (size_t i = 0; i < POLICY_MAX_WINDOWS; i++)
        if (p->win[i].name[0] != '\0' && strcmp(p->win[i].name, name) == 0)
            return &p->win[i];
    return NULL;
}

/* A free slot, else the window closest to closing: with every slot busy the
 * host is in a storm anyway, and losing one settle report is harmless. */
static struct window *
window_alloc(struct policy *p)
{
    struct window *best = &p->win[0];

    for (size_t i = 0; i < POLICY_MAX_WINDOWS; i++) {
        if (p->win[i].name[0] == '\0')
            return &p->win[i];
        if (p->win[i].until < best->until)
            best = &p->win[i];
    }
    return best;
}

static enum policy_verdict
judge(struct policy *p, bool matters, uint64_t now,
      struct policy_decision *d)
{
    struct window *w;

    d->verdict = POLICY_IGNORE;
    if (p->syncing && !p->synced_once) {
        d->what[0] = '\0';             /* learning, not news */
        return d->verdict;
    }
    if (!matters)
        return d->verdict;
    if ((w = window_find(p, d->ifname)) != NULL && now < w->until) {
        w->until = now + p->debounce_ms;
        w->suppressed++;
        return d->verdict = POLICY_EXTEND;
    }
    if (w == NULL)
        w = window_alloc(p);
    memcpy(w->name, d->ifname, IFNAMSIZ);
    w->until = now + p->debounce_ms;
    w->suppressed = 0;
    return d->verdict = POLICY_CHANGE;
}

/* ---- events ---- */

static bool
link_usable(const struct rtnl_event *ev)
{
    if ((ev->flags & (IFF_UP | IFF_RUNNING)) != (IFF_UP | IFF_RUNNING))
        return false;
    /* The kernel derives IFF_RUNNING from operstate; checking both guards
     * against a driver that reports them out of step. */
    return ev->operstate < 0 || ev->operstate == IF_OPER_UP
           || ev->operstate == IF_OPER_UNKNOWN;
}

static void
describe_down(const struct rtnl_event *ev, struct policy_decision *d)
{
    if (!(ev->flags & IFF_UP))
        snprintf(d->what, sizeof(d->what), "%s: link down", d->ifname);
    else if (ev->operstate >= 0 && ev->operstate <= IF_OPER_UP)
        snprintf(d->what, sizeof(d->what), "%s: carrier lost (%s)",
                 d->ifname, operstate_names[ev->operstate]);
    else
        snprintf(d->what, sizeof(d->what), "%s: carrier lost", d->ifname);
}

static bool
feed_link(struct policy *p, const struct rtnl_event *ev,
          struct policy_decision *d)
{
    struct iface *ifc = iface_get(p, ev->ifindex);
    bool first, before, now_usable, recovered;

    if (ifc == NULL)
        return false;
    if (ev->ifname[0] != '\0')
        memcpy(ifc->name, ev->ifname, IFNAMSIZ);
    name_of(ifc, ev->ifindex, d->ifname);
    first = !ifc->has_link;
    before = ifc->usable;
    now_usable = link_usable(ev);
    recovered = ifc->was_usable;
    ifc->has_link = true;
    ifc->stale = false;
    ifc->usable = now_usable;
    ifc->was_usable |= now_usable;
    /* A link seen for the first time, or one that becomes usable for the
     * first time, cannot carry a connection that a change would break. */
    if (first || before == now_usable)
        return false;
    if (!now_usable) {
        describe_down(ev, d);
        return interesting(p, ifc);
    }
    snprintf(d->what, sizeof(d->what), "%s: link up%s", d->ifname,
             recovered ? "" : " (first time)");
    return recovered && interesting(p, ifc);
}

static bool
feed_link_del(struct policy *p, const struct rtnl_event *ev,
              struct policy_decision *d)
{
    struct iface *ifc = iface_find(p, ev->ifindex);
    bool matters;

    if (ev->ifname[0] != '\0')
        memcpy(d->ifname, ev->ifname, IFNAMSIZ);
    else
        name_of(ifc, ev->ifindex, d->ifname);
    snprintf(d->what, sizeof(d->what), "%s: removed", d->ifname);
    if (ifc == NULL)
        return false;
    /* The kernel sends NEWLINK down before DELLINK; only a removal with no
     * such warning is news. */
    matters = ifc->has_link && ifc->usable && interesting(p, ifc);
    iface_forget(p, ifc);
    return matters;
}

static void
describe_addr(const struct rtnl_event *ev, const char *verb,
              struct policy_decision *d)
{
    char s[INET6_ADDRSTRLEN];

    if (inet_ntop(ev->family, ev->addr, s, sizeof(s)) == NULL)
        snprintf(s, sizeof(s), "?");
    snprintf(d->what, sizeof(d->what), "%s: address %s/%u %s", d->ifname, s,
             ev->prefixlen, verb);
}

/* Privacy addresses (RFC 8981) rotate on a timer and are never the target
 * of an incoming connection, so their churn is noise for a server. */
static bool
feed_addr(struct policy *p, const struct rtnl_event *ev,
          struct policy_decision *d)
{
    struct iface *ifc = iface_get(p, ev->ifindex);
    struct addr *a = addr_find(p, ev);
    bool listen = is_listen(p, ev->family, ev->addr);
    bool temp = (ev->addr_flags & IFA_F_TEMPORARY) != 0;
    bool before = listen || (ifc ? interesting(p, ifc) : p->wildcard);
    /* An IPv6 link-local address comes and goes with its link (the kernel
     * re-adds it ~2 s after link-up, just past the debounce window): the
     * link event already counted, so it matters only if we listen on it. */
    bool linklocal = ev->family == AF_INET6 && ev->addr[0] == 0xfe
                     && (ev->addr[1] & 0xc0) == 0x80;

    name_of(ifc, ev->ifindex, d->ifname);
    if (ev->kind == RTNL_ADDR_NEW) {
        if (a != NULL) {
            /* IPv6 re-announces an address on every lifetime refresh. */
            a->stale = false;
            a->temporary = temp;
            return false;
        }
        describe_addr(ev, "added", d);
        /* Untracked, every refresh of it would look new: stay quiet. */
        if (addr_add(p, ev) == NULL)
            return false;
    } else {
        if (a != NULL)
            memset(a, 0, sizeof(*a));
        describe_addr(ev, "removed", d);
    }
    return before && !temp && (!linklocal || listen);
}

/* IPv4 drops routes silently when their device goes down (only IPv6 sends
 * DELROUTE), so a default-route mark can outlive its route. The cost is an
 * interface that stays interesting until the next resync: harmless. */
static bool
feed_route(struct policy *p, const struct rtnl_event *ev,
           struct policy_decision *d)
{
    uint8_t bit = ev->family == AF_INET ? DEF_V4 : DEF_V6;
    struct iface *ifc;
    bool had;

    if (!ev->is_default_route || (ifc = iface_get(p, ev->ifindex)) == NULL)
        return false;
    name_of(ifc, ev->ifindex, d->ifname);
    had = (ifc->defroute & bit) != 0;
    if (ev->kind == RTNL_ROUTE_NEW) {
        ifc->defroute |= bit;
        ifc->defseen |= bit;
    } else {
        ifc->defroute &= (uint8_t)~bit;
    }
    snprintf(d->what, sizeof(d->what), "%s: %s default route %s", d->ifname,
             bit == DEF_V4 ? "IPv4" : "IPv6",
             ev->kind == RTNL_ROUTE_NEW ? "added" : "removed");
    return ev->kind == RTNL_ROUTE_NEW ? !had : had;
}

enum policy_verdict
policy_feed(struct policy *p, const struct rtnl_event *ev, uint64_t now_ms,
            struct policy_decision *out)
{
    bool matters = false;

    memset(out, 0, sizeof(*out));
    switch (ev->kind) {
    case RTNL_LINK_NEW:
        matters = feed_link(p, ev, out);
        break;
    case RTNL_LINK_DEL:
        matters = feed_link_del(p, ev, out);
        break;
    case RTNL_ADDR_NEW:
    case RTNL_ADDR_DEL:
        if (ev->family == AF_INET || ev->family == AF_INET6)
            matters = feed_addr(p, ev, out);
        break;
    case RTNL_ROUTE_NEW:
    case RTNL_ROUTE_DEL:
        if (ev->family == AF_INET || ev->family == AF_INET6)
            matters = feed_route(p, ev, out);
        break;
    }
    return judge(p, matters, now_ms, out);
}

/* ---- resync ---- */

void
policy_sync_begin(struct policy *p)
{
    p->syncing = true;
    for (size_t i = 0; i < POLICY_MAX_IFACES; i++) {
        p->ifaces[i].stale = true;
        p->ifaces[i].defseen = 0;
    }
    for (size_t i = 0; i < POLICY_MAX_ADDRS; i++)
        p->addrs[i].stale = true;
}

struct sweep {
    unsigned n;
    struct policy_decision first;
};

static void
sweep_note(struct sweep *s, bool matters, const char *ifname,
           const char *what)
{
    if (!matters)
        return;
    if (s->n++ == 0) {
        memcpy(s->first.ifname, ifname, IFNAMSIZ);
        snprintf(s->first.what, sizeof(s->first.what), "%s", what);
    }
}

static void
sweep_addrs(struct policy *p, struct sweep *s)
{
    for (size_t i = 0; i < POLICY_MAX_ADDRS; i++) {
        struct addr *a = &p->addrs[i];
        struct rtnl_event ev;
        struct policy_decision d;

        if (a->ifindex == 0 || !a->stale)
            continue;
        memset(&ev, 0, sizeof(ev));
        memset(&d, 0, sizeof(d));
        ev.kind = RTNL_ADDR_DEL;
        ev.ifindex = a->ifindex;
        ev.family = a->family;
        ev.prefixlen = a->prefixlen;
        ev.addr_flags = a->temporary ? IFA_F_TEMPORARY : 0;
        memcpy(ev.addr, a->a, 16);
        sweep_note(s, feed_addr(p, &ev, &d), d.ifname, d.what);
    }
}

static void
sweep_ifaces(struct policy *p, struct sweep *s)
{
    for (size_t i = 0; i < POLICY_MAX_IFACES; i++) {
        struct iface *ifc = &p->ifaces[i];
        char what[128], name[IFNAMSIZ];
        bool matters;

        if (ifc->ifindex == 0)
            continue;
        name_of(ifc, ifc->ifindex, name);
        if (ifc->stale) {
            matters = ifc->has_link && ifc->usable && interesting(p, ifc);
            snprintf(what, sizeof(what), "%s: removed", name);
            iface_forget(p, ifc);
            sweep_note(s, matters, name, what);
        } else if (ifc->defroute & ~ifc->defseen) {
            ifc->defroute &= ifc->defseen;
            snprintf(what, sizeof(what), "%s: default route removed", name);
            sweep_note(s, true, name, what);
        }
    }
}

enum policy_verdict
policy_sync_end(struct policy *p, uint64_t now_ms,
                struct policy_decision *out)
{
    struct sweep s;

    memset(&s, 0, sizeof(s));
    memset(out, 0, sizeof(*out));
    /* Addresses first: their interface must still be known to judge them. */
    sweep_addrs(p, &s);
    sweep_ifaces(p, &s);
    *out = s.first;
    if (s.n > 1) {
        size_t len = strlen(out->what);
        snprintf(out->what + len, sizeof(out->what) - len, " (+%u more)",
                 s.n - 1);
    }
    judge(p, s.n > 0, now_ms, out);
    p->syncing = false;
    p->synced_once = true;
    return out->verdict;
}

/* ---- windows ---- */

int
policy_poll(struct policy *p, uint64_t now_ms, struct policy_decision *out)
{
    for (size_t i = 0; i < POLICY_MAX_WINDOWS; i++) {
        struct window *w = &p->win[i];
        if (w->name[0] == '\0' || w->until > now_ms)
            continue;
        memset(out, 0, sizeof(*out));
        memcpy(out->ifname, w->name, IFNAMSIZ);
        out->suppressed = w->suppressed;
        snprintf(out->what, sizeof(out->what),
                 "%s: settled, %u further change%s absorbed", w->name,
                 w->suppressed, w->suppressed == 1 ? "" : "s");
        memset(w, 0, sizeof(*w));
        return 1;
    }
    return 0;
}

uint64_t
policy_next_deadline(const struct policy *p)
{
    uint64_t next = UINT64_MAX;

    for (size_t i = 0; i < POLICY_MAX_WINDOWS; i++)
        if (p->win[i].name[0] != '\0' && p->win[i].until < next)
            next = p->win[i].until;
    return next;
}

uint64_t
policy_dropped(const struct policy *p)
{
    return p->dropped;
}
