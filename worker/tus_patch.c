/* tus_patch.c: PATCH of an upload resource: the offset and length checks
 * against the session, then the body goes to the session's lease. */
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

static void size_declared(struct sess *s, int rc, void *arg);

int
tus_patch_parse(struct tus *t, struct http_request *req, const char **why)
{
    const char *uo = http_header_get(req, "Upload-Offset");
    const char *ul = http_header_get(req, "Upload-Length");

    if (tus_parse_u64(uo, &t->offset) < 0) {
        *why = "Upload-Offset (a decimal byte offset) is required";
        return 400;
    }
    t->length = MANIFEST_SIZE_UNKNOWN;
    if (ul && tus_parse_u64(ul, &t->length) < 0) {
        *why = "Upload-Length must be a decimal byte count";
        return 400;
    }
    if (ul && t->length > t->w->conf->max_upload_size) {
        *why = "Upload-Length over the server's maximum upload size";
        return 413;
    }
    return tus_parse_body(t, req, why);
}

/* The session is open and the offset checked: take the body. */
static void
patch_ready(struct tus *t)
{
    const char *why = NULL;
    struct shm_view v;
    if (sess_view(t->sess, &v) < 0) {
        tus_fail(t, 500, true, "cannot read the upload");
        return;
    }
    int status = tus_lease_body(t, v.size, &why);
    if (status != 0) {
        tus_fail(t, status, true, "%s", why);
        return;
    }
    tus_resume(t);
}

static void
opened(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    struct shm_view v;
    (void)s;
    if (!tus_still_wanted(t) || !tus_usable(t, rc, true, &v))
        return;
    if (sess_header(t->sess)->concat == MANIFEST_CONCAT_FINAL) {
        tus_fail(t, 403, true, "a final upload (Upload-Concat: final) is "
                 "assembled from its partial uploads and takes no PATCH");
        return;
    }
    uint64_t offset = v.state == SHM_DONE ? v.size : v.prefix;
    if (v.state != SHM_DONE && v.state != SHM_ACTIVE) {
        tus_fail(t, 409, true, "upload is busy (being created or completed); "
             "retry");
        return;
    }
    if (t->offset != offset) {
        tus_fail(t, 409, true, "Upload-Offset %llu is not the upload's offset "
             "%llu", (unsigned long long)t->offset,
             (unsigned long long)offset);
        return;
    }
    if (t->length != MANIFEST_SIZE_UNKNOWN && v.size != t->length) {
        if (v.size != SHM_SIZE_UNKNOWN) {
            tus_fail(t, 400, true, "Upload-Length differs from the upload's");
            return;
        }
        if (t->body_len > 0
            && t->offset + (uint64_t)t->body_len > t->length) {
            tus_fail(t, 413, true, "body goes past Upload-Length");
            return;
        }
        t->pending = true;
        sess_set_size(t->sess, t->length, size_declared, t);
        return;
    }
    if (v.state == SHM_DONE && t->body_len != 0) {
        tus_fail(t, 413, true, "upload is complete");
        return;
    }
    patch_ready(t);
}

static void
size_declared(struct sess *s, int rc, void *arg)
{
    struct tus *t = arg;
    (void)s;
    if (!tus_still_wanted(t))
        return;
    if (rc != 0) {
        tus_fail(t, rc, true, "%s", rc == 409
             ? "Upload-Length is less than the bytes already received"
             : "cannot record Upload-Length");
        return;
    }
    patch_ready(t);
}

int
tus_patch_begin(struct tus *t, struct conn *c)
{
    uint8_t key[MANIFEST_KEY_LEN];
    struct manifest_header h;

    memset(&h, 0, sizeof(h));
    tus_session_key(t->id, key);
    if ((t->sess = sess_new(c->w, key, &h)) == NULL)
        return tus_fail(t, 503, true, "out of memory");
    conn_set_handler(c, &tus_handler, t);
    t->in_head = true;
    t->pending = true;
    sess_open(t->sess, false, opened, t);
    return tus_after_head_call(t, c);
}
