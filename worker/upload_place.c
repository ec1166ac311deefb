/* upload_place.c: where an upload's body goes, decided at the head: a
 * resumable session (opened off the loop with the parser paused), a
 * one-shot staging file, or nowhere (the bytes are only compared with a
 * file already published). Out of space, expired sessions are reclaimed
 * and the placement is tried again. */
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
#include "worker/upload_part.h"

#define PREALLOC_MIN  (64 * 1024)   /* bodies up to this: no fallocate */

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
     * of failing after the client sent most of the file. Not for a small
     * body: check_space has made sure of storage.min_free beyond it, it
     * arrives in a read or two, and the fallocate (a syscall, and extents
     * marked unwritten then converted by the write) cost more than the
     * late 507 it could save. */
    if (need > PREALLOC_MIN && fallocate(up->fd, 0, 0, (off_t)need) < 0
        && errno != EOPNOTSUPP) {
        *why = errno == ENOSPC || errno == EDQUOT
             ? "not enough free space on the server"
             : "cannot reserve space for the file";
        return errno == ENOSPC || errno == EDQUOT ? 507 : 500;
    }
    up->mode = MODE_STAGING;
    return 0;
}

/* The session's directory is gone but its table entry was still there:
 * a worker died between publishing the file and telling the table. If the
 * file is there with the right size, the upload is complete. */
bool
upload_published_meanwhile(struct upload *up)
{
    int64_t have;
    if (!upload_final_exists(up, &have) || have != up->total)
        return false;
    if (up->sess)
        sess_abandon(up->sess);
    up->complete_already = true;
    return true;
}

/* 100 Continue only once we know where the body goes: a 409, 503 or
 * 507 found while opening the session then costs the client no upload. */
int
upload_send_continue(struct conn *c, struct upload *up)
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
    if (upload_send_continue(c, up) < 0) {
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

static void
opened(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    up->opening = false;
    if (up->c == NULL || !conn_alive(up->c)) {
        upload_free(up, true);
        return;
    }
    if (rc == 404 && upload_published_meanwhile(up)) {
        up->mode = MODE_DISCARD;
        resume_body(up);
        return;
    }
    if (rc == 507 && upload_start_reclaim(up->c, up))
        return;
    if (rc != 0) {
        struct conn *c = up->c;
        char why[256];
        snprintf(why, sizeof(why), "%s", rc == 409
                 ? "session bound to another size"
                 : rc == 507 ? "not enough free space on the server"
                 : rc == 503 && sess_elsewhere(s) ? sess_error(s)
                 : rc == 503 ? "session busy (being created or published) "
                               "or table full; retry shortly"
                 : "cannot open the upload session");
        conn_clear_handler(c, up);
        upload_free(up, true);       /* frees s */
        conn_reject(c, rc, why);
        return;
    }
    lease_range(up);
}

/* The session this upload would have: its HEADER, its key. */
static struct sess *
session_for(struct upload *up)
{
    struct manifest_header h;
    uint8_t key[MANIFEST_KEY_LEN];
    const struct conf *cf = up->w->conf;

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
    struct sess *s = sess_new(up->w, key, &h);
    if (s != NULL && up->has_sha)
        sess_expect_sha256(s, up->sha);
    return s;
}

static int
begin_session(struct conn *c, struct upload *up)
{
    up->sess = session_for(up);
    if (up->sess == NULL)
        return 503;
    up->mode = MODE_SESSION;
    /* Claiming may create a manifest (fsync): off the loop, with the
     * parser paused until we know where the body goes. */
    conn_pause_body(c);
    up->opening = true;
    sess_open(up->sess, true, opened, up);
    return 0;
}

/* A whole file by plain PUT with no session yet: it goes to a one-shot
 * staging file and becomes a session only if its connection ends before
 * the body does (upload_promote), so a PUT that completes in one request
 * pays for no manifest, no session directory, no checkpoints and no
 * re-reading at publication (docs/recovery.md, "Deferred create"). A PUT
 * for which a session exists (a re-send after a cut) resumes that one. */
static bool
defer_session(struct upload *up)
{
    /* A cluster node takes a session's ownership when it opens it
     * (docs/cluster.md): there every session is made at the head. */
    if (up->chunked_proto || up->w->table == NULL
        || up->w->conf->node_id[0] != '\0')
        return false;
    struct sess *s = session_for(up);
    struct shm_view v;
    bool none = s != NULL && sess_find(s, &v) == 404;
    sess_free(s);
    return none;
}

bool
upload_may_promote(const struct upload *up)
{
    /* An earlier checkpoint's sync shares the file's description: once it
     * failed (or while it runs) a later sync may say 0 over lost pages. */
    return up->deferred && !up->promoting && !up->write_error
        && up->received > 0 && (int64_t)up->received < up->total
        && (up->ckpt == NULL || (!up->ckpt->failed && !up->ckpt->inflight));
}

/* The connection is gone either way: with rc 0 the session keeps what
 * arrived (upload_free detaches it, which commits), else the staging
 * file is discarded. */
static void
promoted(struct sess *s, int rc, void *arg)
{
    struct upload *up = arg;
    (void)s;
    up->opening = false;
    if (rc == 0) {
        /* The staging name is the session's `data` now. */
        up->staging[0] = '\0';
        up->mode = MODE_SESSION;
    } else {
        if (rc != 409)
            log_warn("%s: cannot keep the cut upload as a session (%d)",
                     up->rel, rc);
        sess_free(up->sess);
        up->sess = NULL;
    }
    upload_free(up, true);
}

void
upload_promote(struct upload *up)
{
    up->promoting = true;
    up->c = NULL;
    up->sess = session_for(up);
    if (up->sess == NULL) {             /* out of memory */
        upload_free(up, true);
        return;
    }
    up->opening = true;
    sess_adopt(up->sess, up->staging, up->fd, up->received, up->body_crc,
               promoted, up);
}

/* Where the body goes: 0 when placed (*async: a session is being opened and
 * opened() goes on), else a status with *why. Resumable unless the size is
 * unknown, the file is empty, or a file is already there (then the bytes
 * are compared, not resumed). */
int
upload_place(struct conn *c, struct upload *up, const char **why, bool *async)
{
    int64_t have;
    int status;

    *async = false;
    if ((status = check_space(up, why)) != 0)
        return status;
    bool exists = up->total > 0 && upload_final_exists(up, &have);
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
        if (defer_session(up)) {
            up->deferred = true;
            return open_staging(up, why);
        }
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
        status = upload_place(c, up, &why, &async);
        /* Freed something but not enough: perhaps more is due now. */
        if (status == 507 && upload_start_reclaim(c, up))
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
bool
upload_start_reclaim(struct conn *c, struct upload *up)
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
