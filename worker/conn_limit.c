/* conn_limit.c: per-address limits and memory after floods; see
 * conn_limit.h and docs/security.md. */
#define _GNU_SOURCE
#include "worker/conn_limit.h"

#include <malloc.h>
#include <stdlib.h>

#include "lib/conf/conf.h"
#include "lib/util/log.h"
#include "shm/peers.h"
#include "shm/stats.h"
#include "worker/conn.h"

#define LOG_EVERY_MS   10000    /* refusals: one line per worker per 10 s */
#define FLOOD_CONNS    64       /* a peak worth trimming the heap after */

static struct peers_key
key_of(const struct conn *c)
{
    return (struct peers_key){ c->peer_key[0], c->peer_key[1] };
}

static void
log_refusal(struct conn *c, const char *what, uint32_t n, int limit,
            const char *key)
{
    int64_t now = loop_now_ms(c->w->loop);
    if (c->w->limit_logged_ms != 0
        && now - c->w->limit_logged_ms < LOG_EVERY_MS)
        return;
    c->w->limit_logged_ms = now;
    log_warn("%s: refusing %s: %u from this address (%s = %d); further "
             "refusals for 10 s not logged", c->peer, what, n, key, limit);
}

bool
conn_limit_accept(struct conn *c, const struct sockaddr *sa)
{
    struct worker *w = c->w;
    int limit = w->conf->max_conns_per_addr;

    if (w->peers == NULL)
        return true;
    struct peers_key k = peers_key(w->peers, sa);
    c->peer_key[0] = k.a;
    c->peer_key[1] = k.b;
    /* Count first, then look: two workers accepting at once may both
     * refuse, but never both admit past the limit. */
    peers_add(w->peers, w->row, k, PEERS_CONNS, 1);
    c->peer_counted = true;
    if (limit == 0)
        return true;
    uint32_t n = peers_count(w->peers, k, PEERS_CONNS);
    if (n <= (uint32_t)limit)
        return true;
    peers_add(w->peers, w->row, k, PEERS_CONNS, -1);
    c->peer_counted = false;
    w->stats->refused_conns++;
    log_refusal(c, "a connection", n - 1, limit,
                "server.max_connections_per_address");
    return false;
}

void
conn_limit_refuse(struct conn *c)
{
    /* No plaintext answer fits on a TLS listener before a handshake: the
     * client sees the connection closed. */
    if (c->ssl) {
        conn_close(c);
        return;
    }
    conn_reject(c, 503, "too many connections from your address "
                "(server.max_connections_per_address); retry later");
}

int
conn_count_upload(struct conn *c)
{
    struct worker *w = c->w;
    int limit = w->conf->max_uploads_per_addr;

    if (w->peers == NULL || c->upload_counted)
        return 0;
    struct peers_key k = key_of(c);
    peers_add(w->peers, w->row, k, PEERS_UPLOADS, 1);
    c->upload_counted = true;
    if (limit == 0)
        return 0;
    uint32_t n = peers_count(w->peers, k, PEERS_UPLOADS);
    if (n <= (uint32_t)limit)
        return 0;
    conn_upload_done(c);
    w->stats->refused_uploads++;
    log_refusal(c, "an upload", n - 1, limit,
                "server.max_uploads_per_address");
    conn_reject(c, 503, "too many uploads in progress from your address "
                "(server.max_uploads_per_address); retry later");
    return -1;
}

void
conn_upload_done(struct conn *c)
{
    if (!c->upload_counted)
        return;
    peers_add(c->w->peers, c->w->row, key_of(c), PEERS_UPLOADS, -1);
    c->upload_counted = false;
}

void
conn_limit_release(struct conn *c)
{
    conn_upload_done(c);
    if (c->peer_counted)
        peers_add(c->w->peers, c->w->row, key_of(c), PEERS_CONNS, -1);
    c->peer_counted = false;
}

/* ---- memory -------------------------------------------------------------- */

/* Read buffers and parsers: a keep-alive connection returns both whenever
 * it goes idle (between two requests, usually), so without a cache every
 * request paid a malloc (and, for a parser, once a 17 KiB memset). */
#define RBUF_CACHE_MAX   16
#define PARSER_CACHE_MAX 8
_Static_assert(RBUF_CACHE_MAX <= (int)(sizeof(((struct conn_cache *)0)->slot)
                                       / sizeof(void *))
               && PARSER_CACHE_MAX <= RBUF_CACHE_MAX,
               "a conn_cache holds both");

static void *
cache_get(struct conn_cache *cc, size_t size)
{
    if (cc->n > 0)
        return cc->slot[--cc->n];
    return malloc(size);
}

static void
cache_put(struct conn_cache *cc, int max, void *p)
{
    if (p == NULL)
        return;
    /* Beyond the cache, a read buffer (mmapped: conn_memory_init) goes
     * back to the kernel at once. */
    if (cc->n < max)
        cc->slot[cc->n++] = p;
    else
        free(p);
}

static void
cache_drain(struct conn_cache *cc)
{
    while (cc->n > 0)
        free(cc->slot[--cc->n]);
}

char *
conn_rbuf_get(struct worker *w)
{
    return cache_get(&w->rbufs, CONN_RBUF_SIZE);
}

void
conn_rbuf_put(struct worker *w, char *buf)
{
    cache_put(&w->rbufs, RBUF_CACHE_MAX, buf);
}

struct http_in *
conn_in_get(struct worker *w)
{
    return cache_get(&w->parsers, sizeof(struct http_in));
}

void
conn_in_put(struct worker *w, struct http_in *in)
{
    cache_put(&w->parsers, PARSER_CACHE_MAX, in);
}

void
conn_memory_init(void)
{
    /* glibc raises its mmap threshold up to 32 MiB each time a mapped
     * chunk is freed, after which every read buffer of a flood comes from
     * the heap and stays there. Pinned, buffers this size and up are always
     * their own mappings, returned to the kernel by free(). */
    mallopt(M_MMAP_THRESHOLD, CONN_RBUF_SIZE / 2);
}

void
conn_memory_tick(struct worker *w)
{
    /* After a flood (many connections, now mostly gone), give the freed
     * heap (parser state, connection structs) back to the kernel. */
    if (w->conns_peak >= FLOOD_CONNS && w->nconns <= w->conns_peak / 4) {
        malloc_trim(0);
        w->conns_peak = w->nconns;
    }
}

void
conn_memory_fini(struct worker *w)
{
    cache_drain(&w->rbufs);
    cache_drain(&w->parsers);
}
