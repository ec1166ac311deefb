/* table: the shared-memory cache of resumable upload sessions.
 *
 * A fixed array of session entries in a POSIX shm segment, indexed by the
 * 32-byte session key (manifest_key). Created by the master before fork,
 * rebuilt from the manifests at every start; the manifests stay the truth.
 * Each entry has its own robust lock, so chunks of different sessions go on
 * in parallel on different workers. Layout, locks and repair: docs/shm.md.
 *
 * Writing a chunk [a, b) of a session:
 *   shm_table_find / shm_table_claim   -> ref
 *   shm_table_lease(ref, a, b)         -> OK: only you write [a, b) now
 *     (HELD: a duplicate, compare its CRC with the manifest's; BUSY: someone
 *      else writes it now; CONFLICT: overlaps held bytes partly, or past the
 *      size, or the session is not ACTIVE; see view.state)
 *   pwrite, manifest_append_chunks     (off the event loop)
 *   shm_table_commit(lease, a, b)      -> view.prefix / view.held updated
 *   shm_table_unlease(lease)
 *   if view.held == view.size: shm_table_complete_begin, publish,
 *     manifest_append_complete, shm_table_complete_end(SHM_DONE)
 * tus PATCH: lease [offset, offset + len) and refuse (409) unless
 * view.prefix == offset in the lease's view.
 *
 * Calls take no I/O and never sleep longer than the lock timeout, except
 * that the repair callback may run inside one after a holder died. All
 * times are unix seconds chosen by the caller.
 *
 * The one header callers include. The code is split by concern into
 * shm/table_*.c (segment, entry, lease, sweep, repair); the map is at the
 * top of shm/table_internal.h. */
#ifndef SHM_TABLE_H
#define SHM_TABLE_H

#include <stdint.h>
#include <sys/types.h>

#include "lib/util/digest.h"
#include "lib/util/ranges.h"

#define SHM_KEY_LEN      32             /* == MANIFEST_KEY_LEN */
#define SHM_LEASES       16             /* parallel writes per session */
#define SHM_SIZE_UNKNOWN UINT64_MAX     /* tus creation-defer-length */
#define SHM_DONE_KEEP_S  300            /* a published session lingers */

enum shm_state {
    SHM_FREE = 0,
    SHM_CREATING,       /* claimed; its manifest is being made durable */
    SHM_ACTIVE,         /* accepting chunks */
    SHM_COMPLETING,     /* one worker is publishing the file */
    SHM_DONE,           /* published; kept for late retries until expiry */
    SHM_DOOMED          /* expired, aborted or unrepairable: to be removed */
};

enum shm_table_rc {
    SHM_TABLE_OK = 0,
    SHM_TABLE_NEW,      /* claim: created; you make its manifest, then
                           shm_table_activate (or shm_table_remove) */
    SHM_TABLE_NOTFOUND,
    SHM_TABLE_HELD,     /* lease: the whole range is already held */
    SHM_TABLE_BUSY,     /* in use by view.pid (0: being cleaned); retry */
    SHM_TABLE_CONFLICT, /* contradicts the session; view.state says why */
    SHM_TABLE_FULL,     /* no free entry, lease slot or range: 503 */
    SHM_TABLE_GONE,     /* the ref is stale: the session was removed */
    SHM_TABLE_TIMEOUT,  /* lock held too long by view.pid: report it */
    SHM_TABLE_BROKEN,   /* a lock is unrecoverable: master must reset */
    SHM_TABLE_ERROR
};

/* What a session is bound to; claim refuses a different size or proto. */
struct shm_session {
    uint64_t size;                      /* total, or SHM_SIZE_UNKNOWN */
    uint64_t chunk_size;                /* nominal, 0 if none */
    uint32_t proto;                     /* caller's code (manifest_proto) */
    int64_t  expires;                   /* absolute end of the session, or 0 */
};

/* A snapshot taken under the entry lock. */
struct shm_view {
    enum shm_state state;
    uint32_t       proto;
    uint64_t       size, chunk_size;
    uint64_t       prefix;              /* contiguous from 0: Upload-Offset */
    uint64_t       held;                /* total bytes held */
    uint32_t       nranges, nleases;
    int64_t        created, last_active, expires;
    pid_t          pid;                 /* BUSY / TIMEOUT: who is in the way */
};

struct shm_ref   { uint32_t idx, gen; };
struct shm_lease { uint32_t slot, id; };

/* What the disk says about a session: from the repair callback, or handed
 * to shm_table_restore by recovery. */
struct shm_rebuild {
    enum shm_state state;               /* ACTIVE, DONE or DOOMED */
    uint64_t       size;                /* SHM_SIZE_UNKNOWN while deferred */
    struct ranges  held;
};

/* Called with the entry's lock held after its previous holder died in the
 * middle of a change: re-read the session's manifest (manifest_open +
 * manifest_load, no MANIFEST_TRUNCATE) into *out. Return -1 if it is gone
 * or unreadable (the entry is then doomed). Must not call shm_table_*. */
typedef int (*shm_table_repair_fn)(const uint8_t key[SHM_KEY_LEN],
                                   struct shm_rebuild *out, void *arg);
/* Called by the expiry scan with no lock held, for each doomed session:
 * remove its staging directory; return 0 to have the entry freed. */
typedef int (*shm_table_expire_fn)(const uint8_t key[SHM_KEY_LEN], void *arg);

struct shm_table_stats {
    uint32_t capacity, active;
    uint64_t created, completed, expired, aborted, repairs, timeouts;
};

struct shm_table;

/* Master, before fork: a fresh segment. The returned table keeps the
 * segment's fd open with an exclusive flock on it; forked children share
 * that lock, so it is held while any process of this daemon lives. A
 * segment already under that name is stale if its flock can be taken (its
 * daemon is gone): it is unlinked and replaced. If not, another daemon
 * uses the name: SHM_TABLE_BUSY, err naming its master, nothing touched. */
int  shm_table_create(const char *name, uint32_t capacity,
                      struct shm_table **t_r, char *err, size_t errlen);
/* Any process: maps an existing segment, refusing a different layout,
 * mutex size or, if creator != 0, another creator's segment. */
int  shm_table_attach(const char *name, pid_t creator, struct shm_table **t_r,
                      char *err, size_t errlen);
void shm_table_detach(struct shm_table *t);     /* never holding a lock */
/* The master pid recorded in the segment named `name`, or 0. */
pid_t shm_table_owner(const char *name);
int  shm_table_unlink(const char *name);
void shm_table_set_repair(struct shm_table *t, shm_table_repair_fn fn,
                          void *arg);
void shm_table_set_timeout(struct shm_table *t, int timeout_ms);

/* Find or create. `deadline`: when a claim left in CREATING is abandoned
 * and may be taken over (NEW again; remove the leftover directory). */
int  shm_table_claim(struct shm_table *t, const uint8_t key[SHM_KEY_LEN],
                     const struct shm_session *s, int64_t now,
                     int64_t deadline, struct shm_ref *ref, struct shm_view *v,
                     char *err, size_t errlen);
int  shm_table_activate(struct shm_table *t, struct shm_ref ref, int64_t now,
                        char *err, size_t errlen);
int  shm_table_find(struct shm_table *t, const uint8_t key[SHM_KEY_LEN],
                    struct shm_ref *ref, struct shm_view *v,
                    char *err, size_t errlen);
int  shm_table_view(struct shm_table *t, struct shm_ref ref,
                    struct shm_view *v, char *err, size_t errlen);
int  shm_table_ranges(struct shm_table *t, struct shm_ref ref,
                      struct ranges *out, char *err, size_t errlen);
/* tus deferred length, after its SIZE record is durable. */
int  shm_table_set_size(struct shm_table *t, struct shm_ref ref,
                        uint64_t size, char *err, size_t errlen);

/* A lease lets one writer fill [start, end) until `deadline` (or until
 * shm_table_forget_pid names its dead process). */
int  shm_table_lease(struct shm_table *t, struct shm_ref ref, uint64_t start,
                     uint64_t end, int64_t now, int64_t deadline,
                     struct shm_lease *l, struct shm_view *v,
                     char *err, size_t errlen);
/* [start, end) of the lease is durable. Commits of one lease continue each
 * other from its start (a plain PUT commits each checkpoint); that is what
 * keeps the range list from overflowing. deadline 0 keeps the lease's. */
int  shm_table_commit(struct shm_table *t, struct shm_ref ref,
                      struct shm_lease l, uint64_t start, uint64_t end,
                      int64_t now, int64_t deadline, struct shm_view *v,
                      char *err, size_t errlen);
int  shm_table_unlease(struct shm_table *t, struct shm_ref ref,
                       struct shm_lease l, char *err, size_t errlen);
/* The SHA-256 of the session's first d->len bytes, hashed by a writer as
 * they arrived (struct digest_sha256 is plain bytes): kept when all of
 * them are held and it reaches further than the one kept, so publication
 * hashes only the rest. Not kept: OK all the same. */
int  shm_table_offer_digest(struct shm_table *t, struct shm_ref ref,
                            const struct digest_sha256 *d,
                            char *err, size_t errlen);
/* The one kept, or one of length 0. */
int  shm_table_digest(struct shm_table *t, struct shm_ref ref,
                      struct digest_sha256 *d, char *err, size_t errlen);

/* ACTIVE, fully held, no lease -> COMPLETING (one winner). */
int  shm_table_complete_begin(struct shm_table *t, struct shm_ref ref,
                              int64_t now, int64_t deadline,
                              struct shm_view *v, char *err, size_t errlen);
/* COMPLETING -> to: SHM_DONE, SHM_ACTIVE (retry later) or SHM_DOOMED.
 * A DONE session expires SHM_DONE_KEEP_S after it was published. */
int  shm_table_complete_end(struct shm_table *t, struct shm_ref ref,
                            enum shm_state to, int64_t now,
                            char *err, size_t errlen);
/* Any state -> DOOMED (tus DELETE, abort): no new leases; the expiry scan
 * or the caller then removes the directory and the entry. */
int  shm_table_abort(struct shm_table *t, struct shm_ref ref,
                     char *err, size_t errlen);
int  shm_table_remove(struct shm_table *t, struct shm_ref ref,
                      char *err, size_t errlen);

/* Janitor: dooms sessions idle for `timeout` seconds or past their
 * `expires` (once no write is in progress), drops leases and
 * CREATING/COMPLETING claims past their deadline, then calls fn for every
 * doomed entry and frees those fn accepts. Returns entries freed, or -1. */
int  shm_table_expire_scan(struct shm_table *t, int64_t now, int64_t timeout,
                           shm_table_expire_fn fn, void *arg,
                           char *err, size_t errlen);
/* A process has exited (a worker, for a pid the master reaped): drop its
 * leases, doom its CREATING claims, reopen its COMPLETING ones. Each entry
 * lock is waited for at most timeout_ms (0: the table's timeout); an entry
 * whose lock stays held (a stopped or hung holder) is skipped, and what
 * the dead process held there ends at its deadlines. Returns entries
 * touched. */
int  shm_table_forget_pid(struct shm_table *t, pid_t pid, int timeout_ms,
                          char *err, size_t errlen);
/* Recovery (master, before fork): insert a session read from disk. */
int  shm_table_restore(struct shm_table *t, const uint8_t key[SHM_KEY_LEN],
                       const struct shm_session *s,
                       const struct shm_rebuild *rb, int64_t last_active,
                       struct shm_ref *ref, char *err, size_t errlen);
/* Master only, no other process attached (workers stopped): re-init every
 * mutex and repair every entry, the way back from SHM_TABLE_BROKEN. */
int  shm_table_reset(struct shm_table *t, char *err, size_t errlen);
/* Verifies the index and every entry; 0, or -1 naming the first fault. */
int  shm_table_check(struct shm_table *t, char *err, size_t errlen);
void shm_table_stats(struct shm_table *t, struct shm_table_stats *st);

#endif
