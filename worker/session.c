/* session.c: resumable-upload sessions from a worker's point of view.
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
#include "worker/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/store/publish.h"
#include "lib/store/retry.h"
#include "lib/util/crc32c.h"
#include "lib/util/digest.h"
#include "lib/util/log.h"
#include "worker/conn.h"
#include "worker/syncpool.h"

#define LEASE_S          60    /* a silent writer blocks a retry this long */
#define CREATE_S         30    /* a CREATING claim older than this is dead */

enum job_kind { J_NONE, J_NOTIFY, J_OPEN, J_COMMIT, J_PUBLISH, J_TERMINATE, J_SIZE,
                J_VERIFY };

struct sess {
    struct sync_job        job;
    struct worker         *w;
    uint8_t                key[MANIFEST_KEY_LEN];
    struct manifest_header hdr;
    struct shm_ref         ref;
    bool                   have_ref, leased, is_new;
    struct shm_lease       lease;
    struct manifest       *m;
    uint64_t               a, b;           /* leased range */
    uint64_t               written;        /* bytes written from a */
    uint64_t               committed;      /* bytes durable from a */
    uint32_t               crc;            /* of [committed, written) */

    enum job_kind          kind;
    bool                   create;
    uint64_t               job_from, job_to;
    uint32_t               job_crc;
    int                    job_rc, job_errno, publish_rc;
    int                    notify_rc;      /* J_NOTIFY's answer */
    bool                   expect_sha;
    uint8_t                sha_expected[32];
    char                   err[256];

    sess_cb               *cb;
    void                  *cb_arg;
    bool                   finishing;      /* finish waits for a commit */
    bool                   detached;
    bool                   discard;        /* uncommitted bytes unwanted */
    uint64_t               new_size;       /* J_SIZE */
    uint64_t               verify_off, verify_len;   /* J_VERIFY */
    uint32_t               verify_crc;
};

static void job_done(struct sync_job *job);
static void job_work(struct sync_job *job);

static int64_t
now_s(void)
{
    return (int64_t)time(NULL);
}

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

static void
submit(struct sess *s, enum job_kind kind)
{
    s->kind = kind;
    /* Commits are durability and may run during a network pause; a
     * publication is an answer and waits for the network to settle. */
    if (kind == J_PUBLISH)
        syncpool_submit_held(s->w->pool, &s->job);
    else
        syncpool_submit(s->w->pool, &s->job);
}

static void
finish_cb(struct sess *s, int rc)
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
    if (manifest_create(staging, s->key, &s->hdr, &s->m, s->err,
                        sizeof(s->err)) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    /* Leftovers of a creator that died before activating: we own the
     * claim now, so they are ours to remove. */
    if (manifest_remove(staging, s->key, s->err, sizeof(s->err)) < 0)
        return -1;
    return manifest_create(staging, s->key, &s->hdr, &s->m, s->err,
                           sizeof(s->err));
}

static int
session_dir(struct sess *s)
{
    char hex[MANIFEST_KEY_HEXLEN + 1], path[MANIFEST_KEY_HEXLEN + 8];
    manifest_key_hex(s->key, hex);
    snprintf(path, sizeof(path), "%.2s/%s", hex, hex);
    return openat(s->w->staging_fd, path,
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* The digest the client announced: on this request, or kept in the
 * session's HEADER (meta "sha256=<hex>") from the request that created it. */
static bool
expected_sha(const struct sess *s, uint8_t out[32])
{
    if (s->expect_sha) {
        memcpy(out, s->sha_expected, 32);
        return true;
    }
    if (s->hdr.proto == MANIFEST_PROTO_TUS
        || strncmp(s->hdr.meta, "sha256=", 7) != 0
        || strlen(s->hdr.meta) != 7 + 64)
        return false;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(s->hdr.meta + 7 + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    return true;
}

static void
publish(struct sess *s)
{
    uint8_t sha[32], want[32];
    int dfd = session_dir(s), data = manifest_data_fd(s->m);

    s->publish_rc = STORE_PUBLISH_ERROR;
    if (dfd < 0 || digest_sha256_fd(data, s->hdr.size, sha) < 0) {
        s->job_errno = errno;
        snprintf(s->err, sizeof(s->err), "reading the session: %s",
                 strerror(errno));
        goto out;
    }
    if (expected_sha(s, want) && memcmp(want, sha, 32) != 0) {
        /* Whatever went wrong, these bytes are not the client's file:
         * publish nothing and drop the session so the client restarts. */
        char err[256];
        s->publish_rc = SESS_DIGEST_MISMATCH;
        manifest_append_abort(s->m, "SHA-256 does not match the client's",
                              err, sizeof(err));
        manifest_remove(s->w->staging_fd, s->key, err, sizeof(err));
        goto out;
    }
    struct store_modes modes = { s->w->conf->file_mode,
                                 s->w->conf->dir_mode };
    s->publish_rc = store_publish(dfd, "data", data, s->w->root_fd,
                                  s->hdr.path, &modes, s->err,
                                  sizeof(s->err));
    s->job_errno = errno;
    if (s->publish_rc == STORE_PUBLISHED
        || s->publish_rc == STORE_IDENTICAL_EXISTS) {
        /* The file is durable at its name; record that, then the session
         * directory has nothing left worth keeping. */
        char err[256];
        if (manifest_append_complete(s->m, sha, s->hdr.path, err,
                                     sizeof(err)) < 0)
            log_warn("%s: %s", s->hdr.path, err);
        manifest_remove(s->w->staging_fd, s->key, err, sizeof(err));
    } else if (s->publish_rc == STORE_CONFLICT) {
        char err[256];
        manifest_append_abort(s->m, "a different file exists at the path",
                              err, sizeof(err));
        manifest_remove(s->w->staging_fd, s->key, err, sizeof(err));
    }
out:
    if (dfd >= 0)
        close(dfd);
}

/* CRC-32C of the held bytes [verify_off, +verify_len) against what a
 * repeated request carried: 0 same, 1 different, -1 unreadable. */
static int
verify_range(struct sess *s)
{
    static __thread char buf[128 * 1024];
    uint64_t off = s->verify_off, end = s->verify_off + s->verify_len;
    uint32_t crc = 0;
    if (s->m == NULL)
        return -1;
    while (off < end) {
        size_t want = end - off < sizeof(buf) ? (size_t)(end - off)
                                              : sizeof(buf);
        ssize_t n = pread(manifest_data_fd(s->m), buf, want, (off_t)off);
        if (n <= 0)
            return -1;
        crc = crc32c(crc, buf, (size_t)n);
        off += (uint64_t)n;
    }
    return crc == s->verify_crc ? 0 : 1;
}

static void
job_work(struct sync_job *job)
{
    struct sess *s = (struct sess *)job;
    struct manifest_chunk ch;

    s->job_rc = 0;
    switch (s->kind) {
    case J_OPEN:
        s->job_rc = open_or_create(s);
        s->job_errno = errno;
        break;
    case J_COMMIT:
        ch.offset = s->a + s->job_from;
        ch.length = s->job_to - s->job_from;
        ch.number = 0;
        ch.crc = s->job_crc;
        s->job_rc = manifest_append_chunks(s->m, &ch, 1, s->err,
                                           sizeof(s->err));
        s->job_errno = errno;
        break;
    case J_PUBLISH:
        publish(s);
        break;
    case J_VERIFY:
        s->job_rc = verify_range(s);
        break;
    case J_SIZE:
        /* The data file grows by pwrite while the length is deferred and
         * may hold unwanted bytes past the end (a discarded body): cut it
         * to the size, which publication links as it is. */
        if (ftruncate(manifest_data_fd(s->m), (off_t)s->new_size) < 0) {
            s->job_rc = -1;
            snprintf(s->err, sizeof(s->err), "ftruncate: %s",
                     strerror(errno));
        } else {
            s->job_rc = manifest_append_size(s->m, s->new_size, s->err,
                                             sizeof(s->err));
        }
        s->job_errno = errno;
        break;
    case J_TERMINATE:
        if (s->m)
            manifest_append_abort(s->m, "terminated by the client", s->err,
                                  sizeof(s->err));
        s->job_rc = manifest_remove(s->w->staging_fd, s->key, s->err,
                                    sizeof(s->err));
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
    submit(s, J_NOTIFY);
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
    int64_t now = now_s();
    int rc;

    s->cb = cb;
    s->cb_arg = arg;
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
    if (!s->is_new && (v.state == SHM_DONE || v.state == SHM_DOOMED)) {
        notify(s, 0);          /* nothing on disk to open; caller decides */
        return;
    }
    submit(s, J_OPEN);
}

static void
open_done(struct sess *s)
{
    char err[256];
    if (s->job_rc < 0) {
        log_error("session %s: %s", s->hdr.path, s->err);
        if (s->is_new) {
            shm_table_remove(s->w->table, s->ref, err, sizeof(err));
            s->have_ref = false;
        }
        finish_cb(s, s->job_errno == ENOSPC || s->job_errno == EDQUOT ? 507
                     : s->job_errno == ENOENT ? 404 : 500);
        return;
    }
    if (s->is_new && shm_table_activate(s->w->table, s->ref, now_s(), err,
                                        sizeof(err)) != SHM_TABLE_OK) {
        log_error("session %s: activate: %s", s->hdr.path, err);
        finish_cb(s, 500);
        return;
    }
    struct shm_view v;
    /* A deferred length declared later lives in a SIZE record, which the
     * table mirrors; the HEADER read above still says unknown. */
    if (!s->is_new && s->hdr.size == MANIFEST_SIZE_UNKNOWN
        && sess_view(s, &v) == 0 && v.size != SHM_SIZE_UNKNOWN)
        s->hdr.size = v.size;
    finish_cb(s, 0);
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
    int64_t now = now_s();
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
        if (n <= 0)
            return -1;
        s->crc = crc32c(s->crc, buf, (size_t)n);
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

static bool
start_commit(struct sess *s)
{
    if (s->kind != J_NONE || !s->leased || s->written == s->committed
        || s->discard)
        return false;
    s->job_from = s->committed;
    s->job_to = s->written;
    s->job_crc = s->crc;
    s->crc = 0;        /* the next record's bytes start here */
    submit(s, J_COMMIT);
    return true;
}

void
sess_checkpoint(struct sess *s)
{
    start_commit(s);
}

static void release(struct sess *s);

static void
try_complete(struct sess *s)
{
    struct shm_view v;
    char err[256];
    int64_t now = now_s();

    release(s);                              /* no lease while completing */
    if (sess_view(s, &v) < 0) {
        finish_cb(s, 500);
        return;
    }
    if (v.state == SHM_DONE) {
        finish_cb(s, 200);
        return;
    }
    if (v.size == SHM_SIZE_UNKNOWN || v.prefix != v.size) {
        finish_cb(s, 0);                     /* more chunks to come */
        return;
    }
    int rc = shm_table_complete_begin(s->w->table, s->ref, now,
                                      now + s->w->conf->writetimeout, &v,
                                      err, sizeof(err));
    if (rc == SHM_TABLE_BUSY) {
        /* Being published by another request right now: "stored" would be
         * a promise the file cannot keep yet, so ask the client to come
         * back. Otherwise another write is still going: ours is durable. */
        finish_cb(s, v.state == SHM_COMPLETING ? 503 : 0);
        return;
    }
    if (rc != SHM_TABLE_OK) {
        log_info("session %s: complete: %s", s->hdr.path, err);
        finish_cb(s, v.state == SHM_DONE ? 200 : 0);
        return;
    }
    submit(s, J_PUBLISH);
}

static void
commit_done(struct sess *s)
{
    struct shm_view v;
    char err[256];

    if (s->job_rc < 0) {
        /* A failed fsync is never retried (the kernel may have dropped the
         * pages): the session keeps only what earlier records prove. */
        log_error("session %s: commit: %s", s->hdr.path, s->err);
        release(s);
        finish_cb(s, s->job_errno == ENOSPC ? 507 : 500);
        return;
    }
    int rc = shm_table_commit(s->w->table, s->ref, s->lease,
                              s->a + s->job_from, s->a + s->job_to, now_s(),
                              now_s() + LEASE_S, &v, err, sizeof(err));
    if (rc != SHM_TABLE_OK)
        log_warn("session %s: commit in table: %s", s->hdr.path, err);
    s->committed = s->job_to;
    if (s->finishing && start_commit(s))
        return;                      /* bytes arrived after that commit */
    if (s->finishing)
        try_complete(s);
}

static void
publish_done(struct sess *s)
{
    char err[256];
    enum shm_state to = SHM_DONE;
    int status;

    switch (s->publish_rc) {
    case STORE_PUBLISHED:        status = 201; break;
    case STORE_IDENTICAL_EXISTS: status = 200; break;
    case STORE_CONFLICT:         status = 409; to = SHM_DOOMED; break;
    case SESS_DIGEST_MISMATCH:
        log_warn("session %s: SHA-256 mismatch, session dropped",
                 s->hdr.path);
        status = 460;
        to = SHM_DOOMED;
        break;
    default:
        log_error("session %s: publish: %s", s->hdr.path, s->err);
        status = s->job_errno == ENOSPC || s->job_errno == EDQUOT ? 507 : 500;
        to = SHM_ACTIVE;             /* the bytes are durable: retry later */
    }
    if (status == 201 || status == 200)
        log_info("stored %s (%llu bytes, resumable session)", s->hdr.path,
                 (unsigned long long)s->hdr.size);
    shm_table_complete_end(s->w->table, s->ref, to, now_s(), err,
                           sizeof(err));
    /* A published PUT or chunked session frees its slot at once: a late
     * retry finds the file itself (upload.c). tus keeps it a while, since
     * its clients ask the upload resource, not the file. */
    if (to == SHM_DONE && s->hdr.proto != MANIFEST_PROTO_TUS
        && shm_table_remove(s->w->table, s->ref, err, sizeof(err))
           == SHM_TABLE_OK)
        s->have_ref = false;
    finish_cb(s, status);
}

static void
size_done(struct sess *s)
{
    char err[256];
    if (s->job_rc < 0) {
        log_error("session %s: declaring the size: %s", s->hdr.path, s->err);
        finish_cb(s, s->job_errno == ENOSPC || s->job_errno == EDQUOT ? 507
                     : 500);
        return;
    }
    if (shm_table_set_size(s->w->table, s->ref, s->new_size, err,
                           sizeof(err)) != SHM_TABLE_OK) {
        log_warn("session %s: size in table: %s", s->hdr.path, err);
        finish_cb(s, 409);
        return;
    }
    s->hdr.size = s->new_size;
    finish_cb(s, 0);
}

static void
terminate_done(struct sess *s)
{
    char err[256];
    if (s->have_ref)
        shm_table_remove(s->w->table, s->ref, err, sizeof(err));
    s->have_ref = false;
    finish_cb(s, s->job_rc < 0 ? 500 : 204);
}

static void
job_done(struct sync_job *job)
{
    struct sess *s = (struct sess *)job;
    enum job_kind kind = s->kind;
    /* A callback may free s; one that is detached has no callback. */
    bool detached = s->detached;

    s->kind = J_NONE;
    switch (kind) {
    case J_OPEN:      open_done(s); break;
    case J_COMMIT:    commit_done(s); break;
    case J_PUBLISH:   publish_done(s); break;
    case J_TERMINATE: terminate_done(s); break;
    case J_SIZE:      size_done(s); break;
    case J_NOTIFY:    finish_cb(s, s->notify_rc); break;
    case J_VERIFY:    finish_cb(s, s->job_rc == 0 ? 0 : 409); break;
    case J_NONE:      break;
    }
    if (detached && s->kind == J_NONE) {
        if (start_commit(s))
            return;
        sess_free(s);
    }
}

void
sess_finish(struct sess *s, sess_cb *cb, void *arg)
{
    s->cb = cb;
    s->cb_arg = arg;
    s->finishing = true;
    if (s->kind != J_NONE)
        return;                      /* commit_done continues */
    if (!start_commit(s))
        try_complete(s);
}

static void
release(struct sess *s)
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
    if (start_commit(s))
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
sess_set_size(struct sess *s, uint64_t size, sess_cb *cb, void *arg)
{
    struct shm_view v;
    struct ranges rs;
    char err[256];

    s->cb = cb;
    s->cb_arg = arg;
    if (sess_view(s, &v) < 0
        || shm_table_ranges(s->w->table, s->ref, &rs, err, sizeof(err))
           != SHM_TABLE_OK) {
        finish_cb(s, 500);
        return;
    }
    if (v.size != SHM_SIZE_UNKNOWN || size == MANIFEST_SIZE_UNKNOWN
        || (rs.n > 0 && rs.r[rs.n - 1].end > size) || s->m == NULL) {
        finish_cb(s, v.size == size ? 0 : 409);
        return;
    }
    s->new_size = size;
    submit(s, J_SIZE);
}

void
sess_verify(struct sess *s, uint64_t off, uint64_t len, uint32_t crc,
            sess_cb *cb, void *arg)
{
    s->cb = cb;
    s->cb_arg = arg;
    s->verify_off = off;
    s->verify_len = len;
    s->verify_crc = crc;
    submit(s, J_VERIFY);
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
    release(s);
    shm_table_abort(s->w->table, s->ref, err, sizeof(err));
    submit(s, J_TERMINATE);
}

void
sess_free(struct sess *s)
{
    if (s == NULL)
        return;
    release(s);
    if (s->m)
        manifest_close(s->m);
    free(s);
}

/* ---- table maintenance ---------------------------------------------------- */

/* After a worker died holding an entry's lock mid-change: the manifest says
 * what is really durable. Runs with that lock held; no shm_table_* here. */
static int
repair(const uint8_t key[SHM_KEY_LEN], struct shm_rebuild *out, void *arg)
{
    struct worker *w = arg;
    static __thread struct manifest_state st;
    struct manifest *m;
    char err[256];

    if (manifest_open(w->staging_fd, key, &m, err, sizeof(err)) < 0)
        return -1;
    int rc = manifest_load(m, 0, &st, err, sizeof(err));
    manifest_close(m);
    if (rc < 0)
        return -1;
    out->state = st.complete ? SHM_DONE : st.aborted ? SHM_DOOMED : SHM_ACTIVE;
    out->size = st.size == MANIFEST_SIZE_UNKNOWN ? SHM_SIZE_UNKNOWN : st.size;
    out->held = st.held;
    log_warn("repaired session %s from its manifest after a worker died",
             st.header.path);
    return 0;
}

void
sess_setup(struct worker *w)
{
    shm_table_set_repair(w->table, repair, w);
}

struct janitor {
    struct sync_job job;
    struct worker  *w;
    int             freed;
};

static int
expire_one(const uint8_t key[SHM_KEY_LEN], void *arg)
{
    struct worker *w = arg;
    char err[256];
    return manifest_remove(w->staging_fd, key, err, sizeof(err)) < 0 ? -1 : 0;
}

int
sess_reclaim(struct worker *w, char *err, size_t errlen)
{
    return shm_table_expire_scan(w->table, now_s(), w->conf->sessiontimeout,
                                 expire_one, w, err, errlen);
}

static void
janitor_work(struct sync_job *job)
{
    struct janitor *j = (struct janitor *)job;
    char err[256];
    j->freed = sess_reclaim(j->w, err, sizeof(err));
    if (j->freed < 0)
        log_warn("session expiry: %s", err);
}

static void
janitor_done(struct sync_job *job)
{
    struct janitor *j = (struct janitor *)job;
    if (j->freed > 0)
        log_info("expired %d idle upload session(s)", j->freed);
    j->w->janitor_running = false;
    free(j);
}

void
sess_janitor(struct worker *w)
{
    struct janitor *j;
    if (w->janitor_running || (j = calloc(1, sizeof(*j))) == NULL)
        return;
    j->w = w;
    j->job.work = janitor_work;
    j->job.done = janitor_done;
    w->janitor_running = true;
    /* The scan removes directories and fsyncs: off the loop. */
    syncpool_submit(w->pool, &j->job);
}
