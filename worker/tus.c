/* tus.c: tus 1.0.0 (core, creation, creation-with-upload,
 * creation-defer-length, expiration, checksum, termination, concatenation)
 * on the same resumable sessions as the chunked-header protocol.
 * docs/protocol.md, "tus 1.0", is the client author's view.
 *
 *   POST <prefix><signed path>?<signature>    creation: checked like the PUT
 *                                             the URL was signed for
 *   HEAD|PATCH|DELETE <prefix>.tus/<id>       the upload resource
 *
 * The id is 128 random bits in hex and the session key is derived from it
 * alone: the id is the capability (the Location goes only to the creator),
 * and the signed path it was created for is in the session's manifest
 * header. ".tus" is a dot-name, which store_path_decode refuses, so no file
 * can ever be named like an upload resource.
 *
 * Concatenation (tus_concat.c): partial uploads are sessions that are
 * never published; a final upload copies them, in order, into its own
 * session and publishes that. An upload past its
 * Upload-Expires answers 410 to every request, before the janitor sweeps it.
 *
 * Everything that can be refused without the body is refused at the head
 * (or once the session is open, with the parser still paused), and the
 * connection is then closed; answers after a complete body keep it. A PATCH
 * cut mid-body keeps what arrived (sess_detach), unless it carried
 * Upload-Checksum: bytes that can no longer be verified are dropped.
 *
 * The parts: tus_parse.c (constants, pure header parsing), tus_create.c
 * (POST), tus_concat.c (POST of a final upload), tus_patch.c (PATCH),
 * tus_finish.c (answers after the body, HEAD, DELETE); this file holds the
 * request's life and the shared steps. They share tus_part.h. */
#define _GNU_SOURCE
#include "worker/tus.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/conf/conf.h"
#include "lib/http/response.h"
#include "lib/http/tusmeta.h"
#include "lib/store/manifest.h"
#include "lib/store/path.h"
#include "lib/store/retry.h"
#include "lib/util/decimal.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/accesslog.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/session.h"
#include "worker/syncpool.h"
#include "worker/tus_part.h"

static int  tus_body(struct conn *c, const char *at, size_t len);
static int  tus_complete(struct conn *c);
static void tus_abort(struct conn *c);
static int  tus_checkpoint(struct conn *c);

const struct handler tus_handler = {
    .name = "tus",
    .body = tus_body,
    .complete = tus_complete,
    .abort = tus_abort,
    .checkpoint = tus_checkpoint,
};

/* ---- answers ------------------------------------------------------------- */

void
tus_head_begin(struct conn *c, struct http_head *h, int status)
{
    conn_head_begin(c, h, status);
    /* tus 1.0.0 core: on every answer except to OPTIONS (which has it
     * too, from tus_options_headers). */
    http_head_add(h, "Tus-Resumable", TUS_VERSION);
}

void
tus_add_expires(struct conn *c, struct http_head *h, int64_t last_active)
{
    char date[40];
    http_date((time_t)(last_active + c->w->conf->sessiontimeout), date,
              sizeof(date));
    http_head_add(h, "Upload-Expires", "%s", date);
}

/* One text line naming the problem. `unread`: the request body was not
 * read, so the connection cannot carry another request. */
void
tus_reply_error(struct conn *c, int status, bool unread, const char *why)
{
    struct http_head h;
    char body[512];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status,
                     http_status_text(status), why);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    if (unread || status >= 500)
        c->close_after = true;
    tus_head_begin(c, &h, status);
    if (status == 412)
        http_head_add(&h, "Tus-Version", TUS_VERSION);
    if (status == 405)
        http_head_add(&h, "Allow", "HEAD, PATCH, DELETE, OPTIONS");
    if (status == 503)
        http_head_add(&h, "Retry-After", "5");
    http_head_add(&h, "Content-Type", "text/plain; charset=utf-8");
    http_head_add(&h, "Content-Length", "%d", n);
    http_head_add(&h, "Cache-Control", "no-store");
    conn_respond_head(c, &h, c->method == HTTP_HEAD ? NULL : body,
                      c->method == HTTP_HEAD ? 0 : (size_t)n);
}

/* ---- life cycle ---------------------------------------------------------- */

/* Before an answer: a client reading /metrics right after it may be
 * served by another worker. */
void
tus_leave_gauge(struct tus *t)
{
    if (t->counted)
        t->w->slot->uploads--;
    t->counted = false;
}

void
tus_free(struct tus *t)
{
    if (t->sess) {
        /* Bytes under a checksum are kept only once it matched. */
        if (t->md && !t->verified)
            sess_discard(t->sess);
        else
            sess_detach(t->sess);
    }
    EVP_MD_CTX_free(t->mdctx);
    tus_leave_gauge(t);
    free(t);
}

/* Ends the request with an error; t is freed (tus_part.h). */
int
tus_fail(struct tus *t, int status, bool unread, const char *fmt, ...)
{
    struct conn *c = t->c;
    char why[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (c)
        conn_clear_handler(c, t);
    tus_free(t);
    if (c && conn_alive(c))
        tus_reply_error(c, status, unread, why);
    return -1;
}

/* A sess callback came back: is anyone still waiting for the answer? */
bool
tus_still_wanted(struct tus *t)
{
    t->pending = false;
    if (t->c != NULL && conn_alive(t->c))
        return true;
    if (t->c)
        conn_clear_handler(t->c, t);
    tus_free(t);
    return false;
}

void
tus_resume(struct tus *t)
{
    struct conn *c = t->c;
    if (t->expect_continue && conn_send_continue(c) < 0) {
        conn_close(c);                    /* tus_abort frees t */
        return;
    }
    /* A session call may answer at once, from inside the head callback:
     * the parser then simply goes on into the body (conn_resume_body
     * would re-enter it). */
    if (!t->in_head)
        conn_resume_body(c);
}

/* After a session call made from the head callback: answered already
 * (-1), or read the body now or once the callback has come (0). */
int
tus_after_head_call(struct tus *t, struct conn *c)
{
    if (c->handler_ctx != t)
        return -1;                        /* answered; t is gone */
    t->in_head = false;
    if (t->pending)
        conn_pause_body(c);               /* until the callback */
    return 0;
}

/* ---- parsing ------------------------------------------------------------- */

/* Upload-Checksum: the digest the body must have, computed as it comes. */
static int
parse_checksum(struct tus *t, const char *v, const char **why)
{
    int status = tus_checksum_parse(v, &t->md, t->want, sizeof(t->want), why);
    if (status != 0)
        return status;
    if ((t->mdctx = EVP_MD_CTX_new()) == NULL
        || EVP_DigestInit_ex(t->mdctx, t->md, NULL) != 1) {
        *why = "cannot compute checksums";
        return 500;
    }
    return 0;
}

/* Body headers shared by creation-with-upload and PATCH. */
int
tus_parse_body(struct tus *t, struct http_request *req, const char **why)
{
    const char *ct = http_header_get(req, "Content-Type");
    const char *ck = http_header_get(req, "Upload-Checksum");

    t->body_len = req->chunked ? -1 : req->content_length < 0
                                      ? 0 : req->content_length;
    t->expect_continue = req->expect_continue;
    if (t->body_len == 0 && t->op == OP_CREATE)
        return 0;                         /* plain creation: no body rules */
    if (ct == NULL || strcasecmp(ct, TUS_CTYPE) != 0) {
        *why = "Content-Type must be " TUS_CTYPE;
        return 415;
    }
    return ck ? parse_checksum(t, ck, why) : 0;
}

void
tus_session_key(const char *id, uint8_t key[MANIFEST_KEY_LEN])
{
    /* The id alone: requests to the upload resource carry no path. */
    manifest_key(id, strlen(id), "", 0, key);
}

/* Where the body goes, once the session is open: lease [offset, end). */
int
tus_lease_body(struct tus *t, uint64_t size, const char **why)
{
    uint64_t max = t->w->conf->max_upload_size, end;

    if (t->body_len == 0)
        return 0;
    if (t->body_len > 0)
        end = t->offset + (uint64_t)t->body_len;
    else
        end = size != MANIFEST_SIZE_UNKNOWN ? size : max;  /* chunked */
    if ((size != MANIFEST_SIZE_UNKNOWN && end > size) || end > max
        || end < t->offset) {
        *why = "body goes past Upload-Length";
        return 413;
    }
    if (end == t->offset)
        return 0;                /* a chunked body that must be empty */
    int rc = sess_lease_append(t->sess, t->offset, end);
    if (rc != SESS_LEASED) {
        *why = rc == 409 ? "Upload-Offset is not the upload's offset"
                         : "another request is writing this upload; retry";
        return rc;
    }
    t->leased = true;
    t->next_checkpoint = CHECKPOINT_BYTES;
    return 0;
}

/* Past its Upload-Expires (last activity + sessiontimeout) with nobody
 * writing it: the janitor's rule (shm/table.c, sweep), applied by every
 * request, so an upload never outlives what the client was told just
 * because the janitor has not run yet. */
bool
tus_expired(const struct tus *t, const struct shm_view *v)
{
    return v->state == SHM_ACTIVE && v->nleases == 0
        && v->last_active + t->w->conf->sessiontimeout <= (int64_t)time(NULL);
}

/* After sess_open on an upload resource: is it a live tus upload? If not,
 * the request has been answered (404, 410 or the open's own status). */
bool
tus_usable(struct tus *t, int rc, bool body_unread, struct shm_view *v)
{
    if (rc != 0 || sess_view(t->sess, v) < 0
        || v->proto != MANIFEST_PROTO_TUS) {
        tus_fail(t, rc == 0 || rc == 404 ? 404 : rc, body_unread, "%s",
             rc == 0 || rc == 404 ? "no such upload"
             : rc == 503 && sess_elsewhere(t->sess) ? sess_error(t->sess)
             : "cannot open the upload");
        return false;
    }
    if (v->state == SHM_DOOMED) {
        tus_fail(t, 410, body_unread, "upload expired or terminated");
        return false;
    }
    if (tus_expired(t, v)) {
        tus_fail(t, 410, body_unread, "upload expired (Upload-Expires has "
             "passed)");
        return false;
    }
    return true;
}

/* ---- the request --------------------------------------------------------- */

bool
tus_wants(struct conn *c, struct http_request *req)
{
    if (c->rel == NULL || req->method == HTTP_OPTIONS)
        return false;               /* admin_options answers discovery */
    /* A POST without Tus-Resumable is nobody's: 405 like other methods
     * on a file URL (api.md). */
    return strncmp(c->rel, TUS_RESOURCE, strlen(TUS_RESOURCE)) == 0
        || (req->method == HTTP_POST
            && http_header_get(req, "Tus-Resumable") != NULL);
}

/* Which operation, from the method (or X-HTTP-Method-Override, which tus
 * 1.0.0 core asks servers to honour for clients that cannot send PATCH). */
static int
parse_target(struct tus *t, struct conn *c, struct http_request *req,
             const char **why)
{
    const char *ov = http_header_get(req, "X-HTTP-Method-Override");
    bool resource = strncmp(c->rel, TUS_RESOURCE, strlen(TUS_RESOURCE)) == 0;
    int m = req->method;

    if (!resource) {
        t->op = OP_CREATE;          /* tus_wants: a POST */
        return 0;
    }
    if (m == HTTP_POST && ov && strcasecmp(ov, "PATCH") == 0)
        m = HTTP_PATCH;
    else if (m == HTTP_POST && ov && strcasecmp(ov, "DELETE") == 0)
        m = HTTP_DELETE;
    switch (m) {
    case HTTP_HEAD:   t->op = OP_HEAD; break;
    case HTTP_PATCH:  t->op = OP_PATCH; break;
    case HTTP_DELETE: t->op = OP_DELETE; break;
    default:
        *why = "an upload resource takes HEAD, PATCH, DELETE or OPTIONS";
        return 405;
    }
    const char *id = c->rel + strlen(TUS_RESOURCE);
    if (!tus_id_valid(id)) {
        *why = "no such upload";
        return 404;
    }
    memcpy(t->id, id, TUS_ID_LEN + 1);
    return 0;
}

int
tus_begin(struct conn *c, struct http_request *req)
{
    struct tus *t = calloc(1, sizeof(*t));
    const char *why = NULL, *tr = http_header_get(req, "Tus-Resumable");
    int status;

    if (!c->w->conf->resumable_uploads) {
        free(t);
        conn_reject(c, 501, "resumable uploads (tus) are disabled on this "
                    "server; send the file in one plain PUT");
        return -1;
    }
    if (t == NULL) {
        conn_reject(c, 503, "out of memory");
        return -1;
    }
    t->c = c;
    t->w = c->w;
    t->started = time(NULL);
    t->retry.max = c->w->conf->max_retries;
    if ((status = parse_target(t, c, req, &why)) != 0)
        return tus_fail(t, status, true, "%s", why);
    if (tr == NULL || strcmp(tr, TUS_VERSION) != 0)
        return tus_fail(t, 412, true, "Tus-Resumable: " TUS_VERSION
                    " is required");
    if (c->w->table == NULL)
        return tus_fail(t, 503, true, "resumable uploads are not available");
    /* Only a creation says what it is in a concatenation; tus-js-client
     * sends a partial's header on its HEAD and PATCH requests too, where
     * the upload resource already knows. */
    const char *uc = http_header_get(req, "Upload-Concat");
    if (uc && t->op == OP_CREATE
        && (status = tus_concat_parse(uc, c->w->conf->url_prefix, &t->concat,
                                      t->parts, TUS_PARTS_MAX, &t->nparts,
                                      &why)) != 0)
        return tus_fail(t, status, true, "%s", why);
    switch (t->op) {
    case OP_CREATE:
        t->counted = true;
        c->w->slot->uploads++;
        if (t->concat == TUS_CONCAT_FINAL)
            return tus_final_begin(t, c, req);
        if ((status = tus_create_parse(t, c, req, &why)) != 0)
            return tus_fail(t, status, true, "%s", why);
        return tus_create_begin(t, c);
    case OP_PATCH:
        t->counted = true;
        c->w->slot->uploads++;
        if ((status = tus_patch_parse(t, req, &why)) != 0)
            return tus_fail(t, status, true, "%s", why);
        return tus_patch_begin(t, c);
    case OP_HEAD:
    case OP_DELETE:
        conn_set_handler(c, &tus_handler, t);  /* answered at tus_complete */
        return 0;
    }
    return tus_fail(t, 500, true, "bad operation");
}

static int
tus_body(struct conn *c, const char *at, size_t len)
{
    struct tus *t = c->handler_ctx;

    if (t->op == OP_HEAD || t->op == OP_DELETE) {
        t->discarded += len;
        if (t->discarded > DISCARD_MAX)
            return tus_fail(t, 413, true, "request body not expected here");
        return 0;
    }
    if (len == 0)
        return 0;
    if (!t->leased)
        return tus_fail(t, 413, true, "body goes past Upload-Length");
    if (sess_write(t->sess, at, len) < 0) {
        int e = errno;
        if (e == EFBIG)
            return tus_fail(t, 413, true, "body goes past Upload-Length");
        log_error("%s: tus upload %.8s...: write: %s", c->peer, t->id,
                  strerror(e));
        return tus_fail(t, e == ENOSPC || e == EDQUOT ? 507 : 500, true, "%s",
                    e == ENOSPC || e == EDQUOT ? "not enough free space"
                                               : "cannot write the upload");
    }
    if (t->mdctx)
        EVP_DigestUpdate(t->mdctx, at, len);
    t->received += len;
    /* Durable as it streams, so a cut body resumes from near the cut;
     * not under a checksum, which decides only at the end. */
    if (t->md == NULL && sess_written(t->sess) >= t->next_checkpoint) {
        sess_checkpoint(t->sess);
        t->next_checkpoint = sess_written(t->sess) + CHECKPOINT_BYTES;
    }
    return 0;
}

static int
tus_complete(struct conn *c)
{
    struct tus *t = c->handler_ctx;
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header h;

    switch (t->op) {
    case OP_DELETE:
        tus_terminate(t);                       /* answers, now or later */
        return 0;
    case OP_HEAD:
        memset(&h, 0, sizeof(h));
        tus_session_key(t->id, key);
        if ((t->sess = sess_new(c->w, key, &h)) == NULL) {
            tus_fail(t, 503, false, "out of memory");
            return 0;
        }
        t->pending = true;
        sess_open(t->sess, false, tus_status_opened, t);
        return 0;
    case OP_CREATE:
    case OP_PATCH:
        break;
    }
    if (t->md) {
        unsigned char got[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_DigestFinal_ex(t->mdctx, got, &n) != 1
            || (int)n != EVP_MD_get_size(t->md)
            || CRYPTO_memcmp(got, t->want, n) != 0) {
            /* tus checksum: the bytes are dropped, the offset stays. */
            tus_fail(t, 460, false, "Upload-Checksum does not match the body");
            return 0;
        }
        t->verified = true;
    }
    /* A body with no bytes leased nothing, so nothing kept the upload
     * alive while it came: it may have expired since the head. */
    struct shm_view v;
    if (t->op == OP_PATCH && !t->leased && sess_view(t->sess, &v) == 0
        && tus_expired(t, &v)) {
        tus_fail(t, 410, false, "upload expired (Upload-Expires has passed)");
        return 0;
    }
    t->pending = true;
    sess_finish(t->sess, tus_finished, t);
    return 0;
}

static void
tus_abort(struct conn *c)
{
    struct tus *t = c->handler_ctx;
    if (t == NULL)
        return;
    conn_clear_handler(c, t);
    if (t->pending) {
        t->c = NULL;         /* the callback finds nobody and frees */
        return;
    }
    tus_free(t);             /* keeps what arrived, unless checksummed */
}

static int
tus_checkpoint(struct conn *c)
{
    struct tus *t = c->handler_ctx;
    if (t == NULL || !t->leased || t->md != NULL || t->pending)
        return -1;
    sess_checkpoint(t->sess);
    return 0;
}

void
tus_options_headers(struct conn *c, struct http_head *h)
{
    if (!c->w->conf->resumable_uploads)
        return;                 /* tus is not offered: do not advertise it */
    http_head_add(h, "Tus-Resumable", TUS_VERSION);
    http_head_add(h, "Tus-Version", TUS_VERSION);
    http_head_add(h, "Tus-Extension", TUS_EXTENSIONS);
    http_head_add(h, "Tus-Max-Size", "%llu",
                  (unsigned long long)c->w->conf->max_upload_size);
    http_head_add(h, "Tus-Checksum-Algorithm", TUS_ALGORITHMS);
}
