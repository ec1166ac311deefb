/* upload.c: one PUT from head to publication.
 *
 * Everything that can be refused is refused at the head, before a byte of
 * body is stored: path (400), size (413), signature (403), space (507). The
 * body goes to a staging file with pwrite at its offset as it arrives, never
 * buffered whole. Completion (fdatasync, link into place, directory fsync)
 * runs on the worker's sync pool; the answer is sent only after it. */
#define _GNU_SOURCE
#include "worker/upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/conf/conf.h"
#include "lib/http/response.h"
#include "lib/store/path.h"
#include "lib/store/publish.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/pause.h"
#include "worker/syncpool.h"

struct upload {
    struct sync_job job;
    struct conn    *c;             /* NULL once the connection is gone */
    struct worker  *w;
    int             fd;
    char            staging[STORE_STAGING_NAME_LEN];
    char            rel[STORE_PATH_MAX + 1];
    size_t          rel_len;
    uint64_t        received;
    int64_t         expected;      /* Content-Length, -1 when chunked */
    bool            recheck_mac;   /* size-bound MAC, size known only now */
    bool            job_pending;
    time_t          started;
    char            query[AUTH_QUERY_MAX + 1];
    char            content_type[256];
    int             result, result_errno;
    char            err[256];
};

static void
upload_free(struct upload *up, bool discard)
{
    if (up->fd >= 0)
        close(up->fd);
    if (discard && up->staging[0])
        store_staging_discard(up->w->staging_fd, up->staging);
    up->w->slot->uploads--;
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
        .content_type = up->content_type[0] ? up->content_type : NULL,
        .now = up->started,
    };
    return auth_check(keys, cf->nsecrets, &ar, cf->token_max_lifetime, res);
}

static int
auth_status_code(enum auth_status s)
{
    /* A malformed signature is a bad signature: 403 like the others. */
    return s == AUTH_ERROR ? 500 : 403;
}

/* Head checks that need no file: 0 to go on, else the status to answer. */
static int
check_head(struct conn *c, struct http_request *req, struct upload *up,
           const char **why)
{
    const struct conf *cf = c->w->conf;

    if (c->rel == NULL || c->rel_len == 0) {
        *why = "no file path in the URL";
        return 404;
    }
    if (store_path_decode(c->rel, c->rel_len, up->rel, sizeof(up->rel),
                          &up->rel_len, up->err, sizeof(up->err)) < 0) {
        *why = up->err;
        return 400;
    }
    if (!req->chunked && req->content_length < 0) {
        *why = "Content-Length or chunked Transfer-Encoding required";
        return 411;
    }
    if (req->content_length > 0
        && (uint64_t)req->content_length > cf->max_upload_size) {
        *why = "file larger than the server's maximum upload size";
        return 413;
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
    snprintf(up->content_type, sizeof(up->content_type), "%s", ct ? ct : "");

    struct auth_result res;
    if (check_auth(up, req->content_length, &res) < 0) {
        if (res.status != AUTH_SIZE_UNKNOWN) {
            *why = res.reason;
            return auth_status_code(res.status);
        }
        up->recheck_mac = true;
    }
    return 0;
}

/* Space and the staging file: 0, or the status to answer. */
static int
open_staging(struct upload *up, const char **why)
{
    const struct conf *cf = up->w->conf;
    uint64_t avail;
    uint64_t need = up->expected > 0 ? (uint64_t)up->expected : 0;

    if (store_free_bytes(up->w->staging_fd, &avail) == 0
        && avail < cf->min_free_bytes + need) {
        *why = "not enough free space on the server";
        return 507;
    }
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
    return 0;
}

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
    up->expected = req->chunked ? -1 : req->content_length;
    up->started = time(NULL);
    c->w->slot->uploads++;

    if ((status = check_head(c, req, up, &why)) != 0
        || (status = open_staging(up, &why)) != 0) {
        upload_free(up, true);
        conn_reject(c, status, why);
        return -1;
    }
    if (req->expect_continue && conn_send_continue(c) < 0) {
        upload_free(up, true);
        conn_close(c);
        return -1;
    }
    up->c = c;
    c->up = up;
    return 0;
}

int
upload_body(struct conn *c, const char *at, size_t len)
{
    struct upload *up = c->up;

    if (up->expected < 0
        && up->received + len > c->w->conf->max_upload_size) {
        upload_abort(c);
        conn_reject(c, 413, "file larger than the server's maximum upload size");
        return -1;
    }
    while (len > 0) {
        /* Buffered write to the page cache; durability comes at the end,
         * from the sync pool. */
        ssize_t n = pwrite(up->fd, at, len, (off_t)up->received);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            log_error("%s: write %s: %s", c->peer, up->rel, strerror(e));
            upload_abort(c);
            if (e == ENOSPC || e == EDQUOT)
                conn_reject(c, 507, "not enough free space on the server");
            else
                conn_reject(c, 500, "cannot write the file");
            return -1;
        }
        at += n;
        len -= (size_t)n;
        up->received += (uint64_t)n;
    }
    return 0;
}

static void
publish_work(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    up->result = store_publish(up->w->staging_fd, up->staging, up->fd,
                               up->w->root_fd, up->rel, up->err,
                               sizeof(up->err));
    up->result_errno = errno;
}

static void
publish_done(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    struct conn *c = up->c;

    up->job_pending = false;
    switch (up->result) {
    case STORE_PUBLISHED:
    case STORE_IDENTICAL_EXISTS:
        if (up->err[0])
            log_warn("%s: %s", up->rel, up->err);
        log_info("%s: stored %s (%llu bytes)%s", c ? c->peer : "-", up->rel,
                 (unsigned long long)up->received,
                 up->result == STORE_IDENTICAL_EXISTS ? ", identical" : "");
        up->staging[0] = '\0';      /* consumed by the publish */
        break;
    case STORE_CONFLICT:
        break;
    default:
        log_error("%s: publish %s: %s", c ? c->peer : "-", up->rel, up->err);
    }
    if (c) {
        c->up = NULL;
        if (conn_alive(c)) {
            if (up->result == STORE_PUBLISHED)
                conn_respond_text(c, 201, "201 Created");
            else if (up->result == STORE_IDENTICAL_EXISTS)
                conn_respond_text(c, 200, "200 OK: identical file exists");
            else if (up->result == STORE_CONFLICT)
                conn_respond_text(c, 409, "409 Conflict: a different file "
                                  "exists at this path");
            else if (up->result_errno == ENOSPC || up->result_errno == EDQUOT)
                conn_respond_text(c, 507, "507 Insufficient Storage");
            else
                conn_respond_text(c, 500, "500 Internal Server Error: "
                                  "cannot store the file");
        }
    }
    upload_free(up, true);
}

int
upload_complete(struct conn *c)
{
    struct upload *up = c->up;

    if (up->recheck_mac) {
        struct auth_result res;
        if (check_auth(up, (int64_t)up->received, &res) < 0) {
            upload_abort(c);
            conn_reject(c, auth_status_code(res.status), res.reason);
            return -1;
        }
    }
    if (up->expected > 0 && up->received != (uint64_t)up->expected) {
        upload_abort(c);
        conn_reject(c, 400, "body shorter than Content-Length");
        return -1;
    }
    if (up->expected < 0 && ftruncate(up->fd, (off_t)up->received) < 0) {
        upload_abort(c);
        conn_reject(c, 500, "cannot size the file");
        return -1;
    }
    up->job.work = publish_work;
    up->job.done = publish_done;
    up->job_pending = true;
    pause_submit(c->w, &up->job);
    return 0;
}

/* A checkpoint owns a duplicate of the data fd, so the upload may finish,
 * fail or be freed while the fdatasync runs. */
struct checkpoint {
    struct sync_job job;
    int             fd;
    int             result;
    char            rel[64];
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
        log_error("checkpoint of %s failed", cp->rel);
    close(cp->fd);
    free(cp);
}

int
upload_checkpoint(struct conn *c)
{
    struct upload *up = c->up;
    struct checkpoint *cp = calloc(1, sizeof(*cp));
    if (up == NULL || cp == NULL || (cp->fd = dup(up->fd)) < 0) {
        free(cp);
        return -1;
    }
    snprintf(cp->rel, sizeof(cp->rel), "%.63s", up->rel);
    cp->job.work = checkpoint_work;
    cp->job.done = checkpoint_done;
    /* Straight to the pool, even during a pause: durability is the point. */
    syncpool_submit(c->w->pool, &cp->job);
    return 0;
}

void
upload_abort(struct conn *c)
{
    struct upload *up = c->up;
    if (up == NULL)
        return;
    if (up->job_pending) {
        up->c = NULL;    /* the job finishes and frees; nobody to answer */
        c->up = NULL;
        return;
    }
    c->up = NULL;
    upload_free(up, true);
}
