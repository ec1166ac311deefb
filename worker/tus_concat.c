/* tus_concat.c: the final upload of tus concatenation: POST to the signed
 * file URL with "Upload-Concat: final;<partial URL> ...". The partials
 * (created by tus_create.c with Upload-Concat: partial, never published)
 * must all be complete; their sizes add up to the file's, which the
 * signature is checked against like a whole upload's Upload-Length. The
 * final's session is filled from them (sess_concat) and published before
 * the 201, exactly once, like any upload; then the partials are removed.
 *
 * The final's id is derived from the path and the partials' ids, so a
 * client that repeats its final POST (its answer was lost in a crash) finds
 * the same upload: assembled, half assembled or published. Knowing it
 * takes knowing every partial's id, each a capability itself. */
#define _GNU_SOURCE
#include "worker/tus.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/conf/conf.h"
#include "lib/http/contentdigest.h"
#include "lib/http/request.h"
#include "lib/store/manifest.h"
#include "lib/util/log.h"
#include "worker/conn.h"
#include "worker/handler.h"
#include "worker/session.h"
#include "worker/tus_part.h"

/* SHA-256 of the path and the ordered ids, as an upload id. */
static int
final_id(struct tus *t)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
             && EVP_DigestUpdate(ctx, "tus-final", 10) == 1
             && EVP_DigestUpdate(ctx, t->hdr.path, strlen(t->hdr.path) + 1)
                == 1
             && EVP_DigestUpdate(ctx, t->hdr.parts, strlen(t->hdr.parts))
                == 1
             && EVP_DigestFinal_ex(ctx, md, &n) == 1 && n >= TUS_ID_BYTES;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    for (size_t i = 0; i < TUS_ID_BYTES; i++)
        snprintf(t->id + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* The final's length: what its session says if it exists already (a
 * repeated POST), else the sum of its partials', each of which must be a
 * complete, live tus upload (the pool checks the rest: sess_concat). */
static int
final_length(struct tus *t, bool *exists, const char **why)
{
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header none;
    struct shm_view v;
    uint64_t total = 0;

    memset(&none, 0, sizeof(none));
    for (size_t i = 0; i <= t->nparts; i++) {
        const char *id = i == 0 ? t->id : t->parts[i - 1];
        tus_session_key(id, key);
        struct sess *s = sess_new(t->w, key, &none);
        if (s == NULL) {
            *why = "out of memory";
            return 503;
        }
        int rc = sess_find(s, &v);
        sess_free(s);
        if (i == 0) {
            *exists = rc == 0 && v.proto == MANIFEST_PROTO_TUS;
            if (*exists && v.state == SHM_DOOMED) {
                *why = "this final upload failed earlier (a different file "
                       "at the path, or not the SHA-256 announced) and its "
                       "partial uploads are gone; upload the file again";
                return 410;
            }
            if (*exists) {
                t->length = v.size;
                return 0;
            }
            continue;
        }
        snprintf(t->err, sizeof(t->err), "partial upload %.8s...: ", id);
        size_t n = strlen(t->err);
        *why = t->err;
        if (rc != 0 || v.proto != MANIFEST_PROTO_TUS) {
            snprintf(t->err + n, sizeof(t->err) - n, "no such upload");
            return 400;
        }
        if (v.state == SHM_DOOMED || tus_expired(t, &v)) {
            snprintf(t->err + n, sizeof(t->err) - n,
                     "expired or terminated");
            return 410;
        }
        if (v.state != SHM_ACTIVE || v.size == SHM_SIZE_UNKNOWN
            || v.prefix != v.size) {
            snprintf(t->err + n, sizeof(t->err) - n, "is not a complete "
                     "partial upload (concatenation-unfinished is not "
                     "offered)");
            return 400;
        }
        total += v.size;
    }
    t->length = total;
    return 0;
}

static int
final_parse(struct tus *t, struct conn *c, struct http_request *req,
            const char **why)
{
    int status = tus_create_target(t, c, req, why);
    if (status != 0)
        return status;
    if (http_header_get(req, "Upload-Length")
        || http_header_get(req, "Upload-Defer-Length")) {
        *why = "a final upload takes no Upload-Length: it is the sum of its "
               "partial uploads'";
        return 400;
    }
    if (req->chunked || req->content_length > 0) {
        *why = "a final upload has no body";
        return 400;
    }
    int d = http_content_sha256(req, t->sha);
    if (d < 0) {
        *why = "X-Content-SHA256 must be 64 hex digits; Digest/Repr-Digest "
               "sha-256 must be base64 of 32 bytes";
        return 400;
    }
    t->has_sha = d == 1;
    for (size_t i = 0; i < t->nparts; i++) {
        size_t n = strlen(t->hdr.parts);
        snprintf(t->hdr.parts + n, sizeof(t->hdr.parts) - n, "%s%s",
                 i ? " " : "", t->parts[i]);
    }
    if (final_id(t) < 0) {
        *why = "cannot derive the upload id";
        return 500;
    }
    return 0;
}

static void
final_dropped(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    (void)s;
    (void)rc;
    sess_free(t->sess);             /* terminated: nothing is kept */
    t->sess = NULL;
    if (!tus_still_wanted(t))
        return;
    tus_fail(t, t->fail_status, true, "%s", t->err);
}

static void
final_filled(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    (void)s;
    if (!tus_still_wanted(t))
        return;                   /* what was copied is committed, kept */
    if (rc != 0) {
        /* Not this file's partials, or gone: the final never existed. */
        snprintf(t->err, sizeof(t->err), "%s", sess_error(t->sess));
        log_info("tus: final upload for %s refused: %s", t->hdr.path,
                 t->err);
        t->fail_status = rc;
        t->pending = true;
        sess_terminate(t->sess, final_dropped, t);
        return;
    }
    tus_resume(t);                /* tus_complete: commit and publish */
}

static void
final_opened(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    struct shm_view v;
    uint64_t skip = 0;
    (void)s;
    if (!tus_still_wanted(t))
        return;
    if (rc != 0 || sess_view(t->sess, &v) < 0) {
        tus_fail(t, rc ? rc : 500, true, "%s", rc == 507
                 ? "not enough free space" : rc == 503
                 ? "too many upload sessions; retry shortly"
                 : "cannot create the upload session");
        return;
    }
    if (v.state == SHM_DOOMED) {
        tus_fail(t, 410, true, "this final upload failed earlier; upload "
                 "the file again");
        return;
    }
    if (v.state == SHM_DONE || v.size == 0) {
        tus_resume(t);            /* published already, or nothing to copy */
        return;
    }
    int lr = sess_lease(t->sess, 0, v.size, &skip);
    if (lr == SESS_HELD) {
        tus_resume(t);            /* assembled before a crash: publish */
        return;
    }
    if (lr != SESS_LEASED) {
        tus_fail(t, 503, true, "the final upload is being assembled by "
                 "another request; retry");
        return;
    }
    t->pending = true;
    sess_concat(t->sess, final_filled, t);
}

int
tus_final_begin(struct tus *t, struct conn *c, struct http_request *req)
{
    const struct conf *cf = c->w->conf;
    uint8_t key[MANIFEST_KEY_LEN];
    const char *why = NULL;
    bool exists = false;
    int status;

    if ((status = final_parse(t, c, req, &why)) != 0
        || (status = final_length(t, &exists, &why)) != 0)
        return tus_fail(t, status, true, "%s", why);
    if (t->length > cf->max_upload_size)
        return tus_fail(t, 413, true, "the partial uploads add up to more "
                        "than the server's maximum upload size");
    if ((status = tus_check_auth(t, c->query, (int64_t)t->length, &why)) != 0)
        return tus_fail(t, status, true, "%s", why);
    if (!exists && tus_file_exists(t))
        return tus_fail(t, 409, true, "a file already exists at this path");
    t->hdr.proto = MANIFEST_PROTO_TUS;
    t->hdr.concat = MANIFEST_CONCAT_FINAL;
    t->hdr.size = t->length;
    t->hdr.created = t->started;
    t->hdr.expires = t->started + cf->sessiontimeout;
    memcpy(t->hdr.id, t->id, sizeof(t->id));
    tus_session_key(t->id, key);
    if ((t->sess = sess_new(c->w, key, &t->hdr)) == NULL)
        return tus_fail(t, 503, true, "out of memory");
    if (t->has_sha)
        sess_expect_sha256(t->sess, t->sha);
    conn_set_handler(c, &tus_handler, t);
    t->in_head = true;
    t->pending = true;
    sess_open(t->sess, true, final_opened, t);
    return tus_after_head_call(t, c);
}
