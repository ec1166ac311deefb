/* upload_head.c: what a PUT's head asks for and whether it may: the path,
 * the signature, the range of the file it carries and the file's size
 * (Content-Range, the numbered chunks of lib/http/chunk.h, or the session
 * and file already there). */
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
#include "lib/http/contentdigest.h"
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
#include "worker/upload_part.h"
#include "worker/upload_parse.h"

int
upload_check_auth(struct upload *up, int64_t size, struct auth_result *res)
{
    const struct conf *cf = up->w->conf;
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
    int rc = auth_check(up->w->keys, up->w->nkeys, &ar, cf->token_max_lifetime, res);
    up->variant = res->variant;
    return rc;
}

int
upload_auth_status(enum auth_status s)
{
    /* A malformed signature is a bad signature: 403 like the others. */
    return s == AUTH_ERROR ? 500 : 403;
}

/* Common head checks: path, query, content type. 0 or a status. */
int
upload_parse_common(struct conn *c, struct http_request *req, struct upload *up,
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
    int d = http_content_sha256(req, up->sha);
    if (d < 0) {
        *why = "X-Content-SHA256 must be 64 hex digits; Digest/Repr-Digest "
               "sha-256 must be base64 of 32 bytes";
        return 400;
    }
    up->has_sha = d == 1;
    if (up->has_sha)
        digest_sha256_init(&up->body_sha);
    return 0;
}

/* Is something already at the final path? *size_r: its size, or -1 when
 * it is not a regular file we may serve (a directory, a symlink). */
bool
upload_final_exists(struct upload *up, int64_t *size_r)
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

    if (upload_header_number(req, "X-Total-Size", &xts) < 0
        || upload_header_number(req, "Upload-Length", &ul) < 0) {
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
    if (*total_r < 0 && upload_final_exists(up, &have) && have > 0)
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
    if (upload_header_number(req, "X-Chunk-Number", &number) < 0) {
        *why = "X-Chunk-Number must be a decimal number (the first chunk "
               "is 0)";
        return 400;
    }
    if (upload_header_number(req, "X-Total-Chunks", &cn.count) < 0) {
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

/* Which part of the file this request carries, and how big the file is. */
int
upload_parse_range(struct conn *c, struct http_request *req, struct upload *up,
            const char **why)
{
    const struct conf *cf = c->w->conf;
    const char *sid = http_header_get(req, "X-Upload-Session-ID");
    const char *cr = http_header_get(req, "Content-Range");
    const char *cn = http_header_get(req, "X-Chunk-Number");
    int status;

    if (sid && !upload_session_id_valid(sid)) {
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

int
upload_check_signature(struct upload *up, const char **why)
{
    struct auth_result res;
    if (upload_check_auth(up, up->total, &res) == 0)
        return 0;
    if (res.status == AUTH_SIZE_UNKNOWN) {
        up->recheck_mac = true;
        return 0;
    }
    *why = res.reason;
    return upload_auth_status(res.status);
}
