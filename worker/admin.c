/* admin.c: the operator's endpoints and the browser's preflight. */
#include "worker/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/http/response.h"
#include "shm/netstate.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/cors.h"
#include "worker/storage.h"

#define METRICS_MAX (64 * 1024)

/* 200 "ok" only while this worker could store an upload: monitoring must
 * see a missing, unwritable or full storage root, not a live process. */
void
admin_health(struct conn *c)
{
    struct http_head h;
    char body[320];
    int n, status = 200;

    if (storage_health(c->w, body, sizeof(body) - 1) < 0)
        status = 503;
    else
        snprintf(body, sizeof(body), "ok");
    n = (int)strlen(body);
    body[n++] = '\n';
    conn_head_begin(c, &h, status);
    http_head_put(&h, "Content-Type", "text/plain");
    http_head_put_u64(&h, "Content-Length", (uint64_t)n);
    http_head_put(&h, "Cache-Control", "no-store");
    conn_respond_head(c, &h, c->method == HTTP_HEAD ? NULL : body,
                      c->method == HTTP_HEAD ? 0 : (size_t)n);
}

void
admin_metrics(struct conn *c)
{
    if (c->w->netmon)     /* netmon counts; the page is its to write */
        c->w->stats->network_changes = c->w->netmon->changes_total;
    char *buf = malloc(METRICS_MAX);
    int n = buf ? stats_render(c->w->stats, buf, METRICS_MAX) : -1;
    if (n < 0) {
        free(buf);
        conn_respond_text(c, 500, "500 Internal Server Error: metrics");
        return;
    }
    struct http_head h;
    conn_head_begin(c, &h, 200);
    http_head_add(&h, "Content-Type", "text/plain; version=0.0.4");
    http_head_add(&h, "Content-Length", "%d", n);
    http_head_add(&h, "Cache-Control", "no-store");
    conn_respond_head(c, &h, c->method == HTTP_HEAD ? NULL : buf,
                      c->method == HTTP_HEAD ? 0 : (size_t)n);
    free(buf);
}

void
admin_options(struct conn *c,
              void (*extra)(struct conn *c, struct http_head *h))
{
    struct http_head h;
    conn_head_begin(c, &h, 204);
    http_head_add(&h, "Allow", CORS_ALLOW_METHODS);
    http_head_add(&h, "Access-Control-Allow-Methods", CORS_ALLOW_METHODS);
    http_head_add(&h, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
    http_head_add(&h, "Access-Control-Max-Age", "86400");
    if (extra)
        extra(c, &h);
    http_head_add(&h, "Content-Length", "0");
    conn_respond_head(c, &h, NULL, 0);
}
