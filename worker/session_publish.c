/* session_publish.c: making a session's bytes durable and publishing the
 * finished file (docs/recovery.md has the order and every crash window).
 *
 * A commit (sess_checkpoint while the body streams, sess_finish at its end)
 * fdatasyncs the data, appends one CHUNK record and fdatasyncs the
 * manifest on the pool; only then does the table count the range as held
 * (sess_commit_done). When the held prefix reaches the size, try_complete
 * takes the entry to COMPLETING and publication checks the announced
 * SHA-256, links the data file into place, appends COMPLETE and removes the
 * session directory. Also here: the deferred size (a SIZE record) and
 * verifying a repeated request's bytes against what is held. */
#define _GNU_SOURCE
#include "worker/session_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/store/publish.h"
#include "lib/util/syncsite.h"
#include "lib/util/crc32c.h"
#include "lib/util/digest.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn.h"

/* ---- pool side ----------------------------------------------------------- */

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
bool
sess_expected_sha(const struct sess *s, uint8_t out[32])
{
    if (s->expect_sha) {
        memcpy(out, s->sha_expected, 32);
        return true;
    }
    if (s->hdr.proto == MANIFEST_PROTO_TUS
        || s->hdr.proto == MANIFEST_PROTO_IETF
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

void
sess_hash_begin(struct sess *s)
{
    uint8_t want[32];
    char err[256];

    s->hashing = false;
    if (!sess_expected_sha(s, want))
        return;        /* nobody will ask: the COMPLETE record holds zeros */
    if (s->a == 0) {
        digest_sha256_init(&s->sha);
        s->hashing = true;
    } else {
        s->hashing = shm_table_digest(s->w->table, s->ref, &s->sha, err,
                                      sizeof(err)) == SHM_TABLE_OK
                     && s->sha.len == s->a;
    }
}

/* The whole file's SHA-256: the rest of it after what the table's digest
 * (s->sha, taken on the loop by try_complete) covers, read back. Only
 * when the client announced a digest; otherwise nobody reads it, and
 * re-reading a large file cost as much as receiving it. */
static int
file_sha(struct sess *s, int data, bool wanted, uint8_t sha[32])
{
    memset(sha, 0, 32);
    if (!wanted)
        return 0;
    if (s->sha.len == 0 || s->sha.len > s->hdr.size)
        digest_sha256_init(&s->sha);
    s->w->stats->digest_reread_bytes += s->hdr.size - s->sha.len;
    if (digest_sha256_fd_continue(&s->sha, data, s->hdr.size) < 0)
        return -1;
    digest_sha256_final(&s->sha, sha);
    return 0;
}

void
sess_publish_work(struct sess *s)
{
    uint8_t sha[32], want[32];
    int dfd = session_dir(s), data = manifest_data_fd(s->m);
    bool wanted = sess_expected_sha(s, want);

    s->publish_rc = STORE_PUBLISH_ERROR;
    if (dfd < 0 || file_sha(s, data, wanted, sha) < 0) {
        s->job_errno = errno;
        snprintf(s->err, sizeof(s->err), "reading the session: %s",
                 strerror(errno));
        goto out;
    }
    if (wanted && memcmp(want, sha, 32) != 0) {
        /* Whatever went wrong, these bytes are not the client's file:
         * publish nothing and drop the session so the client restarts. */
        char err[256];
        s->publish_rc = SESS_DIGEST_MISMATCH;
        manifest_append_abort(s->m, "SHA-256 does not match the client's",
                              err, sizeof(err));
        if (sess_remove_dir(s, err, sizeof(err)) == 0)
            sess_owner_drop(s->w, s->key, true);
        if (s->hdr.concat == MANIFEST_CONCAT_FINAL)
            sess_concat_spend_parts(s, NULL);  /* they made these bytes */
        goto out;
    }
    /* A cluster node that lost the session publishes nothing: checked
     * after the (long) hash, right before the link. */
    if (sess_owner_check(s) < 0) {
        s->job_errno = ESTALE;
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
        /* A tus final stays while the table keeps it DONE: a repeated
         * final POST (its 201 lost in a crash) must find it, even after
         * a restart (master/recover.c); the janitor removes it. */
        if (s->hdr.concat == MANIFEST_CONCAT_FINAL) {
            /* store_publish took the data file's name; an empty one
             * lets the manifest open again (recovery, repair). */
            int fd = openat(dfd, "data", O_WRONLY | O_CREAT | O_EXCL
                            | O_CLOEXEC, 0600);
            if (fd >= 0)
                close(fd);
            SYNC_AT("concat_final_dir", fsync(dfd));
            sess_concat_spend_parts(s, sha);
        } else if (sess_remove_dir(s, err, sizeof(err)) == 0)
            sess_owner_drop(s->w, s->key, true);
    } else if (s->publish_rc == STORE_CONFLICT) {
        char err[256];
        manifest_append_abort(s->m, "a different file exists at the path",
                              err, sizeof(err));
        if (sess_remove_dir(s, err, sizeof(err)) == 0)
            sess_owner_drop(s->w, s->key, true);
        if (s->hdr.concat == MANIFEST_CONCAT_FINAL)
            sess_concat_spend_parts(s, NULL);  /* nowhere to go any more */
    }
out:
    if (dfd >= 0)
        close(dfd);
}

/* CRC-32C of the held bytes [verify_off, +verify_len) against what a
 * repeated request carried: 0 same, 1 different, -1 unreadable. */
int
sess_verify_range(struct sess *s)
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

void
sess_commit_work(struct sess *s)
{
    struct manifest_chunk ch;

    ch.offset = s->a + s->job_from;
    ch.length = s->job_to - s->job_from;
    ch.number = 0;
    ch.crc = s->job_crc;
    /* Bytes a cluster node no longer owns are never acknowledged. */
    if (sess_owner_check(s) < 0) {
        s->job_rc = -1;
        s->job_errno = ESTALE;
        return;
    }
    s->job_rc = manifest_append_chunks(s->m, &ch, 1, s->err,
                                       sizeof(s->err));
    s->job_errno = errno;
}

void
sess_size_work(struct sess *s)
{
    /* The data file grows by pwrite while the length is deferred and
     * may hold unwanted bytes past the end (a discarded body): cut it
     * to the size, which publication links as it is. */
    if (sess_owner_check(s) < 0) {
        s->job_rc = -1;
        s->job_errno = ESTALE;
        return;
    }
    if (ftruncate(manifest_data_fd(s->m), (off_t)s->new_size) < 0) {
        s->job_rc = -1;
        snprintf(s->err, sizeof(s->err), "ftruncate: %s",
                 strerror(errno));
    } else {
        s->job_rc = manifest_append_size(s->m, s->new_size, s->err,
                                         sizeof(s->err));
    }
    s->job_errno = errno;
}

/* ---- loop side ----------------------------------------------------------- */

bool
sess_start_commit(struct sess *s)
{
    if (s->kind != J_NONE || !s->leased || s->written == s->committed
        || s->discard)
        return false;
    s->job_from = s->committed;
    s->job_to = s->written;
    s->job_crc = s->crc;
    s->crc = 0;        /* the next record's bytes start here */
    s->job_hashing = s->hashing;
    if (s->hashing)
        s->job_sha = s->sha;
    sess_submit(s, J_COMMIT);
    return true;
}

void
sess_checkpoint(struct sess *s)
{
    sess_start_commit(s);
}

static void
try_complete(struct sess *s)
{
    struct shm_view v;
    char err[256];
    int64_t now = sess_now();

    sess_release(s);                              /* no lease while completing */
    if (sess_view(s, &v) < 0) {
        sess_answer(s, 500);
        return;
    }
    if (v.state == SHM_DONE) {
        sess_answer(s, 200);
        return;
    }
    if (v.size == SHM_SIZE_UNKNOWN || v.prefix != v.size
        || s->hdr.concat == MANIFEST_CONCAT_PARTIAL) {
        /* More chunks to come; or a tus partial upload, which is never
         * published itself: a final upload copies it (session_concat.c). */
        sess_answer(s, 0);
        return;
    }
    int rc = shm_table_complete_begin(s->w->table, s->ref, now,
                                      now + s->w->conf->writetimeout, &v,
                                      err, sizeof(err));
    if (rc == SHM_TABLE_BUSY) {
        /* Being published by another request right now: "stored" would be
         * a promise the file cannot keep yet, so ask the client to come
         * back. Otherwise another write is still going: ours is durable. */
        sess_answer(s, v.state == SHM_COMPLETING ? 503 : 0);
        return;
    }
    if (rc != SHM_TABLE_OK) {
        log_info("session %s: complete: %s", s->hdr.path, err);
        sess_answer(s, v.state == SHM_DONE ? 200 : 0);
        return;
    }
    if (shm_table_digest(s->w->table, s->ref, &s->sha, err, sizeof(err))
        != SHM_TABLE_OK)
        memset(&s->sha, 0, sizeof(s->sha));
    sess_submit(s, J_PUBLISH);
}

void
sess_commit_done(struct sess *s)
{
    struct shm_view v;
    char err[256];

    if (s->job_rc < 0) {
        /* A failed fsync is never retried (the kernel may have dropped the
         * pages): the session keeps only what earlier records prove. */
        log_error("session %s: commit: %s", s->hdr.path, s->err);
        s->w->stats->storage_errors[STATS_STORE_COMMIT]++;
        sess_release(s);
        sess_answer(s, s->job_errno == ENOSPC ? 507
                     : s->job_errno == ESTALE ? 503 : 500);
        return;
    }
    int rc = shm_table_commit(s->w->table, s->ref, s->lease,
                              s->a + s->job_from, s->a + s->job_to, sess_now(),
                              sess_now() + LEASE_S, &v, err, sizeof(err));
    if (rc != SHM_TABLE_OK)
        log_warn("session %s: commit in table: %s", s->hdr.path, err);
    else if (s->job_hashing)
        shm_table_offer_digest(s->w->table, s->ref, &s->job_sha, err,
                               sizeof(err));
    s->committed = s->job_to;
    if (s->finishing && sess_start_commit(s))
        return;                      /* bytes arrived after that commit */
    if (s->finishing)
        try_complete(s);
}

void
sess_publish_done(struct sess *s)
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
        if (s->job_errno != ESTALE) {
            log_error("session %s: publish: %s", s->hdr.path, s->err);
            s->w->stats->storage_errors[STATS_STORE_PUBLISH]++;
        }
        status = s->job_errno == ENOSPC || s->job_errno == EDQUOT ? 507
                 : s->job_errno == ESTALE ? 503 : 500;
        to = SHM_ACTIVE;             /* the bytes are durable: retry later */
    }
    /* A final's partials end with it, unless it can still be published
     * (its bytes are durable: a later request retries). */
    if (to != SHM_ACTIVE && s->hdr.concat == MANIFEST_CONCAT_FINAL)
        sess_concat_end_parts(s, to == SHM_DONE);
    if (status == 201 || status == 200)
        log_info("stored %s (%llu bytes, resumable session)", s->hdr.path,
                 (unsigned long long)s->hdr.size);
    shm_table_complete_end(s->w->table, s->ref, to, sess_now(), err,
                           sizeof(err));
    /* A published PUT or chunked session frees its slot at once: a late
     * retry finds the file itself (upload.c). tus and the IETF draft keep
     * it a while, since their clients ask the upload resource, not the
     * file. */
    if (to == SHM_DONE && s->hdr.proto != MANIFEST_PROTO_TUS
        && s->hdr.proto != MANIFEST_PROTO_IETF
        && shm_table_remove(s->w->table, s->ref, err, sizeof(err))
           == SHM_TABLE_OK)
        s->have_ref = false;
    sess_answer(s, status);
}

void
sess_size_done(struct sess *s)
{
    char err[256];
    if (s->job_rc < 0) {
        log_error("session %s: declaring the size: %s", s->hdr.path, s->err);
        s->w->stats->storage_errors[STATS_STORE_COMMIT]++;
        sess_answer(s, s->job_errno == ENOSPC || s->job_errno == EDQUOT ? 507
                     : s->job_errno == ESTALE ? 503 : 500);
        return;
    }
    if (shm_table_set_size(s->w->table, s->ref, s->new_size, err,
                           sizeof(err)) != SHM_TABLE_OK) {
        log_warn("session %s: size in table: %s", s->hdr.path, err);
        sess_answer(s, 409);
        return;
    }
    s->hdr.size = s->new_size;
    sess_answer(s, 0);
}

void
sess_finish(struct sess *s, sess_cb *cb, void *arg)
{
    s->cb = cb;
    s->cb_arg = arg;
    s->finishing = true;
    if (s->kind != J_NONE)
        return;                      /* commit_done continues */
    if (!sess_start_commit(s))
        try_complete(s);
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
        sess_answer(s, 500);
        return;
    }
    if (v.size != SHM_SIZE_UNKNOWN || size == MANIFEST_SIZE_UNKNOWN
        || (rs.n > 0 && rs.r[rs.n - 1].end > size) || s->m == NULL) {
        sess_answer(s, v.size == size ? 0 : 409);
        return;
    }
    s->new_size = size;
    sess_submit(s, J_SIZE);
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
    sess_submit(s, J_VERIFY);
}
