/* tus.c: tus 1.0.0 (core, creation, creation-with-upload,
 * creation-defer-length, expiration, checksum, termination) on the same
 * resumable sessions as the chunked-header protocol. docs/protocol.md,
 * "tus 1.0", is the client author's view.
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
 * Not concatenation: Upload-Concat on any request is 501, or a partial
 * upload would be published as the whole file. An upload past its
 * Upload-Expires answers 410 to every request, before the janitor sweeps it.
 *
 * Everything that can be refused without the body is refused at the head
 * (or once the session is open, with the parser still paused), and the
 * connection is then closed; answers after a complete body keep it. A PATCH
 * cut mid-body keeps what arrived (sess_detach), unless it carried
 * Upload-Checksum: bytes that can no longer be verified are dropped. */
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

#define TUS_VERSION       "1.0.0"
#define TUS_EXTENSIONS    "creation,creation-with-upload," \
                          "creation-defer-length,expiration,checksum," \
                          "termination"
#define TUS_ALGORITHMS    "sha1,sha256,md5"
#define TUS_CTYPE         "application/offset+octet-stream"
#define TUS_RESOURCE      ".tus/"
#define TUS_ID_BYTES      16                  /* 128 bits */
#define TUS_ID_LEN        (2 * TUS_ID_BYTES)
#define CHECKPOINT_BYTES  (8ULL * 1024 * 1024)
#define DISCARD_MAX       (64 * 1024)         /* body of a HEAD or DELETE */
#define CHECKSUM_MAX      128                 /* Upload-Checksum bytes */

enum tus_op { OP_CREATE, OP_HEAD, OP_PATCH, OP_DELETE };

struct tus {
    struct conn     *c;             /* NULL once the connection is gone */
    struct worker   *w;
    enum tus_op      op;
    struct sess     *sess;
    bool             pending;       /* a sess callback will come */
    bool             in_head;       /* inside the parser's head callback */
    bool             leased;        /* the body goes to the session */
    bool             verified;      /* checksum matched: commit is wanted */
    bool             counted;       /* in the uploads gauge */
    bool             expect_continue;
    char             id[TUS_ID_LEN + 1];
    uint64_t         offset;        /* where the body goes */
    int64_t          body_len;      /* Content-Length, -1 chunked */
    uint64_t         length;        /* Upload-Length, or SIZE_UNKNOWN */
    uint64_t         received, next_checkpoint, discarded;
    const EVP_MD    *md;            /* Upload-Checksum, or NULL */
    EVP_MD_CTX      *mdctx;
    unsigned char    want[EVP_MAX_MD_SIZE];
    time_t           started;
    char             err[256];
    struct manifest_header hdr;     /* creation: what the session binds */
    struct sync_job  job;           /* creation short of space: reclaim */
    struct store_retry retry;       /* uploads.maxretries */
    int              reclaimed;
};

/* ---- answers ------------------------------------------------------------- */

static void
head_begin(struct conn *c, struct http_head *h, int status)
{
    conn_head_begin(c, h, status);
    /* tus 1.0.0 core: on every answer except to OPTIONS (which has it
     * too, from tus_options_headers). */
    http_head_add(h, "Tus-Resumable", TUS_VERSION);
}

static void
add_expires(struct conn *c, struct http_head *h, int64_t last_active)
{
    char date[40];
    http_date((time_t)(last_active + c->w->conf->sessiontimeout), date,
              sizeof(date));
    http_head_add(h, "Upload-Expires", "%s", date);
}

/* One text line naming the problem. `unread`: the request body was not
 * read, so the connection cannot carry another request. */
static void
reply_error(struct conn *c, int status, bool unread, const char *why)
{
    struct http_head h;
    char body[512];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status,
                     http_status_text(status), why);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    if (unread || status >= 500)
        c->close_after = true;
    head_begin(c, &h, status);
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
static void
leave_gauge(struct tus *t)
{
    if (t->counted)
        t->w->slot->uploads--;
    t->counted = false;
}

static void
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
    leave_gauge(t);
    free(t);
}

/* Ends the request with an error; t is freed. Returns -1 for callers in
 * the parser's callbacks. */
static int
fail(struct tus *t, int status, bool unread, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(struct tus *t, int status, bool unread, const char *fmt, ...)
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
        reply_error(c, status, unread, why);
    return -1;
}

/* A sess callback came back: is anyone still waiting for the answer? */
static bool
still_wanted(struct tus *t)
{
    t->pending = false;
    if (t->c != NULL && conn_alive(t->c))
        return true;
    if (t->c)
        conn_clear_handler(t->c, t);
    tus_free(t);
    return false;
}

static void
resume(struct tus *t)
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
static int
after_head_call(struct tus *t, struct conn *c)
{
    if (c->handler_ctx != t)
        return -1;                        /* answered; t is gone */
    t->in_head = false;
    if (t->pending)
        conn_pause_body(c);               /* until the callback */
    return 0;
}

/* ---- parsing ------------------------------------------------------------- */

static int
parse_u64(const char *v, uint64_t *out)
{
    return decimal_parse(v, INT64_MAX, out);
}

static bool
is_b64(int ch)
{
    return isalnum(ch) || ch == '+' || ch == '/' || ch == '=';
}

/* Decodes standard base64 with padding; -1 if malformed. */
static int
b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outmax)
{
    if (inlen == 0 || inlen % 4 != 0 || inlen / 4 * 3 > outmax)
        return -1;
    for (size_t i = 0; i < inlen; i++)
        if (!is_b64((unsigned char)in[i])
            || (in[i] == '=' && i < inlen - 2))
            return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
    if (n < 0)
        return -1;
    n -= in[inlen - 1] == '=';
    n -= in[inlen - 2] == '=';
    return n;
}

/* The value of `key` in (validated) Upload-Metadata, decoded, or "" if
 * absent, empty or not text. */
static void
metadata_get(const char *meta, const char *key, char *out, size_t outlen)
{
    struct tusmeta m;
    const struct tusmeta_pair *p;
    unsigned char buf[MANIFEST_CTYPE_MAX + 3];
    char err[128];
    int n;

    out[0] = '\0';
    if (tusmeta_parse(meta, &m, err, sizeof(err)) < 0
        || (p = tusmeta_find(&m, key)) == NULL
        || (n = b64_decode(p->value, p->value_len, buf, sizeof(buf))) < 0
        || (size_t)n >= outlen || memchr(buf, '\0', (size_t)n))
        return;
    memcpy(out, buf, (size_t)n);
    out[n] = '\0';
}

/* Upload-Checksum: "<algorithm> <base64 digest>" (tus checksum). */
static int
parse_checksum(struct tus *t, const char *v, const char **why)
{
    char name[16];
    size_t nlen = strcspn(v, " ");

    if (strlen(v) > CHECKSUM_MAX || nlen == 0 || nlen >= sizeof(name)
        || v[nlen] != ' ') {
        *why = "Upload-Checksum must be \"<algorithm> <base64 digest>\"";
        return 400;
    }
    memcpy(name, v, nlen);
    name[nlen] = '\0';
    if (strcmp(name, "sha1") == 0)
        t->md = EVP_sha1();
    else if (strcmp(name, "sha256") == 0)
        t->md = EVP_sha256();
    else if (strcmp(name, "md5") == 0)
        t->md = EVP_md5();
    else {
        *why = "unsupported checksum algorithm (Tus-Checksum-Algorithm: "
               TUS_ALGORITHMS ")";
        return 400;
    }
    const char *d = v + nlen + 1;
    int n = b64_decode(d, strlen(d), t->want, sizeof(t->want));
    if (n != EVP_MD_get_size(t->md)) {
        t->md = NULL;
        *why = "Upload-Checksum digest is not valid base64 of the "
               "algorithm's size";
        return 400;
    }
    if ((t->mdctx = EVP_MD_CTX_new()) == NULL
        || EVP_DigestInit_ex(t->mdctx, t->md, NULL) != 1) {
        *why = "cannot compute checksums";
        return 500;
    }
    return 0;
}

/* Body headers shared by creation-with-upload and PATCH. */
static int
parse_body(struct tus *t, struct http_request *req, const char **why)
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

/* ---- creation ------------------------------------------------------------ */

static int
check_auth(struct tus *t, const char *query, const char **why)
{
    const struct conf *cf = t->w->conf;
    struct auth_key keys[CONF_MAX_SECRETS];
    struct auth_result res;
    char ctype[MANIFEST_CTYPE_MAX + 1];

    for (size_t i = 0; i < cf->nsecrets; i++) {
        keys[i].key = cf->secrets[i].key;
        keys[i].len = cf->secrets[i].len;
    }
    /* v2 binds the slot's content type, which a tus client cannot send as
     * Content-Type (that is the protocol's own); tus-js-client and Uppy
     * put it in the metadata as "filetype". */
    metadata_get(t->hdr.meta, "filetype", ctype, sizeof(ctype));
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
    if (auth_check(keys, cf->nsecrets, &ar, cf->token_max_lifetime,
                   &res) == 0) {
        t->hdr.mac_variant = (uint8_t)res.variant;
        t->hdr.mac_size = res.signed_size >= 0 ? (uint64_t)res.signed_size
                                               : MANIFEST_SIZE_UNKNOWN;
        t->hdr.mac_expiry = res.expires;
        snprintf(t->hdr.ctype, sizeof(t->hdr.ctype), "%s", ctype);
        return 0;
    }
    if (res.status == AUTH_SIZE_UNKNOWN) {
        /* The signature binds a size we will only learn later, and a
         * session outlives the query it was created with. */
        *why = "Upload-Defer-Length needs a URL whose signature does not "
               "bind the size (v3); send Upload-Length";
        return 400;
    }
    *why = res.reason;
    return res.status == AUTH_ERROR ? 500 : 403;
}

static bool
final_exists(struct tus *t)
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

static int
parse_create(struct tus *t, struct conn *c, struct http_request *req,
             const char **why)
{
    const struct conf *cf = c->w->conf;
    const char *ul = http_header_get(req, "Upload-Length");
    const char *dl = http_header_get(req, "Upload-Defer-Length");
    const char *md = http_header_get(req, "Upload-Metadata");
    struct tusmeta meta;
    size_t plen;

    if (c->rel == NULL || c->rel_len == 0) {
        *why = "POST creates an upload at its signed file URL";
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
    if ((ul != NULL) == (dl != NULL)) {
        *why = "exactly one of Upload-Length and Upload-Defer-Length: 1 "
               "is required";
        return 400;
    }
    if (dl && strcmp(dl, "1") != 0) {
        *why = "Upload-Defer-Length must be 1";
        return 400;
    }
    t->length = MANIFEST_SIZE_UNKNOWN;
    if (ul && parse_u64(ul, &t->length) < 0) {
        *why = "Upload-Length must be a decimal byte count";
        return 400;
    }
    if (ul && t->length > cf->max_upload_size) {
        *why = "Upload-Length over the server's maximum upload size "
               "(Tus-Max-Size)";
        return 413;
    }
    if (md && strlen(md) > MANIFEST_META_MAX) {
        *why = "Upload-Metadata longer than 4096 bytes";
        return 400;
    }
    if (md && tusmeta_parse(md, &meta, t->err, sizeof(t->err)) < 0) {
        *why = t->err;
        return 400;
    }
    snprintf(t->hdr.meta, sizeof(t->hdr.meta), "%s", md ? md : "");
    int status = parse_body(t, req, why);
    if (status != 0)
        return status;
    if (t->length != MANIFEST_SIZE_UNKNOWN && t->body_len > 0
        && (uint64_t)t->body_len > t->length) {
        *why = "body longer than Upload-Length";
        return 413;
    }
    if ((status = check_auth(t, c->query, why)) != 0)
        return status;
    if (final_exists(t)) {
        *why = "a file already exists at this path";
        return 409;
    }
    return 0;
}

static int
new_id(struct tus *t)
{
    unsigned char b[TUS_ID_BYTES];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return -1;
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(t->id + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static void
session_key(const char *id, uint8_t key[MANIFEST_KEY_LEN])
{
    /* The id alone: requests to the upload resource carry no path. */
    manifest_key(id, strlen(id), "", 0, key);
}

/* Where the body goes, once the session is open: lease [offset, end). */
static int
lease_body(struct tus *t, uint64_t size, const char **why)
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

static int begin_create(struct tus *t, struct conn *c);

static void
reclaim_work(struct sync_job *job)
{
    struct tus *t = (struct tus *)(void *)((char *)job
                                           - offsetof(struct tus, job));
    t->reclaimed = sess_reclaim(t->w, t->err, sizeof(t->err));
}

/* Creation failed for want of space: once the sessions that are due are
 * removed, create again from nothing (a new id; nothing was answered). */
static void
reclaim_done(struct sync_job *job)
{
    struct tus *t = (struct tus *)(void *)((char *)job
                                           - offsetof(struct tus, job));
    if (!still_wanted(t))
        return;
    if (t->reclaimed < 0)
        log_warn("tus: reclaiming space: %s", t->err);
    if (t->reclaimed <= 0) {
        fail(t, 507, true, "not enough free space");
        return;
    }
    log_info("removed %d expired upload session(s) to make room for %s",
             t->reclaimed, t->hdr.path);
    begin_create(t, t->c);
}

/* uploads.maxretries, as for a PUT (upload.c, start_reclaim). */
static bool
start_reclaim(struct tus *t)
{
    if (t->w->table == NULL
        || store_retry(&t->retry, ENOSPC) != STORE_RETRY_RECLAIM)
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
    struct tus *t = arg;
    const char *why = NULL;
    (void)s;
    if (!still_wanted(t))
        return;
    if (rc == 507 && start_reclaim(t))
        return;
    if (rc != 0) {
        fail(t, rc, true, "%s", rc == 507 ? "not enough free space"
             : rc == 503 ? "too many upload sessions; retry shortly"
             : "cannot create the upload session");
        return;
    }
    int status = lease_body(t, t->length, &why);
    if (status != 0) {
        fail(t, status, true, "%s", why);
        return;
    }
    log_info("tus: upload %.8s... created for %s", t->id, t->hdr.path);
    resume(t);
}

static int
begin_create(struct tus *t, struct conn *c)
{
    const struct conf *cf = c->w->conf;
    uint8_t key[MANIFEST_KEY_LEN];

    if (new_id(t) < 0)
        return fail(t, 500, true, "no randomness for an upload id");
    t->hdr.proto = MANIFEST_PROTO_TUS;
    t->hdr.size = t->length;
    t->hdr.created = t->started;
    t->hdr.expires = t->started + cf->sessiontimeout;
    memcpy(t->hdr.id, t->id, sizeof(t->id));
    session_key(t->id, key);
    if ((t->sess = sess_new(c->w, key, &t->hdr)) == NULL)
        return fail(t, 503, true, "out of memory");
    conn_set_handler(c, &tus_handler, t);
    t->in_head = true;
    t->pending = true;
    sess_open(t->sess, true, created, t);
    return after_head_call(t, c);
}

/* ---- PATCH --------------------------------------------------------------- */

static int
parse_patch(struct tus *t, struct http_request *req, const char **why)
{
    const char *uo = http_header_get(req, "Upload-Offset");
    const char *ul = http_header_get(req, "Upload-Length");

    if (parse_u64(uo, &t->offset) < 0) {
        *why = "Upload-Offset (a decimal byte offset) is required";
        return 400;
    }
    t->length = MANIFEST_SIZE_UNKNOWN;
    if (ul && parse_u64(ul, &t->length) < 0) {
        *why = "Upload-Length must be a decimal byte count";
        return 400;
    }
    if (ul && t->length > t->w->conf->max_upload_size) {
        *why = "Upload-Length over the server's maximum upload size";
        return 413;
    }
    return parse_body(t, req, why);
}

static void size_declared(struct sess *s, int rc, void *arg);

/* The session is open and the offset checked: take the body. */
static void
patch_ready(struct tus *t)
{
    const char *why = NULL;
    struct shm_view v;
    if (sess_view(t->sess, &v) < 0) {
        fail(t, 500, true, "cannot read the upload");
        return;
    }
    int status = lease_body(t, v.size, &why);
    if (status != 0) {
        fail(t, status, true, "%s", why);
        return;
    }
    resume(t);
}

/* Past its Upload-Expires (last activity + sessiontimeout) with nobody
 * writing it: the janitor's rule (shm/table.c, sweep), applied by every
 * request, so an upload never outlives what the client was told just
 * because the janitor has not run yet. */
static bool
expired(const struct tus *t, const struct shm_view *v)
{
    return v->state == SHM_ACTIVE && v->nleases == 0
        && v->last_active + t->w->conf->sessiontimeout <= (int64_t)time(NULL);
}

/* After sess_open on an upload resource: is it a live tus upload? If not,
 * the request has been answered (404, 410 or the open's own status). */
static bool
usable(struct tus *t, int rc, bool body_unread, struct shm_view *v)
{
    if (rc != 0 || sess_view(t->sess, v) < 0
        || v->proto != MANIFEST_PROTO_TUS) {
        fail(t, rc == 0 || rc == 404 ? 404 : rc, body_unread, "%s",
             rc == 0 || rc == 404 ? "no such upload"
                                  : "cannot open the upload");
        return false;
    }
    if (v->state == SHM_DOOMED) {
        fail(t, 410, body_unread, "upload expired or terminated");
        return false;
    }
    if (expired(t, v)) {
        fail(t, 410, body_unread, "upload expired (Upload-Expires has "
             "passed)");
        return false;
    }
    return true;
}

static void
opened(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    struct shm_view v;
    (void)s;
    if (!still_wanted(t) || !usable(t, rc, true, &v))
        return;
    uint64_t offset = v.state == SHM_DONE ? v.size : v.prefix;
    if (v.state != SHM_DONE && v.state != SHM_ACTIVE) {
        fail(t, 409, true, "upload is busy (being created or completed); "
             "retry");
        return;
    }
    if (t->offset != offset) {
        fail(t, 409, true, "Upload-Offset %llu is not the upload's offset "
             "%llu", (unsigned long long)t->offset,
             (unsigned long long)offset);
        return;
    }
    if (t->length != MANIFEST_SIZE_UNKNOWN && v.size != t->length) {
        if (v.size != SHM_SIZE_UNKNOWN) {
            fail(t, 400, true, "Upload-Length differs from the upload's");
            return;
        }
        if (t->body_len > 0
            && t->offset + (uint64_t)t->body_len > t->length) {
            fail(t, 413, true, "body goes past Upload-Length");
            return;
        }
        t->pending = true;
        sess_set_size(t->sess, t->length, size_declared, t);
        return;
    }
    if (v.state == SHM_DONE && t->body_len != 0) {
        fail(t, 413, true, "upload is complete");
        return;
    }
    patch_ready(t);
}

static void
size_declared(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    (void)s;
    if (!still_wanted(t))
        return;
    if (rc != 0) {
        fail(t, rc, true, "%s", rc == 409
             ? "Upload-Length is less than the bytes already received"
             : "cannot record Upload-Length");
        return;
    }
    patch_ready(t);
}

static int
begin_patch(struct tus *t, struct conn *c)
{
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header h;

    memset(&h, 0, sizeof(h));
    session_key(t->id, key);
    if ((t->sess = sess_new(c->w, key, &h)) == NULL)
        return fail(t, 503, true, "out of memory");
    conn_set_handler(c, &tus_handler, t);
    t->in_head = true;
    t->pending = true;
    sess_open(t->sess, false, opened, t);
    return after_head_call(t, c);
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
    size_t n = strspn(id, "0123456789abcdef");
    if (n != TUS_ID_LEN || id[n] != '\0') {
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
    /* Not advertised in Tus-Extension. Ignoring the header would make a
     * partial upload a whole one and publish a fragment at the file's
     * URL; refuse before anything is created, as tusd does. */
    if (http_header_get(req, "Upload-Concat") != NULL)
        return fail(t, 501, true, "Upload-Concat: the concatenation "
                    "extension is not supported (see Tus-Extension); "
                    "send the file as one upload");
    if ((status = parse_target(t, c, req, &why)) != 0)
        return fail(t, status, true, "%s", why);
    if (tr == NULL || strcmp(tr, TUS_VERSION) != 0)
        return fail(t, 412, true, "Tus-Resumable: " TUS_VERSION
                    " is required");
    if (c->w->table == NULL)
        return fail(t, 503, true, "resumable uploads are not available");
    switch (t->op) {
    case OP_CREATE:
        t->counted = true;
        c->w->slot->uploads++;
        if ((status = parse_create(t, c, req, &why)) != 0)
            return fail(t, status, true, "%s", why);
        return begin_create(t, c);
    case OP_PATCH:
        t->counted = true;
        c->w->slot->uploads++;
        if ((status = parse_patch(t, req, &why)) != 0)
            return fail(t, status, true, "%s", why);
        return begin_patch(t, c);
    case OP_HEAD:
    case OP_DELETE:
        conn_set_handler(c, &tus_handler, t);  /* answered at tus_complete */
        return 0;
    }
    return fail(t, 500, true, "bad operation");
}

static int
tus_body(struct conn *c, const char *at, size_t len)
{
    struct tus *t = c->handler_ctx;

    if (t->op == OP_HEAD || t->op == OP_DELETE) {
        t->discarded += len;
        if (t->discarded > DISCARD_MAX)
            return fail(t, 413, true, "request body not expected here");
        return 0;
    }
    if (len == 0)
        return 0;
    if (!t->leased)
        return fail(t, 413, true, "body goes past Upload-Length");
    if (sess_write(t->sess, at, len) < 0) {
        int e = errno;
        if (e == EFBIG)
            return fail(t, 413, true, "body goes past Upload-Length");
        log_error("%s: tus upload %.8s...: write: %s", c->peer, t->id,
                  strerror(e));
        return fail(t, e == ENOSPC || e == EDQUOT ? 507 : 500, true, "%s",
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

/* ---- answers after the body ---------------------------------------------- */

static void
respond_done(struct tus *t, struct conn *c)
{
    struct http_head h;
    struct shm_view v;
    char location[sizeof(c->w->conf->url_prefix) + sizeof(TUS_RESOURCE)
                  + TUS_ID_LEN];
    int64_t active = time(NULL);
    uint64_t offset = 0;

    if (sess_view(t->sess, &v) == 0) {
        offset = v.state == SHM_DONE ? v.size : v.prefix;
        active = v.last_active;
    }
    head_begin(c, &h, t->op == OP_CREATE ? 201 : 204);
    if (t->op == OP_CREATE) {
        snprintf(location, sizeof(location), "%s" TUS_RESOURCE "%s",
                 c->w->conf->url_prefix, t->id);
        http_head_add(&h, "Location", "%s", location);
        accesslog_note_id(c, t->id);
    }
    http_head_add(&h, "Upload-Offset", "%llu", (unsigned long long)offset);
    add_expires(c, &h, active);
    if (t->op == OP_CREATE)
        http_head_add(&h, "Content-Length", "0");
    conn_respond_head(c, &h, NULL, 0);
}

static void
respond_status(struct tus *t, struct conn *c)
{
    struct http_head h;
    struct shm_view v;
    const struct manifest_header *hd = sess_header(t->sess);

    if (sess_view(t->sess, &v) < 0) {
        reply_error(c, 500, false, "cannot read the upload");
        return;
    }
    head_begin(c, &h, 200);
    http_head_add(&h, "Upload-Offset", "%llu", (unsigned long long)
                  (v.state == SHM_DONE ? v.size : v.prefix));
    if (v.size == SHM_SIZE_UNKNOWN)
        http_head_add(&h, "Upload-Defer-Length", "1");
    else
        http_head_add(&h, "Upload-Length", "%llu",
                      (unsigned long long)v.size);
    if (v.state != SHM_DONE && hd->meta[0])
        http_head_add(&h, "Upload-Metadata", "%s", hd->meta);
    add_expires(c, &h, v.last_active);
    http_head_add(&h, "Cache-Control", "no-store");
    conn_respond_head(c, &h, NULL, 0);
}

static void
finished(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    (void)s;
    if (!still_wanted(t))
        return;
    struct conn *c = t->c;
    if (rc != 0 && rc != 200 && rc != 201) {
        fail(t, rc, false, "%s", rc == 409
             ? "a different file exists at this path"
             : rc == 507 ? "not enough free space"
             : "cannot store the upload");
        return;
    }
    conn_clear_handler(c, t);
    leave_gauge(t);
    if (t->op == OP_HEAD)
        respond_status(t, c);
    else
        respond_done(t, c);
    tus_free(t);
}

static void
status_opened(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    struct shm_view v;
    (void)s;
    if (!still_wanted(t) || !usable(t, rc, false, &v))
        return;
    /* All bytes held but not published (a publication that failed, or a
     * client that stopped before its last answer): finish now, or the
     * client would see offset == length and never come back. */
    if (v.state == SHM_ACTIVE && v.size != SHM_SIZE_UNKNOWN
        && v.prefix == v.size) {
        t->pending = true;
        sess_finish(t->sess, finished, t);
        return;
    }
    struct conn *c = t->c;
    conn_clear_handler(c, t);
    respond_status(t, c);
    tus_free(t);
}

static void
terminated(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    (void)s;
    sess_free(t->sess);       /* terminate ends the session; nothing kept */
    t->sess = NULL;
    if (!still_wanted(t))
        return;
    if (rc != 204) {
        fail(t, 500, false, "cannot remove the upload");
        return;
    }
    struct conn *c = t->c;
    struct http_head h;
    conn_clear_handler(c, t);
    tus_free(t);
    head_begin(c, &h, 204);
    conn_respond_head(c, &h, NULL, 0);
}

static int
terminate(struct tus *t)
{
    struct shm_view v;
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header h;

    memset(&h, 0, sizeof(h));
    session_key(t->id, key);
    if ((t->sess = sess_new(t->w, key, &h)) == NULL)
        return fail(t, 503, false, "out of memory");
    int rc = sess_find(t->sess, &v);
    if (rc != 0 || v.proto != MANIFEST_PROTO_TUS)
        return fail(t, rc == 0 ? 404 : rc, false, "no such upload");
    if (v.state == SHM_DOOMED)
        return fail(t, 410, false, "upload expired or terminated");
    if (expired(t, &v))
        return fail(t, 410, false, "upload expired (Upload-Expires has "
                    "passed)");
    if (v.state != SHM_ACTIVE)
        return fail(t, 409, false, "upload is complete (or being "
                    "completed); a published file is not removed");
    t->pending = true;
    sess_terminate(t->sess, terminated, t);
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
        terminate(t);                       /* answers, now or later */
        return 0;
    case OP_HEAD:
        memset(&h, 0, sizeof(h));
        session_key(t->id, key);
        if ((t->sess = sess_new(c->w, key, &h)) == NULL) {
            fail(t, 503, false, "out of memory");
            return 0;
        }
        t->pending = true;
        sess_open(t->sess, false, status_opened, t);
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
            fail(t, 460, false, "Upload-Checksum does not match the body");
            return 0;
        }
        t->verified = true;
    }
    /* A body with no bytes leased nothing, so nothing kept the upload
     * alive while it came: it may have expired since the head. */
    struct shm_view v;
    if (t->op == OP_PATCH && !t->leased && sess_view(t->sess, &v) == 0
        && expired(t, &v)) {
        fail(t, 410, false, "upload expired (Upload-Expires has passed)");
        return 0;
    }
    t->pending = true;
    sess_finish(t->sess, finished, t);
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
