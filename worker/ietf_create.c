/* ietf_create.c: upload creation (a POST or PUT to a signed file URL,
 * checked like the PUT the URL was signed for, carrying Upload-Complete or
 * Upload-Incomplete): the new upload's id and session, made room for when
 * space is short, then 104 (Upload Resumption Supported) with its Location
 * before the body is read. */
#define _GNU_SOURCE
#include "worker/ietf.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/conf/conf.h"
#include "lib/http/response.h"
#include "lib/http/tusmeta.h"
#include "lib/store/manifest.h"
#include "lib/store/path.h"
#include "lib/store/retry.h"
#include "lib/util/log.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/ietf_part.h"
#include "worker/session.h"
#include "worker/syncpool.h"

/* The content type a v2 signature binds: the request's own, unless it is
 * the draft's partial-upload type; else tus-js-client's "filetype"
 * metadata (it sends Upload-Metadata in its IETF modes too). */
static void
content_type(struct ietf *t, const char *ct, const struct tusmeta *m,
             char *out, size_t len)
{
    const struct tusmeta_pair *p;
    unsigned char buf[4 * ((MANIFEST_CTYPE_MAX + 3) / 3) + 4];
    (void)t;
    out[0] = '\0';
    if (ct && strncasecmp(ct, IETF_PARTIAL, strlen(IETF_PARTIAL)) != 0) {
        snprintf(out, len, "%s", ct);
        return;
    }
    if (m == NULL || (p = tusmeta_find(m, "filetype")) == NULL
        || p->value_len == 0 || p->value_len % 4 != 0
        || p->value_len >= sizeof(buf))
        return;
    char in[sizeof(buf)];
    memcpy(in, p->value, p->value_len);
    in[p->value_len] = '\0';
    int n = EVP_DecodeBlock(buf, (const unsigned char *)in,
                            (int)p->value_len);
    if (n < 0)
        return;
    n -= (in[p->value_len - 1] == '=') + (in[p->value_len - 2] == '=');
    if (n <= 0 || (size_t)n >= len || memchr(buf, '\0', (size_t)n))
        return;
    memcpy(out, buf, (size_t)n);
    out[n] = '\0';
}

static int
check_auth(struct ietf *t, const char *query, const char *ctype,
           const char **why)
{
    const struct conf *cf = t->w->conf;
    struct auth_result res;

    struct auth_request ar = {
        .method = "PUT",         /* the URL was signed for an upload PUT */
        .prefix = cf->url_prefix,
        .path = t->hdr.path,
        .path_len = strlen(t->hdr.path),
        .query = query && query[0] ? query : NULL,
        .content_length = t->length == MANIFEST_SIZE_UNKNOWN
                          ? -1 : (int64_t)t->length,
        .content_type = ctype[0] ? ctype : NULL,
        .now = t->started,
    };
    if (auth_check(t->w->keys, t->w->nkeys, &ar, cf->token_max_lifetime,
                   &res) == 0) {
        t->hdr.mac_variant = (uint8_t)res.variant;
        t->hdr.mac_size = res.signed_size >= 0 ? (uint64_t)res.signed_size
                                               : MANIFEST_SIZE_UNKNOWN;
        t->hdr.mac_expiry = res.expires;
        snprintf(t->hdr.ctype, sizeof(t->hdr.ctype), "%s", ctype);
        return 0;
    }
    if (res.status == AUTH_SIZE_UNKNOWN) {
        *why = "the URL's signature binds the size: send Upload-Length (or "
               "the whole body with Upload-Complete: ?1)";
        return 400;
    }
    *why = res.reason;
    return res.status == AUTH_ERROR ? 500 : 403;
}

static bool
final_exists(struct ietf *t)
{
    struct stat st;
    int fd;
    char err[64];
    if (store_open_file(t->w->root_fd, t->hdr.path, &fd, &st, err,
                        sizeof(err)) < 0)
        return errno != ENOENT;
    close(fd);
    return true;
}

/* The upload's length: Upload-Length, or a complete request's body. */
static int
parse_length(struct ietf *t, const char *ul, const char **why)
{
    uint64_t declared = MANIFEST_SIZE_UNKNOWN;

    if (ul && ietf_sf_uint(ul, &declared) < 0) {
        *why = "Upload-Length must be a non-negative integer";
        return 400;
    }
    if (t->complete && t->body_len >= 0) {
        if (ul && declared != (uint64_t)t->body_len) {
            t->problem = IETF_INCONSISTENT_LENGTH;
            *why = "Upload-Length differs from the length of a complete "
                   "request's body";
            return 400;
        }
        declared = (uint64_t)t->body_len;
    } else if (t->complete && declared == MANIFEST_SIZE_UNKNOWN) {
        *why = "a complete creation without Content-Length needs "
               "Upload-Length";
        return 411;
    } else if (declared != MANIFEST_SIZE_UNKNOWN && t->body_len > 0
               && (uint64_t)t->body_len > declared) {
        t->problem = IETF_INCONSISTENT_LENGTH;
        *why = "body longer than Upload-Length";
        return 400;
    }
    t->length = declared;
    if (declared != MANIFEST_SIZE_UNKNOWN
        && declared > t->w->conf->max_upload_size) {
        *why = "upload over the server's maximum upload size (Upload-Limit "
               "max-size)";
        return 413;
    }
    return 0;
}

int
ietf_create_parse(struct ietf *t, struct conn *c, struct http_request *req,
                  const char **why)
{
    const char *md = http_header_get(req, "Upload-Metadata");
    char ctype[MANIFEST_CTYPE_MAX + 1];
    struct tusmeta meta;
    size_t plen;
    int status;

    if (c->rel_len == 0) {
        *why = "creation goes to a signed file URL";
        return 404;
    }
    if (store_path_decode(c->rel, c->rel_len, t->hdr.path,
                          sizeof(t->hdr.path), &plen, t->err,
                          sizeof(t->err)) < 0) {
        *why = t->err;
        return 400;
    }
    if (c->query && strlen(c->query) > AUTH_QUERY_MAX) {
        *why = "query string too long";
        return 400;
    }
    if (ietf_complete_parse(t->version,
                            http_header_get(req, "Upload-Complete"),
                            http_header_get(req, "Upload-Incomplete"),
                            &t->complete, why) < 0)
        return 400;
    if ((status = ietf_parse_body(t, req, why)) != 0)
        return status;
    if ((status = parse_length(t, http_header_get(req, "Upload-Length"),
                               why)) != 0)
        return status;
    if (md && strlen(md) > MANIFEST_META_MAX) {
        *why = "Upload-Metadata longer than 4096 bytes";
        return 400;
    }
    if (md && tusmeta_parse(md, &meta, t->err, sizeof(t->err)) < 0) {
        *why = t->err;
        return 400;
    }
    snprintf(t->hdr.meta, sizeof(t->hdr.meta), "%s", md ? md : "");
    content_type(t, http_header_get(req, "Content-Type"), md ? &meta : NULL,
                 ctype, sizeof(ctype));
    if ((status = check_auth(t, c->query, ctype, why)) != 0)
        return status;
    if (final_exists(t)) {
        *why = "a file already exists at this path";
        return 409;
    }
    return 0;
}

static int
new_id(struct ietf *t)
{
    unsigned char b[IETF_ID_BYTES];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return -1;
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(t->id + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static void
reclaim_work(struct sync_job *job)
{
    struct ietf *t = (struct ietf *)(void *)((char *)job
                                             - offsetof(struct ietf, job));
    t->reclaimed = sess_reclaim(t->w, t->err, sizeof(t->err));
}

/* Creation failed for want of space: once the sessions that are due are
 * removed, create again from nothing (a new id; nothing was answered). */
static void
reclaim_done(struct sync_job *job)
{
    struct ietf *t = (struct ietf *)(void *)((char *)job
                                             - offsetof(struct ietf, job));
    if (!ietf_still_wanted(t))
        return;
    if (t->reclaimed < 0)
        log_warn("ietf: reclaiming space: %s", t->err);
    if (t->reclaimed <= 0) {
        ietf_fail(t, 507, true, "not enough free space");
        return;
    }
    ietf_create_begin(t, t->c);
}

static bool
start_reclaim(struct ietf *t)
{
    if (store_retry(&t->retry, ENOSPC) != STORE_RETRY_RECLAIM)
        return false;
    sess_detach(t->sess);
    t->sess = NULL;
    t->pending = true;
    t->job.work = reclaim_work;
    t->job.done = reclaim_done;
    syncpool_submit(t->w->pool, &t->job);
    return true;
}

static void
created(struct sess *s, int rc, void *arg)
{
    struct ietf *t = arg;
    const char *why = NULL;
    char location[sizeof(t->w->conf->url_prefix) + sizeof(IETF_RESOURCE)
                  + IETF_ID_LEN];
    struct http_head h;
    (void)s;
    if (!ietf_still_wanted(t))
        return;
    if (rc == 507 && start_reclaim(t))
        return;
    if (rc != 0) {
        ietf_fail(t, rc, true, "%s", rc == 507 ? "not enough free space"
                  : rc == 503 && sess_elsewhere(s) ? sess_error(s)
                  : rc == 503 ? "too many upload sessions; retry shortly"
                  : "cannot create the upload session");
        return;
    }
    int status = ietf_lease_body(t, t->length, &why);
    if (status != 0) {
        ietf_fail(t, status, true, "%s", why);
        return;
    }
    log_info("ietf: upload %.8s... created for %s (interop %d)", t->id,
             t->hdr.path, t->version);
    /* The upload resource exists and is durable: tell the client where,
     * so a creation cut from here on can resume. Never a 1xx to an
     * HTTP/1.0 client (RFC 9110, 15.2). */
    if (t->c->in == NULL || t->c->in->req.http_minor < 1) {
        ietf_resume(t, NULL);
        return;
    }
    ietf_location(t, location, sizeof(location));
    http_head_start(&h, 104);
    http_head_add(&h, "Location", "%s", location);
    http_head_add(&h, "Upload-Draft-Interop-Version", "%d", t->version);
    ietf_add_limit(t, &h, (int64_t)t->started);
    ietf_resume(t, &h);
}

int
ietf_create_begin(struct ietf *t, struct conn *c)
{
    const struct conf *cf = c->w->conf;
    uint8_t key[MANIFEST_KEY_LEN];

    if (new_id(t) < 0)
        return ietf_fail(t, 500, true, "no randomness for an upload id");
    t->hdr.proto = MANIFEST_PROTO_IETF;
    t->hdr.size = t->length;
    t->hdr.created = t->started;
    t->hdr.expires = t->started + cf->sessiontimeout;
    memcpy(t->hdr.id, t->id, sizeof(t->id));
    ietf_session_key(t->id, key);
    if ((t->sess = sess_new(c->w, key, &t->hdr)) == NULL)
        return ietf_fail(t, 503, true, "out of memory");
    conn_set_handler(c, &ietf_handler, t);
    t->in_head = true;
    t->pending = true;
    sess_open(t->sess, true, created, t);
    return ietf_after_head_call(t, c);
}
