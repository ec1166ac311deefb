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

char *
conn_rbuf_get(struct worker *w)
{
    if (w->nrbuf_cache > 0)
        return w->rbuf_cache[--w->nrbuf_cache];
    return malloc(CONN_RBUF_SIZE);
}

void
conn_rbuf_put(struct worker *w, char *buf)
{
    int cap = (int)(sizeof(w->rbuf_cache) / sizeof(w->rbuf_cache[0]));

    if (buf == NULL)
        return;
    if (w->nrbuf_cache < cap)
        w->rbuf_cache[w->nrbuf_cache++] = buf;
    else
        free(buf);           /* mmapped (conn_memory_init): back at once */
}

/* Parsers: a keep-alive connection returns its parser whenever it goes
 * idle (between two requests, usually), so without a cache every request
 * paid a malloc and, before, a 17 KiB memset. */
struct http_in *
conn_in_get(struct worker *w)
{
    if (w->nin_cache > 0)
        return w->in_cache[--w->nin_cache];
    return malloc(sizeof(struct http_in));
}

void
conn_in_put(struct worker *w, struct http_in *in)
{
    int cap = (int)(sizeof(w->in_cache) / sizeof(w->in_cache[0]));

    if (in == NULL)
        return;
    if (w->nin_cache < cap)
        w->in_cache[w->nin_cache++] = in;
    else
        free(in);
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
    while (w->nrbuf_cache > 0)
        free(w->rbuf_cache[--w->nrbuf_cache]);
    while (w->nin_cache > 0)
        free(w->in_cache[--w->nin_cache]);
}
