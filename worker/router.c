/* router.c: from a request head to its handler.
 *
 * Order matters and is the protocol's: the admin endpoints are outside the
 * upload prefix and skip the storage gate; a method that stores is refused
 * (503) while storage is unusable, before any protocol looks at it; the
 * IETF draft (its headers on a POST or PUT, anything on .ietf/) and tus (a
 * creation POST, anything on .tus/) claim their own requests before the
 * generic methods. */
#include "worker/router.h"

#include <stdbool.h>
#include <string.h>

#include "lib/conf/conf.h"
#include "worker/admin.h"
#include "worker/conn.h"
#include "worker/download.h"
#include "worker/handler.h"
#include "worker/ietf.h"
#include "worker/storage.h"
#include "worker/tus.h"
#include "worker/upload.h"

static int
split_target(struct conn *c, struct http_request *req)
{
    char *t = (char *)req->target;
    const char *prefix = c->w->conf->url_prefix;
    size_t plen = strlen(prefix);

    if (t[0] != '/')
        return -1;
    char *q = strchr(t, '?');
    if (q) {
        *q = '\0';      /* the target is ours (a copy in the head buffer) */
        c->query = q + 1;
    } else {
        c->query = NULL;
    }
    if (strncmp(t, prefix, plen) == 0) {
        c->rel = t + plen;
    } else if (strlen(t) + 1 == plen && strncmp(t, prefix, plen - 1) == 0) {
        c->rel = t + plen - 1;   /* the prefix itself, without its slash */
    } else {
        c->rel = NULL;
        return 0;
    }
    c->rel_len = strlen(c->rel);
    return 0;
}

static bool
is_admin(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);
    return strncmp(req->target, name, n) == 0
        && (req->target[n] == '\0' || req->target[n] == '?');
}

/* ---- requests answered once their (small, discarded) body is in -------- */

/* Discovery: what each resumable protocol announces. */
static void
options_headers(struct conn *c, struct http_head *h)
{
    tus_options_headers(c, h);
    ietf_options_headers(c, h);
}

static int
options_complete(struct conn *c)
{
    admin_options(c, options_headers);
    return 0;
}

static int
health_complete(struct conn *c)
{
    admin_health(c);
    return 0;
}

static int
metrics_complete(struct conn *c)
{
    admin_metrics(c);
    return 0;
}

static int
outside_complete(struct conn *c)
{
    conn_respond_text(c, 404, "404 Not Found: outside the upload prefix");
    return 0;
}

static int
download_complete(struct conn *c)
{
    download_serve(c, &c->in->req);
    return 0;
}

/* HEAD of an upload URL: a session's durable state, else the file. */
static int
head_complete(struct conn *c)
{
    if (!upload_status(c, &c->in->req))
        download_serve(c, &c->in->req);
    return 0;
}

static const struct handler options_handler = {
    .name = "options", .complete = options_complete,
};
static const struct handler health_handler = {
    .name = "health", .complete = health_complete,
};
static const struct handler metrics_handler = {
    .name = "metrics", .complete = metrics_complete,
};
static const struct handler outside_handler = {
    .name = "outside", .complete = outside_complete,
};
static const struct handler download_handler = {
    .name = "download", .complete = download_complete,
};
static const struct handler head_handler = {
    .name = "head", .complete = head_complete,
};

static const struct handler *
serve(const struct conn *c, const struct http_request *req)
{
    if (req->method == HTTP_OPTIONS)
        return &options_handler;
    if (is_admin(req, "/health"))
        return &health_handler;
    if (is_admin(req, "/metrics"))
        return &metrics_handler;
    if (c->rel == NULL)
        return &outside_handler;
    if (req->method == HTTP_HEAD)
        return &head_handler;
    return &download_handler;
}

/* A request whose body is an upload's bytes (PUT, tus/IETF POST and PATCH). */
static bool
writes_body(const struct http_request *req)
{
    return req->method == HTTP_PUT || req->method == HTTP_POST
           || req->method == HTTP_PATCH;
}

int
router_route(struct conn *c, struct http_request *req)
{
    if (is_admin(req, "/health") || is_admin(req, "/metrics")) {
        c->rel = NULL;
        conn_set_handler(c, serve(c, req), NULL);
        return 0;
    }
    if (split_target(c, req) < 0) {
        conn_reject(c, 400, "request target must be an absolute path");
        return -1;
    }
    if (storage_gate(c, req) < 0)
        return -1;
    /* Counted against server.max_uploads_per_address until answered. */
    if (writes_body(req) && conn_count_upload(c) < 0)
        return -1;
    /* Protocols that claim requests by their head: one line each. */
    if (ietf_wants(c, req))
        return ietf_begin(c, req);
    if (tus_wants(c, req))
        return tus_begin(c, req);
    switch (req->method) {
    case HTTP_PUT:
        return upload_begin(c, req);
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
        conn_set_handler(c, serve(c, req), NULL);
        return 0;
    default:
        conn_reject(c, 405, "method not allowed");
        return -1;
    }
}
