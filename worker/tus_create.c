/* tus_create.c: creation (POST to a signed file URL, checked like the PUT
 * the URL was signed for), creation-with-upload and creation-defer-length;
 * a new upload's id and session, made room for when space is short. */
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

/* The signature of the creation URL, checked like the PUT it was signed
 * for, with `size` as its Content-Length (-1: not known yet). */
int
tus_check_auth(struct tus *t, const char *query, int64_t size,
               const char **why)
{
    const struct conf *cf = t->w->conf;
    struct auth_result res;
    char ctype[MANIFEST_CTYPE_MAX + 1];

    /* v2 binds the slot's content type, which a tus client cannot send as
     * Content-Type (that is the protocol's own); tus-js-client and Uppy
     * put it in the metadata as "filetype". */
    tus_metadata_get(t->hdr.meta, "filetype", ctype, sizeof(ctype));
    struct auth_request ar = {
        .method = "PUT",         /* the URL was signed for an upload PUT */
        .prefix = cf->url_prefix,
        .path = t->hdr.path,
        .path_len = strlen(t->hdr.path),
        .query = query && query[0] ? query : NULL,
        .content_length = size,
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
    if (res.status == AUTH_SIZE_UNKNOWN && t->concat == TUS_CONCAT_PARTIAL) {
        *why = "a partial upload (Upload-Concat: partial) under a URL whose "
               "signature binds the file size must name that size: "
               "Upload-Metadata key filesize (tus-js-client: "
               "metadataForPartialUploads)";
        return 400;
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

bool
tus_file_exists(struct tus *t)
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

/* What every creation names: the file path (from the URL) and its
 * Upload-Metadata. */
int
tus_create_target(struct tus *t, struct conn *c, struct http_request *req,
                  const char **why)
{
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
    if (md && strlen(md) > MANIFEST_META_MAX) {
        *why = "Upload-Metadata longer than 4096 bytes";
        return 400;
    }
    if (md && tusmeta_parse(md, &meta, t->err, sizeof(t->err)) < 0) {
        *why = t->err;
        return 400;
    }
    snprintf(t->hdr.meta, sizeof(t->hdr.meta), "%s", md ? md : "");
    return 0;
}

/* A partial upload's signature check: the whole file's size, from the
 * metadata (filesize), binds it to the signed URL as a whole upload's
 * Upload-Length does; it may be no longer than that. */
static int
partial_auth(struct tus *t, struct conn *c, const char **why)
{
    char v[24];
    uint64_t whole;
    int64_t size = -1;

    tus_metadata_get(t->hdr.meta, "filesize", v, sizeof(v));
    if (v[0] != '\0') {
        if (tus_parse_u64(v, &whole) < 0) {
            *why = "Upload-Metadata filesize must be a decimal byte count";
            return 400;
        }
        size = (int64_t)whole;
    }
    int status = tus_check_auth(t, c->query, size, why);
    if (status != 0)
        return status;
    if (t->hdr.mac_size != MANIFEST_SIZE_UNKNOWN
        && t->length > t->hdr.mac_size) {
        *why = "partial upload longer than the signed file size";
        return 413;
    }
    return 0;
}

int
tus_create_parse(struct tus *t, struct conn *c, struct http_request *req,
             const char **why)
{
    const struct conf *cf = c->w->conf;
    const char *ul = http_header_get(req, "Upload-Length");
    const char *dl = http_header_get(req, "Upload-Defer-Length");
    int status = tus_create_target(t, c, req, why);

    if (status != 0)
        return status;
    if (dl && t->concat == TUS_CONCAT_PARTIAL) {
        *why = "a partial upload needs Upload-Length";
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
    if (ul && tus_parse_u64(ul, &t->length) < 0) {
        *why = "Upload-Length must be a decimal byte count";
        return 400;
    }
    if (ul && t->length > cf->max_upload_size) {
        *why = "Upload-Length over the server's maximum upload size "
               "(Tus-Max-Size)";
        return 413;
    }
    status = tus_parse_body(t, req, why);
    if (status != 0)
        return status;
    if (t->length != MANIFEST_SIZE_UNKNOWN && t->body_len > 0
        && (uint64_t)t->body_len > t->length) {
        *why = "body longer than Upload-Length";
        return 413;
    }
    if (t->concat == TUS_CONCAT_PARTIAL)
        status = partial_auth(t, c, why);
    else
        status = tus_check_auth(t, c->query, t->length == MANIFEST_SIZE_UNKNOWN
                                ? -1 : (int64_t)t->length, why);
    if (status != 0)
        return status;
    if (tus_file_exists(t)) {
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
    if (!tus_still_wanted(t))
        return;
    if (t->reclaimed < 0)
        log_warn("tus: reclaiming space: %s", t->err);
    if (t->reclaimed <= 0) {
        tus_fail(t, 507, true, "not enough free space");
        return;
    }
    log_info("removed %d expired upload session(s) to make room for %s",
             t->reclaimed, t->hdr.path);
    tus_create_begin(t, t->c);
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
    if (!tus_still_wanted(t))
        return;
    if (rc == 507 && start_reclaim(t))
        return;
    if (rc != 0) {
        tus_fail(t, rc, true, "%s", rc == 507 ? "not enough free space"
             : rc == 503 && sess_elsewhere(s) ? sess_error(s)
             : rc == 503 ? "too many upload sessions; retry shortly"
             : "cannot create the upload session");
        return;
    }
    int status = tus_lease_body(t, t->length, &why);
    if (status != 0) {
        tus_fail(t, status, true, "%s", why);
        return;
    }
    log_info("tus: %supload %.8s... created for %s",
             t->concat == TUS_CONCAT_PARTIAL ? "partial " : "", t->id,
             t->hdr.path);
    tus_resume(t);
}

int
tus_create_begin(struct tus *t, struct conn *c)
{
    const struct conf *cf = c->w->conf;
    uint8_t key[MANIFEST_KEY_LEN];

    if (new_id(t) < 0)
        return tus_fail(t, 500, true, "no randomness for an upload id");
    t->hdr.proto = MANIFEST_PROTO_TUS;
    t->hdr.concat = t->concat == TUS_CONCAT_PARTIAL ? MANIFEST_CONCAT_PARTIAL
                                                    : MANIFEST_CONCAT_NONE;
    t->hdr.size = t->length;
    t->hdr.created = t->started;
    t->hdr.expires = t->started + cf->sessiontimeout;
    memcpy(t->hdr.id, t->id, sizeof(t->id));
    tus_session_key(t->id, key);
    if ((t->sess = sess_new(c->w, key, &t->hdr)) == NULL)
        return tus_fail(t, 503, true, "out of memory");
    conn_set_handler(c, &tus_handler, t);
    t->in_head = true;
    t->pending = true;
    sess_open(t->sess, true, created, t);
    return tus_after_head_call(t, c);
}
