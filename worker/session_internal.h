/* session_internal.h: what the parts of worker/session.h share, and
 * nothing else includes: upload.c, tus.c and worker.c use session.h only.
 *
 * The worker's side of resumable sessions, in parts:
 *   session.c          life cycle: new, open (claim; create or read the
 *                      manifest), find, view, leases and writes, detach,
 *                      abandon, terminate, free; the sync-pool job and its
 *                      dispatcher (job_work, job_done), submit
 *   session_publish.c  durability and publication: commits (checkpoint,
 *                      finish), completion, publication, the deferred
 *                      size, verifying held bytes
 *   session_concat.c   tus concatenation: a final filled from its
 *                      partials, the partials removed after publication
 *   session_owner.c    cluster ownership: the owner lock taken (and
 *                      the session rebuilt on a takeover) before a
 *                      request uses a session, checked again before a
 *                      commit or publication
 *   session_janitor.c  table maintenance: the repair callback for entries
 *                      whose lock holder died, expiry and reclaim, the
 *                      janitor job
 * A sess has one job in flight at most (s->kind); every job runs on the
 * pool (job_work) and comes back on the loop (job_done), which calls the
 * part that owns that kind. */
#ifndef WORKER_SESSION_INTERNAL_H
#define WORKER_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/util/digest.h"
#include "worker/session.h"
#include "worker/syncpool.h"

#define LEASE_S          60    /* a silent writer blocks a retry this long */

enum job_kind { J_NONE, J_NOTIFY, J_OWN, J_OPEN, J_COMMIT, J_PUBLISH,
                J_TERMINATE, J_SIZE, J_VERIFY, J_CONCAT };

struct sess {
    struct sync_job        job;
    struct worker         *w;
    uint8_t                key[MANIFEST_KEY_LEN];
    struct manifest_header hdr;
    struct shm_ref         ref;
    bool                   have_ref, leased, is_new;
    bool                   owned;          /* cluster: J_OWN succeeded */
    bool                   elsewhere;      /* cluster: another node owns it */
    struct shm_lease       lease;
    struct manifest       *m;
    uint64_t               a, b;           /* leased range */
    uint64_t               written;        /* bytes written from a */
    uint64_t               committed;      /* bytes durable from a */
    uint32_t               crc;            /* of [committed, written) */
    /* While the client announced a digest and this lease continues the
     * prefix whose SHA-256 the table keeps: that hash, carried on over
     * [a, a + written) (sess_hash_begin); at publication, the table's */
    bool                   hashing;
    struct digest_sha256   sha;

    enum job_kind          kind;
    bool                   create;
    bool                   peek_done;      /* J_OPEN of a DONE tus session */
    uint64_t               job_from, job_to;
    uint32_t               job_crc;
    bool                   job_hashing;
    struct digest_sha256   job_sha;        /* sha at job_to */
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
    /* sess_adopt: the one-shot staging file that becomes `data`, and what
     * its request had written into it (from offset 0) */
    char                   adopt_name[64];
    int                    adopt_fd;       /* the caller's, not ours */
    uint64_t               adopt_written;
    uint32_t               adopt_crc;
    /* hfs_session_syncs_total: the handle's count already added, and
     * manifest_remove's, which have no handle (pool side, per job) */
    uint32_t               syncs_counted, job_remove_syncs;
};

static inline int64_t
sess_now(void)
{
    return (int64_t)time(NULL);
}

/* session.c */
/* Hand s to the pool as a job of this kind (publications wait out a
 * network pause). */
void sess_submit(struct sess *s, enum job_kind kind);
/* Answer the request's callback once; a detached sess has none. */
void sess_answer(struct sess *s, int rc);
/* Give the lease back to the table, if one is held. */
void sess_release(struct sess *s);
/* Pool side: manifest_remove of this session, its sync counted. */
int  sess_remove_dir(struct sess *s, char *err, size_t errlen);

/* session_publish.c */
/* Commit what was written since the last commit, if a lease is held, no
 * job is in flight and the bytes are not discarded: true when a J_COMMIT
 * was submitted. */
bool sess_start_commit(struct sess *s);
/* Pool side of J_COMMIT, J_PUBLISH and J_SIZE: they set job_rc (J_PUBLISH
 * publish_rc), job_errno and err. */
void sess_commit_work(struct sess *s);
/* The digest the client announced, on this request or in the session's
 * HEADER: true and out filled, or false. */
bool sess_expected_sha(const struct sess *s, uint8_t out[32]);
/* A lease was just taken: start hashing its bytes if a digest is
 * wanted and the table's covers exactly [0, a). */
void sess_hash_begin(struct sess *s);
void sess_publish_work(struct sess *s);
void sess_size_work(struct sess *s);
/* Pool side of J_VERIFY: CRC-32C of the held bytes [verify_off,
 * +verify_len) against verify_crc: 0 same, 1 different, -1 unreadable. */
int  sess_verify_range(struct sess *s);
/* Loop side of J_COMMIT, J_PUBLISH and J_SIZE (job_done answers J_VERIFY
 * itself). */
void sess_commit_done(struct sess *s);
void sess_publish_done(struct sess *s);
void sess_size_done(struct sess *s);

/* session_owner.c (docs/cluster.md) */
/* A cluster section is configured: requests must own their session. */
bool sess_own_needed(const struct sess *s);
void sess_owners_init(struct worker *w);
void sess_owners_fini(struct worker *w);
/* Pool side of J_OWN: this worker holds the session's owner lock (taken
 * now if need be; on a takeover the node's table entry is rebuilt from the
 * manifest). 0, or an HTTP status with err: 503 another node owns it (or
 * out of memory), 507, 500. */
int  sess_own_work(struct sess *s);
/* Pool side, right before anything is acknowledged or published: 0 when
 * no cluster is configured or the session is still ours; -1 with errno
 * ESTALE and err otherwise (the hold is dropped). */
int  sess_owner_check(struct sess *s);
/* The session is finished with in this worker (gone: its directory was
 * removed, so the owner file goes too). Pool side. */
void sess_owner_drop(struct worker *w, const uint8_t key[MANIFEST_KEY_LEN],
                     bool gone);
/* The janitor's removal of a doomed or idle session, in a cluster: only
 * by its owner, and only if the manifest agrees. 0 free the entry. */
int  sess_owner_expire(struct worker *w, const uint8_t key[MANIFEST_KEY_LEN]);

/* session_concat.c */
/* Pool side of J_CONCAT: job_rc 0 (the lease is written, s->crc covers
 * it) or an HTTP status with err. */
void sess_concat_work(struct sess *s);
/* A final's partials, once it is published (sha: its digest) or dropped
 * (NULL): completed or removed on the pool, then DONE or doomed in the
 * table on the loop. */
void sess_concat_spend_parts(struct sess *s, const uint8_t *sha);
void sess_concat_end_parts(struct sess *s, bool published);

#endif
