/* fuzz_rtnl: netmon/rtnl.c, rtnetlink bytes -> events.
 *
 * fuzz-sources: netmon/rtnl.c
 * fuzz-libs:    -lmnl
 * fuzz-args:    -max_len=16384
 *
 * Input: one recv()'s worth of netlink messages (the seeds are real dumps
 * of links, addresses and routes, plus hand-built multipath and edge
 * cases). Any local process can unicast to netmon's port, so the decoder
 * must survive anything; what it returns must be events netmon can act on
 * (valid kinds, families, prefix lengths, ifindexes, NUL-terminated names),
 * errors must be the documented ones, and a smaller event array must yield
 * exactly the first events of a larger one, then ENOSPC. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "netmon/rtnl.h"
#include "tests/fuzz/fuzz.h"

#define EV_MAX 256

static void
check_event(const struct rtnl_event *e)
{
    FUZZ_CHECK(e->kind >= RTNL_LINK_NEW && e->kind <= RTNL_ROUTE_DEL);
    FUZZ_CHECK(memchr(e->ifname, '\0', sizeof(e->ifname)) != NULL);
    switch (e->kind) {
    case RTNL_LINK_NEW:
    case RTNL_LINK_DEL:
        FUZZ_CHECK(e->ifindex > 0);
        FUZZ_CHECK(e->operstate >= -1 && e->operstate <= 255);
        FUZZ_CHECK(!e->is_default_route);
        break;
    case RTNL_ADDR_NEW:
    case RTNL_ADDR_DEL:
        FUZZ_CHECK(e->ifindex > 0);
        FUZZ_CHECK(e->ifname[0] == '\0');
        FUZZ_CHECK(!e->is_default_route);
        /* fall through */
    default:
        FUZZ_CHECK(e->ifindex >= 0);
        FUZZ_CHECK(e->family == AF_INET || e->family == AF_INET6);
        FUZZ_CHECK(e->prefixlen <= (e->family == AF_INET ? 32 : 128));
        if (e->is_default_route)
            FUZZ_CHECK(e->prefixlen == 0);
        break;
    }
}

/* Field by field: struct copies need not carry padding. */
static int
same(const struct rtnl_event *a, const struct rtnl_event *b)
{
    return a->kind == b->kind && a->ifindex == b->ifindex
           && strcmp(a->ifname, b->ifname) == 0 && a->flags == b->flags
           && a->change == b->change && a->operstate == b->operstate
           && a->family == b->family && a->prefixlen == b->prefixlen
           && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0
           && a->addr_flags == b->addr_flags
           && a->is_default_route == b->is_default_route;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rtnl_event ev[EV_MAX], ev2[EV_MAX];
    size_t nev = 12345, nev2;
    /* malloc'd (so aligned) and exactly sized, for ASan */
    char  *buf = fuzz_dup(data, size, 0);
    int    rc, err;

    errno = 0;
    rc = rtnl_decode(buf, size, ev, EV_MAX, &nev);
    err = errno;
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(nev <= EV_MAX);
    if (rc == -1)
        FUZZ_CHECK(err == EBADMSG || (err == ENOSPC && nev == EV_MAX));
    for (size_t i = 0; i < nev; i++)
        check_event(&ev[i]);

    /* Deterministic... */
    errno = 0;
    FUZZ_CHECK(rtnl_decode(buf, size, ev2, EV_MAX, &nev2) == rc
               && nev2 == nev && (rc == 0 || errno == err));
    for (size_t i = 0; i < nev; i++)
        FUZZ_CHECK(same(&ev[i], &ev2[i]));

    /* ...and a short array gives the first events, then ENOSPC. */
    if (nev > 0) {
        size_t max = fuzz_hash(data, size) % nev;
        errno = 0;
        FUZZ_CHECK(rtnl_decode(buf, size, ev2, max, &nev2) == -1
                   && errno == ENOSPC && nev2 == max);
        for (size_t i = 0; i < max; i++)
            FUZZ_CHECK(same(&ev[i], &ev2[i]));
    }
    free(buf);

    /* A misaligned buffer is refused outright, whatever it holds. */
    char *odd = malloc(size + 1);
    if (odd == NULL)
        abort();
    memcpy(odd + 1, data, size);
    errno = 0;
    FUZZ_CHECK(rtnl_decode(odd + 1, size, ev2, EV_MAX, &nev2) == -1
               && errno == EINVAL && nev2 == 0);
    free(odd);
    return 0;
}
