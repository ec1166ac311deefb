/* table_internal.h: the session table's segment layout and the small
 * helpers on it, shared by the files that implement shm/table.h and by
 * nothing else: the rest of the tree includes shm/table.h only.
 *
 * The table in parts, each file calling only those listed below it:
 *   table_segment.c  the segment as a whole: create, attach, detach,
 *                    unlink, layout checks, settings, counters
 *   table_sweep.c    maintenance: expiry scan, forget_pid, check
 *   table_lease.c    writing a session: leases, commits, held ranges,
 *                    deferred size, complete_begin/end
 *   table_entry.c    the index, the lock wrappers (with the glue that
 *                    repairs after a dead holder), and the life of an
 *                    entry: claim, find, activate, view, abort, remove,
 *                    restore
 *   table_repair.c   rebuilding what a dead holder's lock guards, called
 *                    with that lock held; shm_table_reset
 * Each but segment and sweep (which nothing else calls) has a private
 * header, table_<part>.h, that is its whole interface to the others.
 *
 * Three kinds of robust lock, always taken in this order and never more than
 * one of each: a stripe lock (guards the bucket chains of 1/64 of the
 * buckets), then either the free-list lock or one entry lock. An entry's
 * `tag` (free, or in use in stripe s) changes only with both its stripe lock
 * and the free-list lock held, which is what lets either lock's repair
 * rebuild its structure from the tags alone after a holder died. Entry
 * content is guarded by the entry lock and repaired through the caller's
 * callback from the manifest. docs/shm.md has the whole argument.
 *
 * Nothing in the segment is a pointer: offsets and indexes only, so every
 * process may map it anywhere. */
#ifndef SHM_TABLE_INTERNAL_H
#define SHM_TABLE_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/util/digest.h"
#include "shm/lock.h"
#include "shm/table.h"

#define NSTRIPES       64
#define TAG_USED       0x80000000u

/* What an entry-lock holder is in the middle of changing. A holder that
 * dies with anything but INTENT_NONE set leaves content to rebuild. */
enum intent {
    INTENT_NONE = 0, INTENT_INIT, INTENT_LEASE, INTENT_COMMIT, INTENT_STATE
};

struct lease_slot {
    uint64_t start, end;
    uint64_t done;                      /* committed up to here */
    int64_t  deadline;
    int32_t  pid;
    uint32_t id;                        /* 0: slot free */
};

struct entry {
    /* index part: see the top of the file */
    _Atomic uint32_t  tag;
    uint32_t          chain_next;       /* idx + 1; stripe lock */
    uint32_t          free_next;        /* idx + 1; free-list lock */
    uint32_t          pad_;
    uint8_t           key[SHM_KEY_LEN]; /* written only while free */
    /* content part: entry lock */
    struct shm_mutex  lock;
    _Atomic uint32_t  gen;              /* changes under stripe + entry */
    _Atomic uint32_t  intent;
    uint32_t          state;
    uint32_t          proto;
    uint64_t          seq;              /* bumped by every change */
    uint64_t          size, chunk_size;
    int64_t           created, last_active, expires;
    int64_t           owner_deadline;   /* CREATING / COMPLETING */
    int32_t           owner_pid;
    uint32_t          lease_ids;
    struct lease_slot leases[SHM_LEASES];
    struct ranges     held;
    /* The SHA-256 of the first digest.len bytes, all held (len 0: none);
     * shm_table_offer_digest */
    struct digest_sha256 digest;
} __attribute__((aligned(64)));

struct hdr {
    uint64_t          magic;            /* stored last by create */
    uint32_t          layout, mutex_size, entry_size, capacity;
    uint32_t          nbuckets, nstripes;
    int32_t           creator_pid;
    uint32_t          pad_;
    int64_t           creator_start;    /* CLOCK_REALTIME ns at create */
    uint64_t          total, buckets_off, entries_off;
    _Atomic uint64_t  created, completed, expired, aborted, repairs, timeouts;
    _Atomic uint32_t  nfree;            /* written under the free-list lock */
    uint32_t          free_head;        /* idx + 1 */
    struct shm_mutex  free_lock;
    struct shm_mutex  stripe[NSTRIPES];
};

struct shm_table {
    struct hdr          *h;
    uint32_t            *buckets;       /* idx + 1 of the chain head */
    struct entry        *e;
    size_t               len;
    int                  lock_fd;       /* creator: holds the name's flock */
    int                  timeout_ms;
    shm_table_repair_fn  repair;
    void                *repair_arg;
};


static inline int
tfail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}


static inline void
count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}


/* Intent is stored before a change and cleared after it; the compiler
 * fence keeps the order. A holder's stores are all visible to whoever
 * takes the lock after its death (the kernel's exit path orders them). */
static inline void
begin(struct entry *e, enum intent i)
{
    atomic_store_explicit(&e->intent, i, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    e->seq++;
}


static inline void
end(struct entry *e)
{
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&e->intent, INTENT_NONE, memory_order_relaxed);
}


static inline uint32_t
bucket_of(const struct shm_table *t, const uint8_t *key)
{
    uint32_t x;

    memcpy(&x, key, sizeof(x));         /* keys are SHA-256: uniform */
    return x & (t->h->nbuckets - 1);
}


static inline uint32_t
stripe_of(uint32_t bucket)
{
    return bucket & (NSTRIPES - 1);
}


static inline uint32_t
gen_of(const struct entry *e)
{
    return atomic_load_explicit(&((struct entry *)e)->gen,
                                memory_order_relaxed);
}


static inline void
gen_bump(struct entry *e)
{
    uint32_t g = gen_of(e) + 1;

    atomic_store_explicit(&e->gen, g == 0 ? 1 : g, memory_order_relaxed);
}


static inline void
clear_leases(struct entry *e)
{
    memset(e->leases, 0, sizeof(e->leases));
}


static inline uint32_t
nleases(const struct entry *e)
{
    uint32_t n = 0;

    for (int i = 0; i < SHM_LEASES; i++)
        n += e->leases[i].id != 0;
    return n;
}

#endif
