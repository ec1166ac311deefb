/* upload.c: PUT, from head to publication.
 *
 * Everything that can be refused is refused at the head, before a byte of
 * body is stored: path (400), size (413), signature (403), space (507).
 *
 * Two ways to store a body:
 *  - a resumable session (worker/session.c) for every PUT of known size:
 *    the chunked-header protocol (X-Upload-Session-ID + Content-Range), a
 *    plain PUT (checkpointed every few MiB, so a cut body is resumed with
 *    Content-Range or by simply sending the file again), tus PATCH;
 *  - a one-shot staging file when the size is unknown (chunked transfer
 *    coding), the file is empty, or a file already exists at the path (the
 *    bytes are then compared: 200 if identical, 409 if not).
 * Completion (fdatasync, link into place, directory fsync) runs on the
 * worker's sync pool; the answer is sent only after it. */
#define _GNU_SOURCE
#include "worker/upload.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "lib/auth/auth.h"
#include "lib/conf/conf.h"
#include "lib/http/chunk.h"
#include "lib/http/response.h"
#include "lib/store/manifest.h"
#include "lib/store/path.h"
#include "lib/store/publish.h"
#include "lib/store/retry.h"
#include "lib/util/crc32c.h"
#include "lib/util/decimal.h"
#include "lib/util/digest.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/session.h"
#include "worker/syncpool.h"

static int  upload_body(struct conn *c, const char *at, size_t len);
static int  upload_complete(struct conn *c);
static void upload_abort(struct conn *c);
static int  upload_checkpoint(struct conn *c);

const struct handler upload_handler = {
    .name = "upload",
    .body = upload_body,
    .complete = upload_complete,
    .abort = upload_abort,
    .checkpoint = upload_checkpoint,
};

#define CHECKPOINT_BYTES (8ULL * 1024 * 1024)
#define SESSION_ID_MAX   128

enum upload_mode { MODE_STAGING, MODE_SESSION, MODE_DISCARD };

struct upload {
    struct sync_job  job;
    struct conn     *c;             /* NULL once the connection is gone */
    struct worker   *w;
    enum upload_mode mode;
    int              fd;            /* MODE_STAGING */
    char             staging[STORE_STAGING_NAME_LEN];
    struct sess     *sess;          /* MODE_SESSION */
    uint64_t         skip;          /* body bytes already held: dropped */
    uint64_t         next_checkpoint;
    uint64_t         range_a, range_b;   /* [a, b) of the file */
    bool             chunked_proto;
    char             rel[STORE_PATH_MAX + 1];
    size_t           rel_len;
    uint64_t         received;
    int64_t          expected;      /* Content-Length, -1 when chunked */
    int64_t          total;         /* file size the MAC binds */
    bool             recheck_mac;
    bool             job_pending;
    bool             opening;       /* sess_open in flight */
    bool             complete_already;   /* published before this request */
    bool             expect_continue;    /* 100 Continue still owed */
    uint64_t         dup_len;       /* held bytes this request re-sent */
    uint32_t         dup_crc;       /* their CRC-32C, checked at the end */
    bool             dup_mismatch;
    bool             counted;       /* in the uploads-in-progress gauge */
    time_t           started;
    enum auth_variant variant;
    char             query[AUTH_QUERY_MAX + 1];
    char             content_type[256];
    bool             has_ctype;     /* sent, maybe empty: v2 binds it as is */
    char             session_id[SESSION_ID_MAX + 1];
    bool             has_sha;       /* the client announced the SHA-256 */
    uint8_t          sha[32];
    int              result, result_errno;
    struct store_retry retry;      /* uploads.maxretries, per request */
    char             err[256];
};

/* ---- shared helpers ------------------------------------------------------ */

/* Leave the gauge before answering: the client may ask /metrics on
 * another worker the moment it has the answer. */
static void
uncount(struct upload *up)
{
    if (up->counted)
        up->w->slot->uploads--;
    up->counted = false;
}

static void
upload_free(struct upload *up, bool discard)
{
    if (up->fd >= 0)
        close(up->fd);
    if (discard && up->staging[0])
        store_staging_discard(up->w->staging_fd, up->staging);
    if (up->sess)
        sess_detach(up->sess);     /* keeps what arrived */
    uncount(up);
    free(up);
}

static int
check_auth(struct upload *up, int64_t size, struct auth_result *res)
{
    const struct conf *cf = up->w->conf;
    struct auth_key keys[CONF_MAX_SECRETS];
    for (size_t i = 0; i < cf->nsecrets; i++) {
        keys[i].key = cf->secrets[i].key;
        keys[i].len = cf->secrets[i].len;
    }
    struct auth_request ar = {
        .method = "PUT",
        .prefix = cf->url_prefix,
        .path = up->rel,
        .path_len = up->rel_len,
        .query = up->query[0] ? up->query : NULL,
        .content_length = size,
        .content_type = up->has_ctype ? up->content_type : NULL,
        .now = up->started,
    };
    int rc = auth_check(keys, cf->nsecrets, &ar, cf->token_max_lifetime, res);
    up->variant = res->variant;
    return rc;
}

static int
auth_status_code(enum auth_status s)
{
    /* A malformed signature is a bad signature: 403 like the others. */
    return s == AUTH_ERROR ? 500 : 403;
}

static bool
session_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > SESSION_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_'
            && *p != '.')
            return false;
    return true;
}

static int
b64_sha256(const char *v, size_t n, uint8_t out[32])
{
    unsigned char buf[64];
    if (n != 44 || EVP_DecodeBlock(buf, (const unsigned char *)v, 44) != 33)
        return -1;     /* 32 bytes and one byte of '=' padding */
    memcpy(out, buf, 32);
    return 0;
}

/* X-Content-SHA256: <hex>, Digest: SHA-256=<base64> (RFC 3230) or
 * Repr-Digest: sha-256=:<base64>: (RFC 9530). 0 none, 1 found, -1 bad. */
static int
parse_digest(struct http_request *req, uint8_t out[32])
{
    const char *v;
    if ((v = http_header_get(req, "X-Content-SHA256")) != NULL) {
        if (strlen(v) != 64)
            return -1;
        for (int i = 0; i < 32; i++) {
            unsigned x;
            if (!isxdigit((unsigned char)v[2 * i])
                || !isxdigit((unsigned char)v[2 * i + 1])
                || sscanf(v + 2 * i, "%2x", &x) != 1)
                return -1;
            out[i] = (uint8_t)x;
        }
        return 1;
    }
    if ((v = http_header_get(req, "Repr-Digest")) != NULL) {
        const char *p = strcasestr(v, "sha-256=:");
        if (p == NULL)
            return 0;          /* only other algorithms: nothing to check */
        p += 9;
        const char *e = strchr(p, ':');
        return e && b64_sha256(p, (size_t)(e - p), out) == 0 ? 1 : -1;
    }
    if ((v = http_header_get(req, "Digest")) != NULL) {
        const char *p = strcasestr(v, "sha-256=");
        if (p == NULL)
            return 0;
        p += 8;
        size_t n = strcspn(p, ", ");
        return b64_sha256(p, n, out) == 0 ? 1 : -1;
    }
    return 0;
}

/* Common head checks: path, query, content type. 0 or a status. */
static int
parse_common(struct conn *c, struct http_request *req, struct upload *up,
             const char **why)
{
    if (c->rel == NULL || c->rel_len == 0) {
        *why = "no file path in the URL";
        return 404;
    }
    if (store_path_decode(c->rel, c->rel_len, up->rel, sizeof(up->rel),
                          &up->rel_len, up->err, sizeof(up->err)) < 0) {
        *why = up->err;
        return 400;
    }
    if (c->query && strlen(c->query) > AUTH_QUERY_MAX) {
        *why = "query string too long";
        return 400;
    }
    snprintf(up->query, sizeof(up->query), "%s", c->query ? c->query : "");
    const char *ct = http_header_get(req, "Content-Type");
    if (ct && strlen(ct) >= sizeof(up->content_type)) {
        *why = "Content-Type too long";
        return 400;
    }
    /* An empty header is the empty string, which Prosody signs for a slot
     * requested with content-type="": never replaced by a default. */
    snprintf(up->content_type, sizeof(up->content_type), "%s", ct ? ct : "");
    up->has_ctype = ct != NULL;
    int d = parse_digest(req, up->sha);
    if (d < 0) {
        *why = "X-Content-SHA256 must be 64 hex digits; Digest/Repr-Digest "
               "sha-256 must be base64 of 32 bytes";
        return 400;
    }
    up->has_sha = d == 1;
    return 0;
}

static bool final_exists(struct upload *up, int64_t *size_r);

/* A decimal header: 0 absent (*v_r = -1), 1 read, -1 malformed. */
static int
header_number(struct http_request *req, const char *name, int64_t *v_r)
{
    const char *h = http_header_get(req, name);
    uint64_t v;

    *v_r = -1;
    if (h == NULL)
        return 0;
    if (decimal_parse(h, INT64_MAX, &v) < 0)
        return -1;
    *v_r = (int64_t)v;
    return 1;
}

/* The file size a numbered chunk belongs to, when no Content-Range says:
 * X-Total-Size or Upload-Length (which must agree), else the size the
 * session of this ID and path was bound to by an earlier chunk, else the
 * size of the file already published there (a late chunk). -1: unknown
 * (chunk_range may still derive it from the last chunk). For v1, v2 and
 * tokens the MAC then binds whichever it is. */
static int
numbered_total(struct http_request *req, struct upload *up, bool have_cr,
               int64_t *total_r, const char **why)
{
    int64_t xts, ul, have;
    struct manifest_header h;
    struct shm_view v;
    uint8_t key[MANIFEST_KEY_LEN];
    struct sess *s;

    if (header_number(req, "X-Total-Size", &xts) < 0
        || header_number(req, "Upload-Length", &ul) < 0) {
        *why = "X-Total-Size and Upload-Length must be decimal numbers";
        return 400;
    }
    if (xts >= 0 && ul >= 0 && xts != ul) {
        *why = "X-Total-Size and Upload-Length disagree";
        return 400;
    }
    *total_r = xts >= 0 ? xts : ul;
    if (have_cr) {                 /* Content-Range's TOTAL wins */
        if (*total_r >= 0 && *total_r != up->total) {
            *why = "X-Total-Size (or Upload-Length) disagrees with the "
                   "TOTAL of Content-Range";
            return 400;
        }
        *total_r = up->total;
        return 0;
    }
    if (*total_r >= 0 || up->w->table == NULL)
        return 0;
    memset(&h, 0, sizeof(h));
    manifest_key(up->session_id, strlen(up->session_id), up->rel,
                 up->rel_len, key);
    if ((s = sess_new(up->w, key, &h)) != NULL) {
        if (sess_find(s, &v) == 0 && v.size != SHM_SIZE_UNKNOWN)
            *total_r = (int64_t)v.size;
        sess_free(s);
    }
    if (*total_r < 0 && final_exists(up, &have) && have > 0)
        *total_r = have;
    return 0;
}

/* X-Chunk-Number (0-based), X-Total-Chunks and the fixed uploads.chunksize:
 * the seed protocol. Without Content-Range the range follows from the
 * number (lib/http/chunk.h); with it, Content-Range wins and must be that
 * range. */
static int
parse_numbered(struct http_request *req, struct upload *up, bool have_cr,
               const char **why)
{
    struct chunk_numbered cn;
    int64_t number;
    uint64_t a, b, t;
    int status;

    memset(&cn, 0, sizeof(cn));
    cn.chunk_size = up->w->conf->chunk_size;
    if (header_number(req, "X-Chunk-Number", &number) < 0) {
        *why = "X-Chunk-Number must be a decimal number (the first chunk "
               "is 0)";
        return 400;
    }
    if (header_number(req, "X-Total-Chunks", &cn.count) < 0) {
        *why = "X-Total-Chunks must be a decimal number";
        return 400;
    }
    if (req->chunked) {
        *why = "Content-Length is required with X-Chunk-Number";
        return 400;
    }
    cn.number = (uint64_t)number;
    cn.length = (uint64_t)req->content_length;
    if ((status = numbered_total(req, up, have_cr, &cn.total, why)) != 0)
        return status;
    if (chunk_range(&cn, &a, &b, &t, up->err, sizeof(up->err)) < 0) {
        *why = up->err;
        return 400;
    }
    if (have_cr && (a != up->range_a || b != up->range_b)) {
        snprintf(up->err, sizeof(up->err), "Content-Range disagrees with "
                 "X-Chunk-Number %lld: with chunks of %llu bytes it is "
                 "bytes %llu-%llu/%llu", (long long)number,
                 (unsigned long long)cn.chunk_size, (unsigned long long)a,
                 (unsigned long long)(b - 1), (unsigned long long)t);
        *why = up->err;
        return 400;
    }
    up->chunked_proto = true;
    up->total = (int64_t)t;
    up->range_a = a;
    up->range_b = b;
    return 0;
}

/* uploads.chunkeduploadsenabled / resumableuploadsenabled: a request for
 * a switched-off protocol gets 501 before anything is checked or stored.
 * Any header of the chunked protocol counts: a chunk taken for a whole
 * file would publish a fragment where the MAC binds no size (v3). */
static int
check_enabled(const struct conf *cf, struct http_request *req,
              const char **why)
{
    if (!cf->chunked_uploads
        && (http_header_get(req, "X-Upload-Session-ID") != NULL
            || http_header_get(req, "X-Chunk-Number") != NULL
            || http_header_get(req, "X-Total-Chunks") != NULL)) {
        *why = "chunked uploads (X-Upload-Session-ID) are disabled on this "
               "server; send the file in one plain PUT";
        return 501;
    }
    if (!cf->resumable_uploads
        && http_header_get(req, "X-Upload-Session-ID") == NULL
        && http_header_get(req, "Content-Range") != NULL) {
        *why = "resumable uploads (Content-Range) are disabled on this "
               "server; send the whole file in one plain PUT";
        return 501;
    }
    return 0;
}

/* Which part of the file this request carries, and how big the file is. */
static int
parse_range(struct conn *c, struct http_request *req, struct upload *up,
            const char **why)
{
    const struct conf *cf = c->w->conf;
    const char *sid = http_header_get(req, "X-Upload-Session-ID");
    const char *cr = http_header_get(req, "Content-Range");
    const char *cn = http_header_get(req, "X-Chunk-Number");
    int status;

    if (sid && !session_id_valid(sid)) {
        *why = "X-Upload-Session-ID must be 1-128 characters of "
               "A-Z a-z 0-9 - _ .";
        return 400;
    }
    snprintf(up->session_id, sizeof(up->session_id), "%s", sid ? sid : "");
    if (!req->chunked && req->content_length < 0) {
        *why = "Content-Length or chunked Transfer-Encoding required";
        return 411;
    }
    up->total = req->content_length;
    up->range_a = 0;
    up->range_b = req->content_length > 0 ? (uint64_t)req->content_length : 0;
    if (cr == NULL && sid && cn == NULL) {
        *why = "Content-Range: bytes FIRST-LAST/TOTAL or X-Chunk-Number is "
               "required with X-Upload-Session-ID";
        return 400;
    }
    if (cr) {
        uint64_t a, b;
        int64_t total;
        if (http_content_range_parse(cr, &a, &b, &total) < 0 || total < 0) {
            *why = "Content-Range must be bytes FIRST-LAST/TOTAL";
            return 400;
        }
        if (req->chunked || req->content_length != (int64_t)(b - a + 1)) {
            *why = "Content-Length must equal the Content-Range length";
            return 400;
        }
        up->chunked_proto = true;
        up->total = total;
        up->range_a = a;
        up->range_b = b + 1;
    }
    if (cn && (status = parse_numbered(req, up, cr != NULL, why)) != 0)
        return status;
    if (up->chunked_proto && up->range_b - up->range_a > cf->chunk_max_size) {
        *why = "chunk larger than the server's maximum chunk size";
        return 413;
    }
    if (up->total > 0 && (uint64_t)up->total > cf->max_upload_size) {
        *why = "file larger than the server's maximum upload size";
        return 413;
    }
    return 0;
}

/* Refuse at the head when the body could not fit above storage.min_free. */
static int
check_space(struct upload *up, const char **why)
{
    uint64_t avail;
    uint64_t need = up->range_b > up->range_a ? up->range_b - up->range_a : 0;
    if (store_free_bytes(up->w->staging_fd, &avail) == 0
        && avail < up->w->conf->min_free_bytes + need) {
        *why = "not enough free space on the server";
        return 507;
    }
    return 0;
}

static int
check_signature(struct upload *up, const char **why)
{
    struct auth_result res;
    if (check_auth(up, up->total, &res) == 0)
        return 0;
    if (res.status == AUTH_SIZE_UNKNOWN) {
        up->recheck_mac = true;
        return 0;
    }
    *why = res.reason;
    return auth_status_code(res.status);
}

/* Is something already at the final path? *size_r: its size, or -1 when
 * it is not a regular file we may serve (a directory, a symlink). */
static bool
final_exists(struct upload *up, int64_t *size_r)
{
    struct stat st;
    int fd;
    char err[64];
    *size_r = -1;
    if (store_open_file(up->w->root_fd, up->rel, &fd, &st, err,
                        sizeof(err)) < 0)
        return errno != ENOENT;
    close(fd);
    *size_r = st.st_size;
    return true;
}

/* ---- one-shot staging file ------------------------------------------- */

static int
open_staging(struct upload *up, const char **why)
{
    uint64_t need = up->expected > 0 ? (uint64_t)up->expected : 0;

    if (store_staging_create(up->w->staging_fd, up->staging,
                             sizeof(up->staging), &up->fd, up->err,
                             sizeof(up->err)) < 0) {
        log_error("staging file: %s", up->err);
        *why = "cannot create a staging file";
        return errno == ENOSPC || errno == EDQUOT ? 507 : 500;
    }
    /* Reserve the blocks now: a full disk answers 507 at the head instead
     * of failing after the client sent most of the file. */
    if (need > 0 && fallocate(up->fd, 0, 0, (off_t)need) < 0
        && errno != EOPNOTSUPP) {
        *why = errno == ENOSPC || errno == EDQUOT
             ? "not enough free space on the server"
             : "cannot reserve space for the file";
        return errno == ENOSPC || errno == EDQUOT ? 507 : 500;
    }
    up->mode = MODE_STAGING;
    return 0;
}

static void
staging_publish_work(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    uint8_t sha[32];
    if (up->has_sha && (digest_sha256_fd(up->fd, up->received, sha) < 0
                        || memcmp(sha, up->sha, 32) != 0)) {
        up->result = SESS_DIGEST_MISMATCH;
        return;
    }
    struct store_modes modes = { up->w->conf->file_mode,
                                 up->w->conf->dir_mode };
    up->result = store_publish(up->w->staging_fd, up->staging, up->fd,
                               up->w->root_fd, up->rel, &modes, up->err,
                               sizeof(up->err));
    up->result_errno = errno;
}

static int
publish_status(int result, int err_no)
{
    switch (result) {
    case STORE_PUBLISHED:        return 201;
    case STORE_IDENTICAL_EXISTS: return 200;
    case STORE_CONFLICT:         return 409;
    case SESS_DIGEST_MISMATCH:   return 460;
    default: return err_no == ENOSPC || err_no == EDQUOT ? 507 : 500;
    }
}

/* ---- answers -------------------------------------------------------------- */

static void
respond_status(struct conn *c, struct upload *up, int status)
{
    struct http_head h;
    char body[128];
    int n;

    switch (status) {
    case 201: n = snprintf(body, sizeof(body), "201 Created\n"); break;
    case 200: n = snprintf(body, sizeof(body), up->chunked_proto
                           ? "200 OK: stored\n"
                           : "200 OK: identical file exists\n"); break;
    case 409: n = snprintf(body, sizeof(body), up->dup_mismatch
                           ? up->mode == MODE_DISCARD
                           ? "409 Conflict: these bytes differ from the "
                             "published file's in this range\n"
                           : "409 Conflict: these bytes differ from the ones "
                             "already received for this range\n"
                           : "409 Conflict: a different file exists at this "
                             "path\n"); break;
    case 507: n = snprintf(body, sizeof(body),
                           "507 Insufficient Storage\n"); break;
    case 460: n = snprintf(body, sizeof(body),
                           "460 Checksum Mismatch: the SHA-256 of the received "
                           "file is not the one announced\n"); break;
    default:  n = snprintf(body, sizeof(body), "%d %s\n", status,
                           http_status_text(status));
    }
    conn_head_begin(c, &h, status);
    if (up->complete_already || (status == 201 && up->total > 0)) {
        http_head_add(&h, "Upload-Offset", "%llu",
                      (unsigned long long)up->total);
        http_head_add(&h, "Upload-Length", "%llu",
                      (unsigned long long)up->total);
    } else if (up->sess) {
        struct shm_view v;
        char ranges[1024];
        if (sess_view(up->sess, &v) == 0) {
            http_head_add(&h, "Upload-Offset", "%llu", (unsigned long long)
                          (v.state == SHM_DONE ? v.size : v.prefix));
            http_head_add(&h, "Upload-Length", "%llu",
                          (unsigned long long)v.size);
            sess_ranges(up->sess, ranges, sizeof(ranges));
            if (v.state != SHM_DONE && ranges[0])
                http_head_add(&h, "X-Upload-Ranges", "%s", ranges);
        }
    }
    http_head_add(&h, "Cache-Control", "no-store");
    if (status == 503)
        http_head_add(&h, "Retry-After", "2");
    if (c->method == HTTP_HEAD) {
        http_head_add(&h, "Content-Length", "0");
        conn_respond_head(c, &h, NULL, 0);
        return;
    }
    http_head_add(&h, "Content-Type", "text/plain; charset=utf-8");
    http_head_add(&h, "Content-Length", "%d", n);
    conn_respond_head(c, &h, body, (size_t)n);
}

static void
finish_request(struct upload *up, int status)
{
    struct conn *c = up->c;
    uncount(up);
    if (c) {
        conn_clear_handler(c, up);
        if (conn_alive(c)) {
            if (status >= 500 || status == 409)
                c->close_after = status >= 500;
            respond_status(c, up, status);
        }
    }
    upload_free(up, true);
}

/* ---- sessions -------------------------------------------------------------- */

/* The session's directory is gone but its table entry was still there:
 * a worker died between publishing the file and telling the table. If the
 * file is there with the right size, the upload is complete. */
static bool
published_meanwhile(struct upload *up)
{
    int64_t have;
    if (!final_exists(up, &have) || have != up->total)
        return false;
    if (up->sess)
        sess_abandon(up->sess);
    up->complete_already = true;
    return true;
}

/* 100 Continue only once we know where the body goes: a 409, 503 or
 * 507 found while opening the session then costs the client no upload. */
static int
send_continue(struct conn *c, struct upload *up)
{
    if (!up->expect_continue)
        return 0;
    up->expect_continue = false;
    return conn_send_continue(c);
}

static void
resume_body(struct upload *up)
{
    struct conn *c = up->c;
    if (c == NULL || !conn_alive(c))
        return;
    if (send_continue(c, up) < 0) {
        conn_close(c);
        return;
    }
    conn_resume_body(c);
}

static void
lease_range(struct upload *up)
{
    struct conn *c = up->c;
    struct shm_view v;
    int rc;

    if (sess_view(up->sess, &v) == 0 && v.state == SHM_DONE) {
        up->mode = MODE_DISCARD;       /* a late retry of a finished file */
        resume_body(up);
        return;
    }
    if (v.state == SHM_COMPLETING) {   /* being published right now */
        conn_clear_handler(c, up);
        upload_free(up, true);
        conn_reject(c, 503, "the file is being published; retry shortly");
        return;
    }
    rc = sess_lease(up->sess, up->range_a, up->range_b, &up->skip);
    if (rc == SESS_HELD) {
        /* A duplicate: idempotent. Its bytes are dropped, but the request
         * still finishes the session, which may be fully held and not yet
         * published (a publication that failed, or a client that lost the
         * answer to its last chunk). */
        up->skip = up->range_b - up->range_a;
    } else if (rc != SESS_LEASED) {
        conn_clear_handler(c, up);
        upload_free(up, true);
        conn_reject(c, rc, rc == 409
                    ? "range overlaps data already received; resume from "
                      "Upload-Offset"
                    : "session busy or table full; retry shortly");
        return;
    }
    up->next_checkpoint = CHECKPOINT_BYTES;
    resume_body(up);
}

static bool start_reclaim(struct conn *c, struct upload *up);

static void
opened(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    (void)s;
    up->opening = false;
    if (up->c == NULL || !conn_alive(up->c)) {
        upload_free(up, true);
        return;
    }
    if (rc == 404 && published_meanwhile(up)) {
        up->mode = MODE_DISCARD;
        resume_body(up);
        return;
    }
    if (rc == 507 && start_reclaim(up->c, up))
        return;
    if (rc != 0) {
        struct conn *c = up->c;
        conn_clear_handler(c, up);
        upload_free(up, true);
        conn_reject(c, rc, rc == 409 ? "session bound to another size"
                    : rc == 507 ? "not enough free space on the server"
                    : rc == 503 ? "session busy (being created or published) or table full; retry shortly"
                    : "cannot open the upload session");
        return;
    }
    lease_range(up);
}

static int
begin_session(struct conn *c, struct upload *up)
{
    struct manifest_header h;
    uint8_t key[MANIFEST_KEY_LEN];
    const struct conf *cf = c->w->conf;

    memset(&h, 0, sizeof(h));
    h.proto = up->chunked_proto && up->session_id[0] ? MANIFEST_PROTO_CHUNKED
                                                     : MANIFEST_PROTO_PUT;
    h.mac_variant = (uint8_t)up->variant;
    h.size = (uint64_t)up->total;
    h.mac_size = (uint64_t)up->total;
    h.created = up->started;
    h.expires = up->started + cf->sessiontimeout;
    snprintf(h.id, sizeof(h.id), "%s", up->session_id);
    memcpy(h.path, up->rel, up->rel_len + 1);
    snprintf(h.ctype, sizeof(h.ctype), "%s", up->content_type);
    if (up->has_sha) {       /* kept for whichever request completes it */
        memcpy(h.meta, "sha256=", 7);
        for (int i = 0; i < 32; i++)
            snprintf(h.meta + 7 + 2 * i, 3, "%02x", up->sha[i]);
    }
    manifest_key(up->session_id, strlen(up->session_id), up->rel,
                 up->rel_len, key);
    up->sess = sess_new(c->w, key, &h);
    if (up->sess == NULL)
        return 503;
    if (up->has_sha)
        sess_expect_sha256(up->sess, up->sha);
    up->mode = MODE_SESSION;
    /* Claiming may create a manifest (fsync): off the loop, with the
     * parser paused until we know where the body goes. */
    conn_pause_body(c);
    up->opening = true;
    sess_open(up->sess, true, opened, up);
    return 0;
}

/* ---- placing the body ---------------------------------------------------- */

/* Where the body goes: 0 when placed (*async: a session is being opened and
 * opened() goes on), else a status with *why. Resumable unless the size is
 * unknown, the file is empty, or a file is already there (then the bytes
 * are compared, not resumed). */
static int
place(struct conn *c, struct upload *up, const char **why, bool *async)
{
    int64_t have;
    int status;

    *async = false;
    if ((status = check_space(up, why)) != 0)
        return status;
    bool exists = up->total > 0 && final_exists(up, &have);
    if (exists && up->chunked_proto) {
        /* A late chunk of a file already published (its answer was lost):
         * nothing to write, tell the client it is complete. A different
         * file there cannot become this one. */
        if (have != up->total) {
            *why = "a different file exists at this path";
            return 409;
        }
        up->mode = MODE_DISCARD;
        up->complete_already = true;
        return 0;
    }
    /* Below resumable_min_size a session's own fsyncs cost more than a
     * small file costs to re-send. */
    if (up->total > 0 && !exists
        && (up->chunked_proto
            || (c->w->conf->resumable_uploads
                && (uint64_t)up->total >= c->w->conf->resumable_min_size))) {
        if (begin_session(c, up) != 0) {
            *why = "out of memory";
            return 503;
        }
        *async = true;
        return 0;
    }
    return open_staging(up, why);
}

/* Undo a placement that failed for want of space, so it can be made
 * again from nothing. */
static void
unplace(struct upload *up)
{
    if (up->fd >= 0)
        close(up->fd);
    up->fd = -1;
    if (up->staging[0])
        store_staging_discard(up->w->staging_fd, up->staging);
    up->staging[0] = '\0';
    if (up->sess)
        sess_detach(up->sess);
    up->sess = NULL;
    up->mode = MODE_STAGING;
}

static void
reclaim_work(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    up->result = sess_reclaim(up->w, up->err, sizeof(up->err));
}

static void
reclaim_done(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    struct conn *c = up->c;
    const char *why = "not enough free space on the server";
    bool async = false;
    int status = 507;

    up->opening = false;
    if (c == NULL || !conn_alive(c)) {
        upload_free(up, true);
        return;
    }
    if (up->result < 0)
        log_warn("reclaiming space: %s", up->err);
    if (up->result > 0) {
        log_info("removed %d expired upload session(s) to make room for %s",
                 up->result, up->rel);
        status = place(c, up, &why, &async);
        /* Freed something but not enough: perhaps more is due now. */
        if (status == 507 && start_reclaim(c, up))
            return;
    }
    if (status != 0) {
        conn_clear_handler(c, up);
        conn_reject(c, status, why);    /* why may point into up */
        upload_free(up, true);
        return;
    }
    if (!async)
        resume_body(up);
}

/* Not enough space (507 at the head, or creating the staging file or the
 * session failed with ENOSPC/EDQUOT): remove the sessions that are due on
 * the sync pool, with the body paused, then place the body again; at most
 * uploads.maxretries times, and only while that frees something. false:
 * no retry, the caller answers 507. */
static bool
start_reclaim(struct conn *c, struct upload *up)
{
    if (c->w->table == NULL
        || store_retry(&up->retry, ENOSPC) != STORE_RETRY_RECLAIM)
        return false;
    unplace(up);
    conn_pause_body(c);
    up->opening = true;          /* upload_abort leaves the free to us */
    up->job.work = reclaim_work;
    up->job.done = reclaim_done;
    syncpool_submit(c->w->pool, &up->job);
    return true;
}

/* ---- the request ---------------------------------------------------------- */

int
upload_begin(struct conn *c, struct http_request *req)
{
    struct upload *up = calloc(1, sizeof(*up));
    const char *why = NULL;
    int status;

    if (up == NULL) {
        conn_reject(c, 503, "out of memory");
        return -1;
    }
    up->fd = -1;
    up->w = c->w;
    up->c = c;
    up->expected = req->chunked ? -1 : req->content_length;
    up->started = time(NULL);
    up->counted = true;
    c->w->slot->uploads++;

    if ((status = parse_common(c, req, up, &why)) != 0
        || (status = check_enabled(c->w->conf, req, &why)) != 0
        || (status = parse_range(c, req, up, &why)) != 0
        || (status = check_signature(up, &why)) != 0)
        goto reject;
    up->expect_continue = req->expect_continue;
    up->retry.max = c->w->conf->max_retries;
    conn_set_handler(c, &upload_handler, up);
    bool async;
    status = place(c, up, &why, &async);
    if (status == 507 && start_reclaim(c, up))
        return 0;
    if (status != 0) {
        conn_clear_handler(c, up);
        goto reject;
    }
    if (async)
        return 0;
    if (send_continue(c, up) < 0) {
        conn_clear_handler(c, up);
        upload_free(up, true);
        conn_close(c);
        return -1;
    }
    return 0;
reject:
    conn_reject(c, status, why);      /* why may point into up: answer first */
    upload_free(up, true);
    return -1;
}

static int
write_failed(struct conn *c, int e)
{
    struct upload *up = c->handler_ctx;
    log_error("%s: write %s: %s", c->peer, up->rel, strerror(e));
    upload_abort(c);
    if (e == ENOSPC || e == EDQUOT)
        conn_reject(c, 507, "not enough free space on the server");
    else
        conn_reject(c, 500, "cannot write the file");
    return -1;
}

static int
upload_body(struct conn *c, const char *at, size_t len)
{
    struct upload *up = c->handler_ctx;

    if (up->expected < 0
        && up->received + len > c->w->conf->max_upload_size) {
        upload_abort(c);
        conn_reject(c, 413, "file larger than the server's maximum upload size");
        return -1;
    }
    if (up->mode == MODE_DISCARD) {   /* compared at the end */
        up->dup_crc = crc32c(up->dup_crc, at, len);
        up->dup_len += len;
        up->received += len;
        return 0;
    }
    if (up->mode == MODE_SESSION) {
        if (up->skip > 0) {       /* already held: resent after a cut */
            size_t drop = up->skip < len ? (size_t)up->skip : len;
            up->dup_crc = crc32c(up->dup_crc, at, drop);
            up->dup_len += drop;
            up->skip -= drop;
            up->received += drop;
            at += drop;
            len -= drop;
        }
        if (len > 0 && sess_write(up->sess, at, len) < 0)
            return write_failed(c, errno);
        up->received += len;
        if (sess_written(up->sess) >= up->next_checkpoint) {
            sess_checkpoint(up->sess);
            up->next_checkpoint = sess_written(up->sess) + CHECKPOINT_BYTES;
        }
        return 0;
    }
    while (len > 0) {
        /* Buffered write to the page cache; durability comes at the end,
         * from the sync pool. */
        ssize_t n = pwrite(up->fd, at, len, (off_t)up->received);
        if (n < 0 && store_retry(&up->retry, errno) == STORE_RETRY_NOW)
            continue;
        if (n <= 0)
            return write_failed(c, errno);
        at += n;
        len -= (size_t)n;
        up->received += (uint64_t)n;
    }
    return 0;
}

static void
staging_publish_done(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    up->job_pending = false;
    int status = publish_status(up->result, up->result_errno);
    if (status == 201 || status == 200) {
        if (up->err[0])
            log_warn("%s: %s", up->rel, up->err);
        log_info("stored %s (%llu bytes)%s", up->rel,
                 (unsigned long long)up->received,
                 status == 200 ? ", identical" : "");
        up->staging[0] = '\0';      /* consumed by the publish */
    } else if (status == 460) {
        log_warn("%s: SHA-256 mismatch, not stored", up->rel);
    } else if (status != 409) {
        log_error("publish %s: %s", up->rel, up->err);
    }
    finish_request(up, status);
}

static void
session_finished(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    (void)s;
    up->job_pending = false;
    finish_request(up, rc == 0 ? 200 : rc);
}

static void
duplicate_checked(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    if (rc != 0) {
        up->job_pending = false;
        up->dup_mismatch = true;
        log_warn("%s: re-sent bytes differ from those already held",
                 up->rel);
        sess_discard(s);           /* nor is the rest of its body kept */
        up->sess = NULL;
        finish_request(up, 409);
        return;
    }
    sess_finish(s, session_finished, up);
}

/* ---- a late request for a file already published ------------------ */

/* The published file's bytes [range_a, +dup_len) against the CRC-32C of
 * what the request carried, as sess_verify compares held bytes before
 * publication: 200 same; 409 different, or the file at the path is no
 * longer one of the signed size; 500 unreadable. */
static void
late_verify_work(struct sync_job *job)
{
    static __thread char buf[128 * 1024];
    struct upload *up = (struct upload *)job;
    uint64_t off = up->range_a, end = up->range_a + up->dup_len;
    uint32_t crc = 0;
    struct stat st;
    int fd;

    up->result = 409;
    if (store_open_file(up->w->root_fd, up->rel, &fd, &st, up->err,
                        sizeof(up->err)) < 0) {
        up->result = errno == ENOENT ? 409 : 500;
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != up->total) {
        close(fd);
        return;
    }
    while (off < end) {
        size_t want = end - off < sizeof(buf) ? (size_t)(end - off)
                                              : sizeof(buf);
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(up->err, sizeof(up->err), "read: %s",
                     n < 0 ? strerror(errno) : "short file");
            up->result = 500;
            break;
        }
        crc = crc32c(crc, buf, (size_t)n);
        off += (uint64_t)n;
    }
    close(fd);
    if (off == end)
        up->result = crc == up->dup_crc ? 200 : 409;
}

static void
late_verify_done(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    up->job_pending = false;
    if (up->result == 409) {
        up->dup_mismatch = true;
        log_warn("%s: a request for the published file carried other "
                 "bytes (range from %llu, %llu bytes)", up->rel,
                 (unsigned long long)up->range_a,
                 (unsigned long long)up->dup_len);
    } else if (up->result == 500) {
        log_error("%s: cannot compare with the published file: %s",
                  up->rel, up->err);
    }
    finish_request(up, up->result);
}

static int
upload_complete(struct conn *c)
{
    struct upload *up = c->handler_ctx;

    if (up->recheck_mac) {
        struct auth_result res;
        if (check_auth(up, (int64_t)up->received, &res) < 0) {
            upload_abort(c);
            conn_reject(c, auth_status_code(res.status), res.reason);
            return -1;
        }
    }
    up->job_pending = true;
    if (up->mode == MODE_DISCARD) {
        /* A read, not a publication: straight to the pool, even during
         * a pause. */
        up->job.work = late_verify_work;
        up->job.done = late_verify_done;
        syncpool_submit(c->w->pool, &up->job);
        return 0;
    }
    if (up->mode == MODE_SESSION && up->dup_len > 0) {
        /* Re-sent bytes were dropped, never written: they must be the
         * bytes already held, or the client is sending another file. */
        sess_verify(up->sess, up->range_a, up->dup_len, up->dup_crc,
                    duplicate_checked, up);
        return 0;
    }
    if (up->mode == MODE_SESSION) {
        sess_finish(up->sess, session_finished, up);
        return 0;
    }
    if (up->expected < 0 && ftruncate(up->fd, (off_t)up->received) < 0) {
        upload_abort(c);
        conn_reject(c, 500, "cannot size the file");
        return -1;
    }
    up->job.work = staging_publish_work;
    up->job.done = staging_publish_done;
    syncpool_submit_held(c->w->pool, &up->job);
    return 0;
}

/* A checkpoint of a one-shot staging file owns a duplicate of its fd, so
 * the upload may finish, fail or be freed while the fdatasync runs. */
struct checkpoint {
    struct sync_job job;
    int             fd;
    int             result;
};

static void
checkpoint_work(struct sync_job *job)
{
    struct checkpoint *cp = (struct checkpoint *)job;
    cp->result = fdatasync(cp->fd);
}

static void
checkpoint_done(struct sync_job *job)
{
    struct checkpoint *cp = (struct checkpoint *)job;
    if (cp->result < 0)
        log_error("checkpoint failed: fdatasync");
    close(cp->fd);
    free(cp);
}

static int
upload_checkpoint(struct conn *c)
{
    struct upload *up = c->handler_ctx;
    if (up == NULL || up->mode == MODE_DISCARD)
        return -1;
    if (up->mode == MODE_SESSION) {
        sess_checkpoint(up->sess);
        return 0;
    }
    struct checkpoint *cp = calloc(1, sizeof(*cp));
    if (cp == NULL || (cp->fd = dup(up->fd)) < 0) {
        free(cp);
        return -1;
    }
    cp->job.work = checkpoint_work;
    cp->job.done = checkpoint_done;
    /* Straight to the pool, even during a pause: durability is the point. */
    syncpool_submit(c->w->pool, &cp->job);
    return 0;
}

static void
upload_abort(struct conn *c)
{
    struct upload *up = c->handler_ctx;
    if (up == NULL)
        return;
    conn_clear_handler(c, up);
    if (up->job_pending) {
        up->c = NULL;    /* the job finishes and frees; nobody to answer */
        return;
    }
    if (up->opening) {
        up->c = NULL;    /* opened() finds no connection and frees */
        return;
    }
    upload_free(up, true);
}

/* Every byte is held but nothing published it: the request that would
 * have was cut, or its worker died publishing, or the master restarted in
 * between. The client asking for status is the natural moment to finish
 * (tus does the same on HEAD): publish, then answer. */
static void
held_finished(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    (void)s;
    up->job_pending = false;
    if (rc == 200 || rc == 201)
        up->complete_already = true;      /* published: offset = size */
    /* A status answer: 200 with the offsets whatever finishing said,
     * unless it failed in a way the client must hear about. */
    finish_request(up, rc == 0 || rc == 200 || rc == 201 ? 200 : rc);
}

static void
held_opened(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    up->opening = false;
    if (up->c == NULL || !conn_alive(up->c) || rc != 0) {
        up->job_pending = false;
        if (rc == 404 && published_meanwhile(up))
            rc = 0;
        finish_request(up, rc != 0 ? rc : 200);
        return;
    }
    sess_finish(s, held_finished, up);
}

static bool
finish_held(struct conn *c, const struct upload *stack)
{
    struct upload *up = malloc(sizeof(*up));
    if (up == NULL)
        return false;
    *up = *stack;
    up->c = c;
    up->mode = MODE_SESSION;
    up->opening = true;
    up->job_pending = true;
    conn_set_handler(c, &upload_handler, up);
    sess_open(up->sess, false, held_opened, up);
    return true;
}

/* HEAD on a signed upload URL (with X-Upload-Session-ID for the chunked
 * protocol): what the server holds durably, so a client resumes without
 * re-sending. Returns false when there is no session (the caller then
 * answers HEAD for the published file, or 404). */
bool
upload_status(struct conn *c, struct http_request *req)
{
    struct upload up;
    struct shm_view v;
    uint8_t key[MANIFEST_KEY_LEN];
    const char *why = NULL;
    int status;

    if (c->w->table == NULL || c->rel == NULL)
        return false;
    memset(&up, 0, sizeof(up));
    up.w = c->w;
    up.fd = -1;
    up.started = time(NULL);
    const char *sid = http_header_get(req, "X-Upload-Session-ID");
    if (sid == NULL && (c->query == NULL || c->query[0] == '\0'))
        return false;
    /* Switched off: HEAD answers for the published file only. */
    if (sid ? !c->w->conf->chunked_uploads : !c->w->conf->resumable_uploads)
        return false;
    if ((status = parse_common(c, req, &up, &why)) != 0) {
        conn_respond_text(c, status, "%d %s: %s", status,
                          http_status_text(status), why);
        return true;
    }
    if (sid && !session_id_valid(sid)) {
        conn_respond_text(c, 400, "400 Bad Request: invalid "
                          "X-Upload-Session-ID");
        return true;
    }
    snprintf(up.session_id, sizeof(up.session_id), "%s", sid ? sid : "");
    manifest_key(up.session_id, strlen(up.session_id), up.rel, up.rel_len,
                 key);
    struct manifest_header h;
    memset(&h, 0, sizeof(h));
    up.sess = sess_new(c->w, key, &h);
    if (up.sess == NULL || sess_find(up.sess, &v) != 0) {
        sess_free(up.sess);
        up.sess = NULL;
        /* No session, but the file is there: finished (a published
         * session is dropped at once). Answer as complete if the URL is
         * signed for the file's size. */
        int64_t have;
        struct auth_result res;
        if (!final_exists(&up, &have) || have <= 0
            || check_auth(&up, have, &res) < 0)
            return false;
        up.total = have;
        up.complete_already = true;
        up.chunked_proto = true;
        respond_status(c, &up, 200);
        return true;
    }
    /* The session's size is what the URL must have signed. */
    struct auth_result res;
    if (check_auth(&up, (int64_t)v.size, &res) < 0) {
        sess_free(up.sess);
        conn_respond_text(c, auth_status_code(res.status), "%d %s: %s",
                          auth_status_code(res.status),
                          http_status_text(auth_status_code(res.status)),
                          res.reason);
        return true;
    }
    up.chunked_proto = true;
    up.total = (int64_t)v.size;
    if (v.state == SHM_ACTIVE && v.size != SHM_SIZE_UNKNOWN
        && v.prefix == v.size && finish_held(c, &up))
        return true;
    respond_status(c, &up, 200);
    sess_free(up.sess);
    return true;
}
