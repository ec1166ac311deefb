/* ietf.c: the IETF resumable-upload draft on the same resumable sessions
 * as tus and the chunked-header protocol. docs/protocol.md, "IETF
 * resumable uploads", is the client author's view.
 *
 *   POST|PUT <prefix><signed path>?<signature>   creation: checked like the
 *                                                PUT the URL was signed for
 *   [GET|]HEAD|PATCH|DELETE <prefix>.ietf/<id>   the upload resource
 *
 * As for tus, the id is 128 random bits in hex and the session key is
 * derived from it alone: the id is the capability (its Location goes only
 * to the creator, in the 104 and the final answer). ".ietf" is a dot-name,
 * which store_path_decode refuses, so no file is ever named like one.
 *
 * Every request must carry Upload-Draft-Interop-Version, and the answer
 * speaks that version: interop 3 (draft -01) says Upload-Incomplete, the
 * later ones Upload-Complete; 6 on add Upload-Limit, a mandatory
 * application/partial-upload on PATCH and problem documents. A version
 * outside 3..8 is refused (400) naming the ones served.
 *
 * Everything refusable without the body is refused at the head (or once
 * the session is open, with the parser paused) and the connection closed;
 * answers after a complete body keep it. A creation or append cut mid-body
 * keeps what arrived (sess_detach) and never completes the upload: the
 * client resumes from the offset HEAD reports.
 *
 * The parts: ietf_parse.c (constants, pure header parsing), ietf_create.c
 * (creation and its 104), ietf_append.c (PATCH), ietf_finish.c (answers
 * after the body, HEAD, DELETE); this file holds the request's life and
 * the shared steps. They share ietf_part.h. */
#define _GNU_SOURCE
#include "worker/ietf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/conf/conf.h"
#include "lib/http/response.h"
#include "lib/store/manifest.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/ietf_part.h"
#include "worker/session.h"

static int  ietf_body(struct conn *c, const char *at, size_t len);
static int  ietf_complete(struct conn *c);
static void ietf_abort(struct conn *c);
static int  ietf_checkpoint(struct conn *c);

const struct handler ietf_handler = {
    .name = "ietf",
    .body = ietf_body,
    .complete = ietf_complete,
    .abort = ietf_abort,
    .checkpoint = ietf_checkpoint,
};

/* ---- answers ------------------------------------------------------------- */

void
ietf_head_begin(struct ietf *t, struct conn *c, struct http_head *h,
                int status)
{
    conn_head_begin(c, h, status);
    if (t->version)
        http_head_add(h, "Upload-Draft-Interop-Version", "%d", t->version);
}

void
ietf_add_limit(struct ietf *t, struct http_head *h, int64_t last_active)
{
    char limit[96];
    int64_t age = -1;
    if (!ietf_has_limit(t->version))
        return;
    if (last_active > 0) {
        age = last_active + t->w->conf->sessiontimeout - (int64_t)time(NULL);
        if (age < 0)
            age = 0;
    }
    ietf_limit_format(t->version, t->w->conf->max_upload_size, age, limit,
                      sizeof(limit));
    http_head_add(h, "Upload-Limit", "%s", limit);
}

uint64_t
ietf_offset(const struct shm_view *v)
{
    return v->state == SHM_DONE ? v->size : v->prefix;
}

/* Upload-Offset, completion and Upload-Length of the upload. */
void
ietf_add_state(struct ietf *t, struct http_head *h, const struct shm_view *v)
{
    http_head_add(h, "Upload-Offset", "%llu",
                  (unsigned long long)ietf_offset(v));
    http_head_add(h, ietf_complete_name(t->version), "%s",
                  ietf_complete_value(t->version, v->state == SHM_DONE));
    if (v->size != SHM_SIZE_UNKNOWN)
        http_head_add(h, "Upload-Length", "%llu", (unsigned long long)v->size);
}

void
ietf_location(struct ietf *t, char *buf, size_t len)
{
    snprintf(buf, len, "%s" IETF_RESOURCE "%s", t->w->conf->url_prefix, t->id);
}

static void
reply_error(struct ietf *t, struct conn *c, int status, bool unread,
            enum ietf_problem p, uint64_t expected, const char *why)
{
    struct http_head h;
    char body[512];
    size_t n = 0;
    bool problem = ietf_has_problem(t->version, p);

    if (problem)
        n = ietf_problem_json(p, expected, t->offset, body, sizeof(body));
    if (n == 0) {
        problem = false;
        int k = snprintf(body, sizeof(body), "%d %s: %s\n", status,
                         http_status_text(status), why);
        n = k < 0 || (size_t)k >= sizeof(body) ? sizeof(body) - 1 : (size_t)k;
    }
    if (unread || status >= 500)
        c->close_after = true;
    ietf_head_begin(t, c, &h, status);
    if (p == IETF_MISMATCHING_OFFSET) {
        /* The draft: the offset to resume from, and not complete. */
        http_head_add(&h, "Upload-Offset", "%llu",
                      (unsigned long long)expected);
        http_head_add(&h, ietf_complete_name(t->version), "%s",
                      ietf_complete_value(t->version, false));
    }
    if (status == 405)
        http_head_add(&h, "Allow", "GET, HEAD, PATCH, DELETE, OPTIONS");
    if (status == 503)
        http_head_add(&h, "Retry-After", "5");
    if (status == 413)
        ietf_add_limit(t, &h, 0);       /* the draft: say which limit */
    http_head_add(&h, "Content-Type", "%s",
                  problem ? IETF_PROBLEM : "text/plain; charset=utf-8");
    http_head_add(&h, "Content-Length", "%zu", n);
    http_head_add(&h, "Cache-Control", "no-store");
    conn_respond_head(c, &h, c->method == HTTP_HEAD ? NULL : body,
                      c->method == HTTP_HEAD ? 0 : n);
}

/* ---- life cycle ---------------------------------------------------------- */

void
ietf_leave_gauge(struct ietf *t)
{
    if (t->counted)
        t->w->slot->uploads--;
    t->counted = false;
}

void
ietf_free(struct ietf *t)
{
    if (t->sess)
        sess_detach(t->sess);     /* keeps what arrived */
    ietf_leave_gauge(t);
    free(t);
}

int
ietf_fail_problem(struct ietf *t, int status, bool unread,
                  enum ietf_problem p, uint64_t expected, const char *why)
{
    struct conn *c = t->c;
    if (c)
        conn_clear_handler(c, t);
    if (c && conn_alive(c))
        reply_error(t, c, status, unread, p, expected, why);
    ietf_free(t);
    return -1;
}

int
ietf_fail(struct ietf *t, int status, bool unread, const char *fmt, ...)
{
    char why[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return ietf_fail_problem(t, status, unread, IETF_PROBLEM_NONE, 0, why);
}

bool
ietf_still_wanted(struct ietf *t)
{
    t->pending = false;
    if (t->c != NULL && conn_alive(t->c))
        return true;
    if (t->c)
        conn_clear_handler(t->c, t);
    ietf_free(t);
    return false;
}

void
ietf_resume(struct ietf *t, struct http_head *interim)
{
    struct conn *c = t->c;
    /* 100 first when asked for: the draft says a 104 does not replace it. */
    if ((t->expect_continue && conn_send_continue(c) < 0)
        || (interim && conn_send_informational(c, interim) < 0)) {
        conn_close(c);                    /* ietf_abort frees t */
        return;
    }
    if (!t->in_head)
        conn_resume_body(c);
}

int
ietf_after_head_call(struct ietf *t, struct conn *c)
{
    if (c->handler_ctx != t)
        return -1;                        /* answered; t is gone */
    t->in_head = false;
    if (t->pending)
        conn_pause_body(c);               /* until the callback */
    return 0;
}

/* ---- shared steps -------------------------------------------------------- */

/* Body length, Expect and, where the version demands it, the media type. */
int
ietf_parse_body(struct ietf *t, struct http_request *req, const char **why)
{
    const char *ct = http_header_get(req, "Content-Type");

    t->body_len = req->chunked ? -1 : req->content_length < 0
                                      ? 0 : req->content_length;
    t->expect_continue = req->expect_continue;
    if (t->op == IETF_APPEND && ietf_needs_partial_ctype(t->version)
        && (ct == NULL || strncasecmp(ct, IETF_PARTIAL,
                                      strlen(IETF_PARTIAL)) != 0
            || (ct[strlen(IETF_PARTIAL)] != '\0'
                && ct[strlen(IETF_PARTIAL)] != ';'))) {
        *why = "Content-Type must be " IETF_PARTIAL;
        return 415;
    }
    return 0;
}

void
ietf_session_key(const char *id, uint8_t key[MANIFEST_KEY_LEN])
{
    /* The id alone, in its own name space (tus uses ""). */
    manifest_key(id, strlen(id), IETF_RESOURCE, strlen(IETF_RESOURCE), key);
}

/* Where the body goes, once the session is open: lease [offset, end). */
int
ietf_lease_body(struct ietf *t, uint64_t size, const char **why)
{
    uint64_t max = t->w->conf->max_upload_size, end;

    if (t->body_len == 0)
        return 0;
    if (t->body_len > 0)
        end = t->offset + (uint64_t)t->body_len;
    else
        end = size != MANIFEST_SIZE_UNKNOWN ? size : max;  /* chunked */
    if (end > max || end < t->offset) {
        *why = "body goes past the server's maximum upload size";
        return 413;
    }
    if (size != MANIFEST_SIZE_UNKNOWN && end > size) {
        *why = "body goes past the upload's length";
        return 400;
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
    t->next_checkpoint = IETF_CHECKPOINT_BYTES;
    return 0;
}

/* Past last activity + sessiontimeout with nobody writing (the janitor's
 * rule, as for tus). */
bool
ietf_expired(const struct ietf *t, const struct shm_view *v)
{
    return v->state == SHM_ACTIVE && v->nleases == 0
        && v->last_active + t->w->conf->sessiontimeout <= (int64_t)time(NULL);
}

bool
ietf_usable(struct ietf *t, int rc, bool body_unread, struct shm_view *v)
{
    if (rc != 0 || sess_view(t->sess, v) < 0
        || v->proto != MANIFEST_PROTO_IETF) {
        ietf_fail(t, rc == 0 || rc == 404 ? 404 : rc, body_unread, "%s",
                  rc == 0 || rc == 404 ? "no such upload"
                  : rc == 503 && sess_elsewhere(t->sess) ? sess_error(t->sess)
                  : "cannot open the upload");
        return false;
    }
    if (v->state == SHM_DOOMED || ietf_expired(t, v)) {
        ietf_fail(t, 410, body_unread, "upload expired or cancelled");
        return false;
    }
    return true;
}

/* ---- the request --------------------------------------------------------- */

bool
ietf_wants(struct conn *c, struct http_request *req)
{
    if (c->rel == NULL || req->method == HTTP_OPTIONS)
        return false;               /* admin_options answers discovery */
    if (strncmp(c->rel, IETF_RESOURCE, strlen(IETF_RESOURCE)) == 0)
        return true;
    /* Creation: the draft's headers on a method that carries content.
     * A tus POST carries none of them. */
    return (req->method == HTTP_POST || req->method == HTTP_PUT)
        && (http_header_get(req, "Upload-Draft-Interop-Version") != NULL
            || http_header_get(req, "Upload-Complete") != NULL
            || http_header_get(req, "Upload-Incomplete") != NULL);
}

static int
parse_target(struct ietf *t, struct conn *c, struct http_request *req,
             const char **why)
{
    if (strncmp(c->rel, IETF_RESOURCE, strlen(IETF_RESOURCE)) != 0) {
        t->op = IETF_CREATE;        /* ietf_wants: a POST or PUT */
        return 0;
    }
    switch (req->method) {
    case HTTP_GET:                  /* offset retrieval, as HEAD (no body) */
    case HTTP_HEAD:   t->op = IETF_HEAD; break;
    case HTTP_PATCH:  t->op = IETF_APPEND; break;
    case HTTP_DELETE: t->op = IETF_DELETE; break;
    default:
        *why = "an upload resource takes GET, HEAD, PATCH, DELETE or "
               "OPTIONS";
        return 405;
    }
    const char *id = c->rel + strlen(IETF_RESOURCE);
    if (!ietf_id_valid(id)) {
        *why = "no such upload";
        return 404;
    }
    memcpy(t->id, id, IETF_ID_LEN + 1);
    return 0;
}

static int
parse_version(struct ietf *t, struct http_request *req)
{
    const char *v = http_header_get(req, "Upload-Draft-Interop-Version");
    int version = 0, rc = ietf_interop_parse(v, &version);
    if (rc == 0) {
        t->version = version;
        return 0;
    }
    if (rc == -2)
        return ietf_fail(t, 400, true, "Upload-Draft-Interop-Version %d is "
                         "not supported; this server speaks "
                         IETF_INTEROP_LIST, version);
    return ietf_fail(t, 400, true, "Upload-Draft-Interop-Version (one of "
                     IETF_INTEROP_LIST ") is required: this server speaks "
                     "drafts of the IETF resumable-upload protocol only");
}

int
ietf_begin(struct conn *c, struct http_request *req)
{
    struct ietf *t = calloc(1, sizeof(*t));
    const char *why = NULL;
    int status;

    if (t == NULL) {
        conn_reject(c, 503, "out of memory");
        return -1;
    }
    t->c = c;
    t->w = c->w;
    t->started = time(NULL);
    t->retry.max = c->w->conf->max_retries;
    t->length = MANIFEST_SIZE_UNKNOWN;
    if (parse_version(t, req) < 0)
        return -1;
    if (!c->w->conf->resumable_uploads)
        return ietf_fail(t, 501, true, "resumable uploads are disabled on "
                         "this server; send the file in one plain PUT");
    if ((status = parse_target(t, c, req, &why)) != 0)
        return ietf_fail(t, status, true, "%s", why);
    if (c->w->table == NULL)
        return ietf_fail(t, 503, true, "resumable uploads are not "
                         "available");
    switch (t->op) {
    case IETF_CREATE:
        t->counted = true;
        c->w->slot->uploads++;
        if ((status = ietf_create_parse(t, c, req, &why)) != 0)
            return ietf_fail_problem(t, status, true, t->problem, 0, why);
        return ietf_create_begin(t, c);
    case IETF_APPEND:
        t->counted = true;
        c->w->slot->uploads++;
        if ((status = ietf_append_parse(t, req, &why)) != 0)
            return ietf_fail_problem(t, status, true, t->problem, 0, why);
        return ietf_append_begin(t, c);
    case IETF_HEAD:
    case IETF_DELETE:
        conn_set_handler(c, &ietf_handler, t);  /* answered at completion */
        return 0;
    }
    return ietf_fail(t, 500, true, "bad operation");
}

static int
ietf_body(struct conn *c, const char *at, size_t len)
{
    struct ietf *t = c->handler_ctx;

    if (t->op == IETF_HEAD || t->op == IETF_DELETE) {
        t->discarded += len;
        if (t->discarded > IETF_DISCARD_MAX)
            return ietf_fail(t, 413, true, "request body not expected here");
        return 0;
    }
    if (len == 0)
        return 0;
    if (!t->leased)
        return ietf_fail_problem(t, 400, true, IETF_INCONSISTENT_LENGTH, 0,
                                 "body goes past the upload's length");
    if (sess_write(t->sess, at, len) < 0) {
        int e = errno;
        if (e == EFBIG)
            return ietf_fail_problem(t, 400, true, IETF_INCONSISTENT_LENGTH,
                                     0, "body goes past the upload's length");
        log_error("%s: ietf upload %.8s...: write: %s", c->peer, t->id,
                  strerror(e));
        return ietf_fail(t, e == ENOSPC || e == EDQUOT ? 507 : 500, true,
                         "%s", e == ENOSPC || e == EDQUOT
                         ? "not enough free space" : "cannot write the upload");
    }
    t->received += len;
    /* Durable as it streams, so a cut body resumes from near the cut. */
    if (sess_written(t->sess) >= t->next_checkpoint) {
        sess_checkpoint(t->sess);
        t->next_checkpoint = sess_written(t->sess) + IETF_CHECKPOINT_BYTES;
    }
    return 0;
}

static int
ietf_complete(struct conn *c)
{
    struct ietf *t = c->handler_ctx;
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header h;
    struct shm_view v;

    switch (t->op) {
    case IETF_DELETE:
        ietf_cancel(t);                         /* answers, now or later */
        return 0;
    case IETF_HEAD:
        memset(&h, 0, sizeof(h));
        ietf_session_key(t->id, key);
        if ((t->sess = sess_new(c->w, key, &h)) == NULL) {
            ietf_fail(t, 503, false, "out of memory");
            return 0;
        }
        t->pending = true;
        sess_open(t->sess, false, ietf_status_opened, t);
        return 0;
    case IETF_CREATE:
    case IETF_APPEND:
        break;
    }
    /* A chunked body declared the whole rest of the upload: it must have
     * filled it, or the upload's length and the body disagree. */
    if (t->body_len < 0 && t->complete && t->length != MANIFEST_SIZE_UNKNOWN
        && t->offset + t->received != t->length) {
        ietf_fail_problem(t, 400, false, IETF_INCONSISTENT_LENGTH, 0,
                          "body ended before the upload's length");
        return 0;
    }
    if (t->op == IETF_APPEND && !t->leased && sess_view(t->sess, &v) == 0
        && ietf_expired(t, &v)) {
        ietf_fail(t, 410, false, "upload expired");
        return 0;
    }
    t->pending = true;
    sess_finish(t->sess, ietf_finished, t);
    return 0;
}

static void
ietf_abort(struct conn *c)
{
    struct ietf *t = c->handler_ctx;
    if (t == NULL)
        return;
    conn_clear_handler(c, t);
    if (t->pending) {
        t->c = NULL;         /* the callback finds nobody and frees */
        return;
    }
    ietf_free(t);            /* keeps what arrived */
}

static int
ietf_checkpoint(struct conn *c)
{
    struct ietf *t = c->handler_ctx;
    if (t == NULL || !t->leased || t->pending)
        return -1;
    sess_checkpoint(t->sess);
    return 0;
}

void
ietf_options_headers(struct conn *c, struct http_head *h)
{
    if (!c->w->conf->resumable_uploads)
        return;
    /* The draft: OPTIONS MUST list limits; there is no interop version to
     * pick a spelling by, and max-size is the same in all. */
    http_head_add(h, "Upload-Limit", "max-size=%llu",
                  (unsigned long long)c->w->conf->max_upload_size);
}
