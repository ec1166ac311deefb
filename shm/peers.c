/* peers.c: per-address counters across workers; see peers.h. */
#define _GNU_SOURCE
#include "shm/peers.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct peers *
peers_create(void)
{
    struct peers *p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (getrandom(&p->seed, sizeof(p->seed), GRND_NONBLOCK)
        != (ssize_t)sizeof(p->seed)) {
        struct timespec ts;             /* no entropy yet: still unknown */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        p->seed = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec
                  ^ ((uint64_t)getpid() << 16);
    }
    return p;
}

void
peers_row_open(struct peers *p, int row)
{
    int n = atomic_load(&p->nrows);
    while (n < row + 1 && !atomic_compare_exchange_weak(&p->nrows, &n,
                                                         row + 1))
        ;
}

void
peers_row_clear(struct peers *p, int row)
{
    for (int k = 0; k < PEERS_KINDS; k++)
        for (int i = 0; i < PEERS_BUCKETS; i++)
            atomic_store_explicit(&p->rows[row][k][i], 0,
                                  memory_order_relaxed);
}

/* splitmix64's finaliser: every input bit moves every output bit. */
static uint64_t
mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

struct peers_key
peers_key(const struct peers *p, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0xff, 0xff };
    uint64_t x = 0, tag = 0;

    if (sa->sa_family == AF_INET) {
        x = ((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr;
        tag = 4;
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a =
            ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        if (memcmp(a, mapped, sizeof(mapped)) == 0) {
            uint32_t v4;
            memcpy(&v4, a + 12, 4);
            x = v4;
            tag = 4;
        } else {
            memcpy(&x, a, 8);           /* the /64 */
            tag = 6;
        }
    }
    uint64_t h = mix(mix(x ^ p->seed) ^ tag);
    struct peers_key k = { (uint16_t)(h % PEERS_BUCKETS),
                           (uint16_t)((h >> 32) % PEERS_BUCKETS) };
    if (k.b == k.a)
        k.b = (uint16_t)((k.a + 1) % PEERS_BUCKETS);
    return k;
}

void
peers_add(struct peers *p, int row, struct peers_key k, enum peers_kind kind,
          int delta)
{
    /* One writer per row: plain relaxed stores of a new value suffice. */
    _Atomic uint32_t *r = p->rows[row][kind];
    atomic_store_explicit(&r[k.a], atomic_load_explicit(&r[k.a],
                          memory_order_relaxed) + (uint32_t)delta,
                          memory_order_relaxed);
    atomic_store_explicit(&r[k.b], atomic_load_explicit(&r[k.b],
                          memory_order_relaxed) + (uint32_t)delta,
                          memory_order_relaxed);
}

uint32_t
peers_count(const struct peers *p, struct peers_key k, enum peers_kind kind)
{
    int      n = atomic_load_explicit(&p->nrows, memory_order_relaxed);
    uint32_t a = 0, b = 0;

    for (int r = 0; r < n && r < STATS_SLOTS; r++) {
        a += atomic_load_explicit(&p->rows[r][kind][k.a],
                                  memory_order_relaxed);
        b += atomic_load_explicit(&p->rows[r][kind][k.b],
                                  memory_order_relaxed);
    }
    return a < b ? a : b;
}
