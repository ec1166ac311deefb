/* test_peers.c: shm/peers, the per-address counters: counts summed over
 * worker rows, a reaped row forgotten, IPv6 counted per /64, IPv4-mapped
 * as IPv4, and distinct addresses kept apart. */
#include "tests/unit/unit.h"
#include "shm/peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static struct peers_key
v4(struct peers *p, const char *a)
{
    struct sockaddr_in s = { .sin_family = AF_INET };
    inet_pton(AF_INET, a, &s.sin_addr);
    return peers_key(p, (struct sockaddr *)&s);
}

static struct peers_key
v6(struct peers *p, const char *a)
{
    struct sockaddr_in6 s = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, a, &s.sin6_addr);
    return peers_key(p, (struct sockaddr *)&s);
}

static int
same(struct peers_key x, struct peers_key y)
{
    return x.a == y.a && x.b == y.b;
}

static void
test_counts(void)
{
    struct peers *p = peers_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    peers_row_open(p, 0);
    peers_row_open(p, 3);
    struct peers_key a = v4(p, "192.0.2.1"), b = v4(p, "192.0.2.2");
    CU_ASSERT(a.a != a.b);
    peers_add(p, 0, a, PEERS_CONNS, 1);
    peers_add(p, 0, a, PEERS_CONNS, 1);
    peers_add(p, 3, a, PEERS_CONNS, 1);         /* another worker */
    peers_add(p, 3, a, PEERS_UPLOADS, 1);
    CU_ASSERT_EQUAL(peers_count(p, a, PEERS_CONNS), 3);
    CU_ASSERT_EQUAL(peers_count(p, a, PEERS_UPLOADS), 1);
    CU_ASSERT_EQUAL(peers_count(p, b, PEERS_CONNS), 0);
    peers_add(p, 0, a, PEERS_CONNS, -1);
    CU_ASSERT_EQUAL(peers_count(p, a, PEERS_CONNS), 2);
    peers_row_clear(p, 3);                      /* worker 3 reaped */
    CU_ASSERT_EQUAL(peers_count(p, a, PEERS_CONNS), 1);
    CU_ASSERT_EQUAL(peers_count(p, a, PEERS_UPLOADS), 0);
    munmap(p, sizeof(*p));
}

static void
test_keys(void)
{
    struct peers *p = peers_create();
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    /* One /64, one key; the next /64, another. */
    CU_ASSERT(same(v6(p, "2001:db8:1:2::1"), v6(p, "2001:db8:1:2:ffff::9")));
    CU_ASSERT(!same(v6(p, "2001:db8:1:2::1"), v6(p, "2001:db8:1:3::1")));
    CU_ASSERT(same(v6(p, "::ffff:192.0.2.7"), v4(p, "192.0.2.7")));
    /* 1000 addresses: nearly all keys distinct (two buckets each). */
    int clashes = 0;
    struct peers_key k[1000];
    char a[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(a, sizeof(a), "10.0.%d.%d", i / 250, i % 250);
        k[i] = v4(p, a);
        for (int j = 0; j < i; j++)
            clashes += same(k[i], k[j]);
    }
    CU_ASSERT(clashes <= 2);
    munmap(p, sizeof(*p));
}

static CU_TestInfo tests[] = {
    { "counts summed over worker rows", test_counts },
    { "keys per address, IPv6 per /64", test_keys },
    CU_TEST_INFO_NULL
};
UNIT_SUITE("peers", NULL, NULL, tests);
