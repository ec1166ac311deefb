/* session.c: resumable-upload sessions from a worker's point of view: the
 * life of one request's sess (new, open, leases and writes, detach,
 * terminate, free) and the sync-pool job that carries all its work.
 * Commits and publication are in session_publish.c, table maintenance in
 * session_janitor.c; worker/session_internal.h is what they share.
 *
 * Order of durability (docs/recovery.md): bytes are pwritten as they arrive;
 * a commit job fdatasyncs the data, appends one CHUNK record and fdatasyncs
 * the manifest; only then does the shared table count the range as held,
 * and only then may a client be told. Publication links the finished data
 * file into place, appends COMPLETE and removes the session directory.
 *
 * A sess is owned by its request until sess_detach/sess_free; a job in
 * flight keeps it alive, and a detached sess frees itself when the last job
 * comes back. Leases are short (LEASE_S) and renewed by every commit, so a
 * connection that died silently (a phone that changed networks) blocks a
 * retry of its range for at most that long. */
#define _GNU_SOURCE
#include "worker/session_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/store/retry.h"
#include "lib/util/crc32c.h"
#include "lib/util/log.h"
#include "lib/util/syncsite.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/syncpool.h"

#define CREATE_S         30    /* a CREATING claim older than this is dead */

static void job_done(struct sync_job *job);
static void job_work(struct sync_job *job);

struct sess *
sess_new(struct worker *w, const uint8_t key[MANIFEST_KEY_LEN],
         const struct manifest_header *h)
{
    struct sess *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->w = w;
    memcpy(s->key, key, MANIFEST_KEY_LEN);
    s->hdr = *h;
    s->job.work = job_work;
    s->job.done = job_done;
    return s;
}

void
sess_expect_sha256(struct sess *s, const uint8_t sha[32])
{
    s->expect_sha = true;
    memcpy(s->sha_expected, sha, 32);
}

const struct manifest_header *
sess_header(const struct sess *s)
{
    return &s->hdr;
}

bool
sess_busy(const struct sess *s)
{
    return s->kind != J_NONE;
}

void
sess_submit(struct sess *s, enum job_kind kind)
{
    s->kind = kind;
    /* Commits are durability and may run during a network pause; a
     * publication is an answer and waits for the network to settle. */
    if (kind == J_PUBLISH)
        syncpool_submit_held(s->w->pool, &s->job);
    else
        syncpool_submit(s->w->pool, &s->job);
}

void
sess_answer(struct sess *s, int rc)
{
    sess_cb *cb = s->cb;
    s->cb = NULL;
    if (cb && !s->detached)
        cb(s, rc, s->cb_arg);
}

/* ---- pool side ----------------------------------------------------------- */

static int
header_record(const struct manifest_record *r, void *arg)
{
    struct sess *s = arg;
    if (r->type != MANIFEST_HEADER)
        return 2;
    s->hdr = r->u.header;
    return 1;                      /* the first record is all we need */
}

/* The opener may know only the key (a tus request names its upload by id
 * alone): the durable HEADER says what the session is bound to. */
static int
read_header(struct sess *s)
{
    int rc = manifest_replay(s->m, 0, header_record, s, NULL, s->err,
                             sizeof(s->err));
    if (rc == 1)
        return 0;
    if (rc >= 0) {
        errno = rc == 0 ? ENODATA : EBADMSG;
        snprintf(s->err, sizeof(s->err), "manifest has no header record");
    }
    return -1;
}

int
sess_remove_dir(struct sess *s, char *err, size_t errlen)
{
    if (!sync_sites_off())
        s->job_remove_syncs += MANIFEST_REMOVE_SYNCS;
    return manifest_remove(s->w->staging_fd, s->key, err, errlen);
}

static int
create(struct sess *s)
{
    int staging = s->w->staging_fd;
    if (s->adopt_name[0])
        return manifest_adopt(staging, s->key, &s->hdr, s->adopt_name,
                              s->adopt_fd, &s->m, s->err, sizeof(s->err));
    return manifest_create(staging, s->key, &s->hdr, &s->m, s->err,
                           sizeof(s->err));
}

static int
open_or_create(struct sess *s)
{
    int staging = s->w->staging_fd;
    if (!s->is_new) {
        if (manifest_open(staging, s->key, &s->m, s->err,
                          sizeof(s->err)) < 0)
            return -1;
        return read_header(s);
    }
    if (create(s) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    /* Leftovers of a creator that died before activating: we own the
     * claim now, so they are ours to remove. */
    if (sess_remove_dir(s, s->err, sizeof(s->err)) < 0)
        return -1;
    return create(s);
}

static void
job_work(struct sync_job *job)
{
    struct sess *s = (struct sess *)job;

    s->job_rc = 0;
    switch (s->kind) {
    case J_OWN:
        s->job_rc = sess_own_work(s);
        break;
    case J_OPEN:
        s->job_rc = open_or_create(s);
        s->job_errno = errno;
        break;
    case J_COMMIT:
        sess_commit_work(s);
        break;
    case J_PUBLISH:
        sess_publish_work(s);
        break;
    case J_VERIFY:
        s->job_rc = sess_verify_range(s);
        break;
    case J_SIZE:
        sess_size_work(s);
        break;
    case J_CONCAT:
        sess_concat_work(s);
        break;
    case J_TERMINATE:
        /* Only the owner removes a session (docs/cluster.md). */
        if (sess_own_needed(s) && (s->job_rc = sess_own_work(s)) != 0) {
            s->job_errno = s->job_rc == 503 ? ESTALE : EIO;
            s->job_rc = -1;
            break;
        }
        if (s->m)
            manifest_append_abort(s->m, "terminated by the client", s->err,
                                  sizeof(s->err));
        s->job_rc = sess_remove_dir(s, s->err, sizeof(s->err));
        s->job_errno = errno;
        if (s->job_rc == 0)
            sess_owner_drop(s->w, s->key, true);
        break;
    case J_NOTIFY:            /* nothing to do off the loop */
    case J_NONE:
        break;
    }
}

/* ---- loop side ----------------------------------------------------------- */

static int
table_status(int rc)
{
    switch (rc) {
    case SHM_TABLE_NOTFOUND:
    case SHM_TABLE_GONE:    return 404;
    case SHM_TABLE_CONFLICT: return 409;
    case SHM_TABLE_FULL:
    case SHM_TABLE_BUSY:
    case SHM_TABLE_TIMEOUT: return 503;
    default:                return 500;
    }
}

/* Answer through the loop, never from inside sess_open: the caller is
 * usually in a parser callback, and an answer given there would re-enter
 * the parser (or reject a request the parser then goes on reading). */
static void
notify(struct sess *s, int rc)
{
    s->notify_rc = rc;
    sess_submit(s, J_NOTIFY);
}

void
sess_open(struct sess *s, bool create, sess_cb *cb, void *arg)
{
    struct shm_table *t = s->w->table;
    struct shm_session ss = {
        .size = s->hdr.size == MANIFEST_SIZE_UNKNOWN ? SHM_SIZE_UNKNOWN
                                                     : s->hdr.size,
        .chunk_size = s->hdr.chunk_size,
        .proto = s->hdr.proto,
    };
    struct shm_view v;
    int64_t now = sess_now();
    int rc;

    s->cb = cb;
    s->cb_arg = arg;
    if (sess_own_needed(s) && !s->owned) {
        /* A cluster node first makes the session its own (on the pool:
         * the lock and a takeover wait for the shared volume); own_done
         * comes back here. */
        s->create = create;
        sess_submit(s, J_OWN);
        return;
    }
    if (create)
        rc = shm_table_claim(t, s->key, &ss, now, now + CREATE_S, &s->ref,
                             &v, s->err, sizeof(s->err));
    else
        rc = shm_table_find(t, s->key, &s->ref, &v, s->err, sizeof(s->err));
    if (rc != SHM_TABLE_OK && rc != SHM_TABLE_NEW) {
        if (rc != SHM_TABLE_NOTFOUND)
            log_info("session claim: %s", s->err);
        if (rc == SHM_TABLE_FULL)
            sess_janitor(s->w);   /* free what is due now, not in 30 s */
        notify(s, table_status(rc));
        return;
    }
    s->have_ref = true;
    s->is_new = rc == SHM_TABLE_NEW;
    if (!s->is_new && v.state == SHM_DONE && v.proto == MANIFEST_PROTO_TUS) {
        /* A tus final (and its spent partials) keeps its manifest while
         * DONE, and HEAD must still name what it was concatenated from:
         * read the HEADER if it is there; a plain tus upload's is gone,
         * which is no error (open_done). */
        s->peek_done = true;
        sess_submit(s, J_OPEN);
        return;
    }
    if (!s->is_new && (v.state == SHM_DONE || v.state == SHM_DOOMED)) {
        notify(s, 0);          /* nothing on disk to open; caller decides */
        return;
    }
    sess_submit(s, J_OPEN);
}

static int take_lease(struct sess *s, uint64_t a, uint64_t b,
                      struct shm_view *v);

/* The adopted file is the session's data now: lease the whole file, with
 * what its request wrote counted as written, not yet committed. */
static void
adopted(struct sess *s)
{
    struct shm_view v;
    int rc = take_lease(s, 0, s->hdr.size, &v);
    if (rc != SESS_LEASED) {
        sess_answer(s, rc == SHM_TABLE_HELD ? 409 : rc);
        return;
    }
    s->written = s->adopt_written;
    s->crc = s->adopt_crc;
    sess_answer(s, 0);
}

static void
own_done(struct sess *s)
{
    if (s->job_rc != 0) {
        if (s->job_rc != 404)
            log_info("session %s: %s", s->hdr.path, s->err);
        sess_answer(s, s->job_rc);
        return;
    }
    s->owned = true;
    sess_open(s, s->create, s->cb, s->cb_arg);
}

static void
open_done(struct sess *s)
{
    char err[256];
    if (s->peek_done) {
        s->peek_done = false;
        sess_answer(s, 0);        /* with the HEADER, or without it */
        return;
    }
    if (s->job_rc < 0) {
        log_error("session %s: %s", s->hdr.path, s->err);
        if (s->is_new) {
            shm_table_remove(s->w->table, s->ref, err, sizeof(err));
            s->have_ref = false;
        }
        sess_answer(s, s->job_errno == ENOSPC || s->job_errno == EDQUOT ? 507
                     : s->job_errno == ENOENT ? 404 : 500);
        return;
    }
    if (s->is_new && shm_table_activate(s->w->table, s->ref, sess_now(), err,
                                        sizeof(err)) != SHM_TABLE_OK) {
        log_error("session %s: activate: %s", s->hdr.path, err);
        sess_answer(s, 500);
        return;
    }
    struct shm_view v;
    /* A deferred length declared later lives in a SIZE record, which the
     * table mirrors; the HEADER read above still says unknown. */
    if (!s->is_new && s->hdr.size == MANIFEST_SIZE_UNKNOWN
        && sess_view(s, &v) == 0 && v.size != SHM_SIZE_UNKNOWN)
        s->hdr.size = v.size;
    if (s->adopt_name[0])
        return adopted(s);
    sess_answer(s, 0);
}

void
sess_adopt(struct sess *s, const char *name, int fd, uint64_t written,
           uint32_t crc, sess_cb *cb, void *arg)
{
    struct shm_session ss = {
        .size = s->hdr.size,
        .chunk_size = s->hdr.chunk_size,
        .proto = s->hdr.proto,
    };
    struct shm_view v;
    int64_t now = sess_now();

    s->cb = cb;
    s->cb_arg = arg;
    if (strlen(name) >= sizeof(s->adopt_name)) {
        notify(s, 500);
        return;
    }
    if (sess_own_needed(s)) {     /* cluster: no deferred sessions */
        notify(s, 409);
        return;
    }
    int rc = shm_table_claim(s->w->table, s->key, &ss, now, now + CREATE_S,
                             &s->ref, &v, s->err, sizeof(s->err));
    if (rc == SHM_TABLE_OK) {
        /* Someone else's session for this file: ours stays one-shot. */
        notify(s, 409);
        return;
    }
    if (rc != SHM_TABLE_NEW) {
        log_info("session claim: %s", s->err);
        notify(s, table_status(rc));
        return;
    }
    s->have_ref = true;
    s->is_new = true;
    snprintf(s->adopt_name, sizeof(s->adopt_name), "%s", name);
    s->adopt_fd = fd;
    s->adopt_written = written;
    s->adopt_crc = crc;
    sess_submit(s, J_OPEN);
}

int
sess_find(struct sess *s, struct shm_view *v)
{
    int rc = shm_table_find(s->w->table, s->key, &s->ref, v, s->err,
                            sizeof(s->err));
    s->have_ref = rc == SHM_TABLE_OK;
    return rc == SHM_TABLE_OK ? 0 : table_status(rc);
}

int
sess_view(struct sess *s, struct shm_view *v)
{
    char err[256];
    return shm_table_view(s->w->table, s->ref, v, err, sizeof(err))
           == SHM_TABLE_OK ? 0 : -1;
}

void
sess_ranges(struct sess *s, char *buf, size_t len)
{
    struct ranges rs;
    char err[256];
    buf[0] = '\0';
    if (shm_table_ranges(s->w->table, s->ref, &rs, err, sizeof(err))
        == SHM_TABLE_OK)
        ranges_format(&rs, buf, len);
}

/* SESS_LEASED (fields set for writing), SHM_TABLE_HELD, or a status. */
static int
take_lease(struct sess *s, uint64_t a, uint64_t b, struct shm_view *v)
{
    int64_t now = sess_now();
    int rc = shm_table_lease(s->w->table, s->ref, a, b, now, now + LEASE_S,
                             &s->lease, v, s->err, sizeof(s->err));
    if (rc == SHM_TABLE_HELD)
        return rc;
    if (rc != SHM_TABLE_OK) {
        log_info("session %s: lease %llu-%llu: %s", s->hdr.path,
                 (unsigned long long)a, (unsigned long long)b, s->err);
        return table_status(rc);
    }
    s->leased = true;
    s->a = a;
    s->b = b;
    s->written = s->committed = 0;
    s->crc = 0;
    s->hashing = false;
    return SESS_LEASED;
}

int
sess_lease(struct sess *s, uint64_t a, uint64_t b, uint64_t *skip_r)
{
    struct shm_table *t = s->w->table;
    struct shm_view v;
    struct ranges rs;
    char err[256];

    *skip_r = 0;
    /* A retry that overlaps what is already durable at its start (a
     * client re-sending the whole file after a cut) writes only the rest. */
    if (shm_table_ranges(t, s->ref, &rs, err, sizeof(err)) == SHM_TABLE_OK
        && ranges_covers(&rs, a, a + 1)) {
        struct range hole;
        if (ranges_hole(&rs, a, b, &hole) < 0)
            return SESS_HELD;
        *skip_r = hole.start - a;
        a = hole.start;
    }
    int rc = take_lease(s, a, b, &v);
    if (rc == SESS_LEASED)
        sess_hash_begin(s);
    return rc == SHM_TABLE_HELD ? SESS_HELD : rc;
}

int
sess_lease_append(struct sess *s, uint64_t a, uint64_t b)
{
    struct shm_view v;
    char err[256];

    int rc = take_lease(s, a, b, &v);
    if (rc == SESS_LEASED && v.prefix != a) {
        /* Checked in the lease's own view: no other writer can move the
         * offset between the check and the lease. */
        shm_table_unlease(s->w->table, s->ref, s->lease, err, sizeof(err));
        s->leased = false;
        return 409;
    }
    if (rc == SESS_LEASED)
        sess_hash_begin(s);
    return rc == SHM_TABLE_HELD ? 409 : rc;
}

int
sess_write(struct sess *s, const char *buf, size_t len)
{
    if (s->written + len > s->b - s->a) {
        errno = EFBIG;
        return -1;
    }
    struct store_retry r = { .max = s->w->conf->max_retries };
    while (len > 0) {
        ssize_t n = pwrite(manifest_data_fd(s->m), buf, len,
                           (off_t)(s->a + s->written));
        if (n < 0 && store_retry(&r, errno) == STORE_RETRY_NOW)
            continue;
        if (n <= 0) {
            s->w->stats->storage_errors[STATS_STORE_WRITE]++;
            return -1;
        }
        s->crc = crc32c(s->crc, buf, (size_t)n);
        if (s->hashing)
            digest_sha256_update(&s->sha, buf, (size_t)n);
        s->written += (uint64_t)n;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

uint64_t
sess_written(const struct sess *s)
{
    return s->written;
}

int
sess_data_fd(const struct sess *s)
{
    return manifest_data_fd(s->m);
}

uint64_t
sess_lease_start(const struct sess *s)
{
    return s->a;
}

static void
terminate_done(struct sess *s)
{
    char err[256];
    if (s->have_ref)
        shm_table_remove(s->w->table, s->ref, err, sizeof(err));
    s->have_ref = false;
    sess_answer(s, s->job_rc == 0 ? 204 : s->job_errno == ESTALE ? 503 : 500);
}

/* hfs_session_syncs_total: what the job just done synced. */
static void
count_syncs(struct sess *s)
{
    uint32_t now = s->m ? manifest_syncs(s->m) : s->syncs_counted;
    s->w->stats->session_syncs += (now - s->syncs_counted)
                                  + s->job_remove_syncs;
    s->syncs_counted = now;
    s->job_remove_syncs = 0;
}

static void
job_done(struct sync_job *job)
{
    struct sess *s = (struct sess *)job;
    enum job_kind kind = s->kind;
    /* A callback may free s; one that is detached has no callback. */
    bool detached = s->detached;

    s->kind = J_NONE;
    count_syncs(s);
    switch (kind) {
    case J_OWN:       own_done(s); break;
    case J_OPEN:      open_done(s); break;
    case J_COMMIT:    sess_commit_done(s); break;
    case J_PUBLISH:   sess_publish_done(s); break;
    case J_TERMINATE: terminate_done(s); break;
    case J_SIZE:      sess_size_done(s); break;
    case J_NOTIFY:    sess_answer(s, s->notify_rc); break;
    case J_VERIFY:    sess_answer(s, s->job_rc == 0 ? 0 : 409); break;
    case J_CONCAT:    sess_answer(s, s->job_rc); break;
    case J_NONE:      break;
    }
    if (detached && s->kind == J_NONE) {
        if (sess_start_commit(s))
            return;
        sess_free(s);
    }
}

void
sess_release(struct sess *s)
{
    char err[256];
    if (s->leased)
        shm_table_unlease(s->w->table, s->ref, s->lease, err, sizeof(err));
    s->leased = false;
}

void
sess_detach(struct sess *s)
{
    s->detached = true;
    s->cb = NULL;
    if (s->kind != J_NONE)
        return;                      /* job_done frees */
    if (sess_start_commit(s))
        return;
    sess_free(s);
}

void
sess_discard(struct sess *s)
{
    s->discard = true;
    sess_detach(s);
}

void
sess_abandon(struct sess *s)
{
    char err[256];
    if (s->have_ref)
        shm_table_abort(s->w->table, s->ref, err, sizeof(err));
}

void
sess_terminate(struct sess *s, sess_cb *cb, void *arg)
{
    char err[256];
    s->cb = cb;
    s->cb_arg = arg;
    sess_release(s);
    shm_table_abort(s->w->table, s->ref, err, sizeof(err));
    sess_submit(s, J_TERMINATE);
}

void
sess_free(struct sess *s)
{
    if (s == NULL)
        return;
    sess_release(s);
    if (s->m)
        manifest_close(s->m);
    free(s);
}
