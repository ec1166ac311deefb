/* upload.c: PUT, from head to publication.
 *
 * Everything that can be refused is refused at the head, before a byte of
 * body is stored: path (400), size (413), signature (403), space (507).
 *
 * Two ways to store a body:
 *  - a resumable session (worker/session.c): the chunked-header protocol
 *    (X-Upload-Session-ID + Content-Range), a plain PUT that resumes one
 *    (Content-Range, or the whole file again after a cut), tus PATCH;
 *  - a one-shot staging file when the size is unknown (chunked transfer
 *    coding), the file is empty or below uploads.resumable_min_size, or a
 *    file already exists at the path (the bytes are then compared: 200 if
 *    identical, 409 if not);
 *  - a plain PUT of a whole file with no session yet starts one-shot too
 *    ("deferred"), and becomes a session only if its connection ends
 *    before the body does: what arrived is then kept for a resume
 *    (upload_promote, upload_place.c).
 * Completion (fdatasync, link into place, directory fsync) runs on the
 * worker's sync pool; the answer is sent only after it. Under
 * storage.sync = "off" a small one-shot upload completes on the loop
 * (publish_on_loop).
 *
 * The parts: upload_parse.c (pure header parsing), upload_head.c (what the
 * head asks for and whether it may), upload_place.c (where the body goes:
 * session, staging file, reclaiming space), upload_status.c (the status
 * HEAD); this file holds the request's life: begin, body, completion,
 * checkpoint, abort, and the answers. They share upload_part.h. */
#define _GNU_SOURCE
#include "worker/upload.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
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
#include "lib/util/syncsite.h"
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
#include "worker/writeback.h"

static int  upload_body(struct conn *c, const char *at, size_t len);
static int  upload_complete(struct conn *c);
static void upload_abort(struct conn *c);
static int  upload_checkpoint(struct conn *c);
static void ckpt_put(struct ckpt_state *st);

const struct handler upload_handler = {
    .name = "upload",
    .body = upload_body,
    .complete = upload_complete,
    .abort = upload_abort,
    .checkpoint = upload_checkpoint,
};

/* ---- shared helpers ------------------------------------------------------ */

/* Leave the gauge before answering: the client may ask /metrics on
 * another worker the moment it has the answer. */
void
upload_uncount(struct upload *up)
{
    if (up->counted)
        up->w->slot->uploads--;
    up->counted = false;
}

void
upload_free(struct upload *up, bool discard)
{
    if (up->fd >= 0)
        close(up->fd);
    if (discard && up->staging[0])
        store_staging_discard(up->w->staging_fd, up->staging);
    if (up->sess)
        sess_detach(up->sess);     /* keeps what arrived */
    ckpt_put(up->ckpt);
    writeback_release(up->wb);
    upload_uncount(up);
    free(up);
}

static void
staging_publish_work(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    uint8_t sha[32];
    if (up->has_sha) {
        /* Hashed as it arrived: every byte of the file passed through
         * upload_body, in order. */
        digest_sha256_final(&up->body_sha, sha);
        if (memcmp(sha, up->sha, 32) != 0) {
            up->result = SESS_DIGEST_MISMATCH;
            return;
        }
    }
    if (up->wb != NULL && writeback_failed(up->wb)) {
        /* fsyncgate again: the pages it could not write may be gone. */
        up->result = STORE_PUBLISH_ERROR;
        up->result_errno = EIO;
        snprintf(up->err, sizeof(up->err), "an early write-back failed");
        return;
    }
    if (up->ckpt != NULL && (up->ckpt->failed || up->ckpt->inflight)) {
        /* fsyncgate: the fsync below could succeed over dropped pages. */
        up->result = STORE_PUBLISH_ERROR;
        up->result_errno = EIO;
        snprintf(up->err, sizeof(up->err), "%s", up->ckpt->failed
                 ? "an earlier checkpoint's fdatasync failed"
                 : "a checkpoint's fdatasync is still running");
        return;
    }
    struct store_modes modes = { up->w->conf->file_mode,
                                 up->w->conf->dir_mode };
    /* "batch": the directories are synced by the group (worker/commit.c),
     * the data here, at the same time as the other uploads' on other
     * pool threads. */
    up->result = (up->w->conf->sync_mode == CONF_SYNC_BATCH
                  ? store_publish_unsynced_dirs : store_publish)(
                     up->w->staging_fd, up->staging, up->fd, up->w->root_fd,
                     up->rel, &modes, up->err, sizeof(up->err));
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

void
upload_respond_status(struct conn *c, struct upload *up, int status)
{
    struct http_head h;
    char body[384];
    int n;

    switch (status) {
    case 201: n = snprintf(body, sizeof(body), "201 Created\n"); break;
    case 503: n = snprintf(body, sizeof(body), "503 Service Unavailable%s%s\n",
                           up->sess && sess_elsewhere(up->sess) ? ": " : "",
                           up->sess && sess_elsewhere(up->sess)
                           ? sess_error(up->sess) : ""); break;
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
        http_head_put_u64(&h, "Upload-Offset", up->total);
        http_head_put_u64(&h, "Upload-Length", up->total);
    } else if (up->sess) {
        struct shm_view v;
        char ranges[1024];
        if (sess_view(up->sess, &v) == 0) {
            http_head_put_u64(&h, "Upload-Offset",
                              v.state == SHM_DONE ? v.size : v.prefix);
            http_head_put_u64(&h, "Upload-Length", v.size);
            sess_ranges(up->sess, ranges, sizeof(ranges));
            if (v.state != SHM_DONE && ranges[0])
                http_head_put(&h, "X-Upload-Ranges", ranges);
        }
    }
    http_head_put(&h, "Cache-Control", "no-store");
    if (status == 503)
        http_head_put(&h, "Retry-After", "2");
    if (c->method == HTTP_HEAD) {
        http_head_put(&h, "Content-Length", "0");
        conn_respond_head(c, &h, NULL, 0);
        return;
    }
    http_head_put(&h, "Content-Type", "text/plain; charset=utf-8");
    http_head_put_u64(&h, "Content-Length", (uint64_t)n);
    conn_respond_head(c, &h, body, (size_t)n);
}

void
upload_finish(struct upload *up, int status)
{
    struct conn *c = up->c;
    upload_uncount(up);
    if (c) {
        conn_clear_handler(c, up);
        if (conn_alive(c)) {
            if (status >= 500 || status == 409)
                c->close_after = status >= 500;
            upload_respond_status(c, up, status);
        }
    }
    upload_free(up, true);
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

    if ((status = upload_parse_common(c, req, up, &why)) != 0
        || (status = upload_check_enabled(c->w->conf, req, &why)) != 0
        || (status = upload_parse_range(c, req, up, &why)) != 0
        || (status = upload_check_signature(up, &why)) != 0)
        goto reject;
    up->expect_continue = req->expect_continue;
    up->retry.max = c->w->conf->max_retries;
    conn_set_handler(c, &upload_handler, up);
    bool async;
    status = upload_place(c, up, &why, &async);
    if (status == 507 && upload_start_reclaim(c, up))
        return 0;
    if (status != 0) {
        conn_clear_handler(c, up);
        goto reject;
    }
    if (async)
        return 0;
    if (upload_send_continue(c, up) < 0) {
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
    up->write_error = true;
    log_error("%s: write %s: %s", c->peer, up->rel, strerror(e));
    upload_abort(c);
    if (e == ENOSPC || e == EDQUOT)
        conn_reject(c, 507, "not enough free space on the server");
    else
        conn_reject(c, 500, "cannot write the file");
    return -1;
}

/* `written` bytes of this request's range are in the file: once the
 * first stretch is complete, start writing them back (worker/writeback.h).
 * Not under storage.sync = "off": no fdatasync comes whose wait it would
 * shorten, and the kernel writes the pages back when it likes. */
static void
note_written(struct upload *up, uint64_t written)
{
    uint64_t stretch = up->mode == MODE_SESSION ? WRITEBACK_STRETCH_SESSION
                                                : WRITEBACK_STRETCH;
    if (written < stretch || sync_sites_off())
        return;
    if (!up->wb_tried) {
        up->wb_tried = true;
        up->wb = up->mode == MODE_SESSION
               ? writeback_new(up->w, sess_data_fd(up->sess),
                               sess_lease_start(up->sess), stretch)
               : writeback_new(up->w, up->fd, 0, stretch);
    }
    if (up->wb != NULL)
        writeback_note(up->wb, written);
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
        note_written(up, sess_written(up->sess));
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
        if (n <= 0) {
            int e = errno;
            c->w->stats->storage_errors[STATS_STORE_WRITE]++;
            return write_failed(c, e);
        }
        if (up->deferred)
            up->body_crc = crc32c(up->body_crc, at, (size_t)n);
        if (up->has_sha)
            digest_sha256_update(&up->body_sha, at, (size_t)n);
        at += n;
        len -= (size_t)n;
        up->received += (uint64_t)n;
    }
    note_written(up, up->received);
    return 0;
}

static void publish_answer(struct upload *up);

static void
group_committed(struct commit_member *m)
{
    struct upload *up = (struct upload *)((char *)m
                                          - offsetof(struct upload, member));
    if (m->result != 0) {
        up->result = STORE_PUBLISH_ERROR;
        up->result_errno = m->result;
        snprintf(up->err, sizeof(up->err), "%s", m->err);
    }
    publish_answer(up);
}

static void
staging_publish_done(struct sync_job *job)
{
    struct upload *up = (struct upload *)job;
    if (up->w->conf->sync_mode == CONF_SYNC_BATCH
        && (up->result == STORE_PUBLISHED
            || up->result == STORE_IDENTICAL_EXISTS)) {
        up->member.rel = up->rel;
        up->member.data_fd = up->fd;
        up->member.done = group_committed;
        commit_add(up->w->commit, &up->member);
        return;
    }
    publish_answer(up);
}

/* The publication's outcome, durable (or failed): answer it. */
static void
publish_answer(struct upload *up)
{
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
        up->w->stats->storage_errors[STATS_STORE_PUBLISH]++;
    }
    upload_finish(up, status);
}

static void
session_finished(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    (void)s;
    up->job_pending = false;
    upload_finish(up, rc == 0 ? 200 : rc);
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
        upload_finish(up, 409);
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
    upload_finish(up, up->result);
}

/* Under storage.sync = "off" a small one-shot upload is published right
 * here, on the loop: with no sync to wait for, what is left (fchmod,
 * mkdirat, linkat, unlinkat; a compare of at most this many bytes if the
 * name is taken) is the same kind of work as the staging file's create and
 * write that the loop already did, and cheaper than the hand-off to a pool
 * thread and back (a futex wake, a context switch, an eventfd each way).
 * It also keeps the directory operations of one worker in series: pool
 * threads doing them at once spin on the directory's lock (issue 12,
 * docs/performance.md, "Small uploads without a hand-off"). Not while the
 * pool is held: a publication then waits like any other. */
#define PUBLISH_ON_LOOP_MAX  (64 * 1024)

static bool
publish_on_loop(const struct upload *up)
{
    return up->w->conf->sync_mode == CONF_SYNC_OFF
        && up->received <= PUBLISH_ON_LOOP_MAX
        && up->ckpt == NULL && !syncpool_held(up->w->pool);
}

/* The body is complete and no write-back job is in flight: verify,
 * commit, publish. */
static void
complete_settled(void *arg)
{
    struct upload *up = arg;
    if (up->wb != NULL && writeback_failed(up->wb)) {
        /* (Only after a job came back: upload_complete refuses at once.)
         * Its pages may be lost with no later sync to say so: keep
         * nothing this request wrote; the client sends it again. */
        if (up->sess != NULL) {
            sess_discard(up->sess);
            up->sess = NULL;
        }
        up->job_pending = false;
        upload_finish(up, 500);
        return;
    }
    if (up->mode == MODE_SESSION && up->dup_len > 0) {
        /* Re-sent bytes were dropped, never written: they must be the
         * bytes already held, or the client is sending another file. */
        sess_verify(up->sess, up->range_a, up->dup_len, up->dup_crc,
                    duplicate_checked, up);
        return;
    }
    if (up->mode == MODE_SESSION) {
        sess_finish(up->sess, session_finished, up);
        return;
    }
    up->job.work = staging_publish_work;
    up->job.done = staging_publish_done;
    if (publish_on_loop(up)) {
        staging_publish_work(&up->job);
        staging_publish_done(&up->job);
        return;
    }
    syncpool_submit_held(up->w->pool, &up->job);
}

static int
upload_complete(struct conn *c)
{
    struct upload *up = c->handler_ctx;

    if (up->recheck_mac) {
        struct auth_result res;
        if (upload_check_auth(up, (int64_t)up->received, &res) < 0) {
            upload_abort(c);
            conn_reject(c, upload_auth_status(res.status), res.reason);
            return -1;
        }
    }
    if (up->mode == MODE_STAGING && up->expected < 0
        && ftruncate(up->fd, (off_t)up->received) < 0) {
        upload_abort(c);
        conn_reject(c, 500, "cannot size the file");
        return -1;
    }
    if (up->wb != NULL && !writeback_busy(up->wb)
        && writeback_failed(up->wb)) {
        upload_abort(c);
        conn_reject(c, 500, "cannot write the file");
        return -1;
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
    /* The last write-back job's outcome decides whether there is
     * anything to publish; it is at most one stretch of work. */
    if (up->wb != NULL && writeback_busy(up->wb))
        writeback_settle(up->wb, complete_settled, up);
    else
        complete_settled(up);
    return 0;
}

/* A checkpoint of a one-shot staging file owns a duplicate of its fd, so
 * the upload may finish, fail or be freed while the fdatasync runs. */
struct checkpoint {
    struct sync_job    job;
    int                fd;
    int                result;
    struct worker     *w;
    struct ckpt_state *st;
};

static void
ckpt_put(struct ckpt_state *st)
{
    if (st != NULL && --st->refs == 0)
        free(st);
}

static void
checkpoint_work(struct sync_job *job)
{
    struct checkpoint *cp = (struct checkpoint *)job;
    cp->result = SYNC_AT("upload_checkpoint", fdatasync(cp->fd));
    if (cp->result < 0)
        cp->st->failed = 1;
    cp->st->inflight--;
}

static void
checkpoint_done(struct sync_job *job)
{
    struct checkpoint *cp = (struct checkpoint *)job;
    if (cp->result < 0) {
        log_error("checkpoint failed: fdatasync: the upload will not be "
                  "published");
        cp->w->stats->storage_errors[STATS_STORE_COMMIT]++;
    }
    close(cp->fd);
    ckpt_put(cp->st);
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
    if (up->job_pending)
        return -1;       /* publication syncs it, on its own description */
    if (up->ckpt == NULL && (up->ckpt = calloc(1, sizeof(*up->ckpt))) != NULL)
        up->ckpt->refs = 1;
    struct checkpoint *cp = up->ckpt ? calloc(1, sizeof(*cp)) : NULL;
    if (cp == NULL || (cp->fd = dup(up->fd)) < 0) {
        free(cp);
        return -1;
    }
    cp->w = c->w;
    cp->st = up->ckpt;
    cp->st->refs++;
    cp->st->inflight++;
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
    if (!up->job_pending && !up->opening && upload_may_promote(up)
        && (up->wb == NULL || !writeback_failed(up->wb))) {
        /* The body was cut: what arrived is kept for a resume. */
        upload_promote(up);
        return;
    }
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

