/* table_sweep.c: the table's maintenance, run by the janitor and the
 * master rather than on a request's path: the expiry scan (idle, expired
 * and abandoned sessions), forgetting a process that exited, and the full
 * consistency check the tests run after every kill. Each walks the entries
 * one lock at a time through the wrappers of table_entry.c. */
#define _GNU_SOURCE
#include "shm/table_internal.h"

#include <stdlib.h>
#include <string.h>

#include "shm/lock.h"
#include "shm/table_entry.h"
#include "shm/table_lease.h"
#include "shm/table_repair.h"


/* Applies the janitor's rules to one entry (lock held). */
static void
sweep(struct shm_table *t, struct entry *e, int64_t now, int64_t timeout)
{
    begin(e, INTENT_STATE);
    table_drop_expired_leases(e, now);
    if ((e->state == SHM_ACTIVE || e->state == SHM_DONE) && nleases(e) == 0
        && (e->last_active <= now - timeout
            || (e->expires != 0 && e->expires <= now)))
    {
        if (e->state == SHM_ACTIVE)
            count(&t->h->expired);
        e->state = SHM_DOOMED;
    } else if (e->state == SHM_CREATING && e->owner_deadline < now) {
        e->state = SHM_DOOMED;
        e->owner_pid = 0;
    } else if (e->state == SHM_COMPLETING && e->owner_deadline < now) {
        e->state = SHM_ACTIVE;
        e->owner_pid = 0;
    }
    end(e);
}


/* One entry of the expiry scan: 1 if freed, 0 if not, -1 on a lock fault
 * that should stop the scan. */
static int
expire_one(struct shm_table *t, uint32_t idx, int64_t now, int64_t timeout,
           shm_table_expire_fn fn, void *arg, char *err, size_t errlen)
{
    struct entry *e = &t->e[idx];
    uint8_t       key[SHM_KEY_LEN];
    uint32_t      state, gen;
    int           rc;

    rc = table_lock_entry(t, e, NULL, err, errlen);
    if (rc == SHM_TABLE_TIMEOUT)
        return 0;                       /* a stuck holder; next time */
    if (rc != SHM_TABLE_OK)
        return -1;
    if (e->state != SHM_FREE)
        sweep(t, e, now, timeout);
    state = e->state;
    gen = gen_of(e);
    memcpy(key, e->key, SHM_KEY_LEN);
    shm_unlock(&e->lock);
    if (state == SHM_FREE)
        return table_remove_idx(t, idx, 0, 1, NULL, 0) == SHM_TABLE_OK;
    if (state != SHM_DOOMED || fn(key, arg) != 0)
        return 0;
    return table_remove_idx(t, idx, gen, 0, NULL, 0) == SHM_TABLE_OK;
}


int
shm_table_expire_scan(struct shm_table *t, int64_t now, int64_t timeout,
                      shm_table_expire_fn fn, void *arg, char *err,
                      size_t errlen)
{
    int freed = 0;

    for (uint32_t i = 0; i < t->h->capacity; i++) {
        int rc;

        if (!(atomic_load_explicit(&t->e[i].tag, memory_order_acquire)
              & TAG_USED))
            continue;
        if ((rc = expire_one(t, i, now, timeout, fn, arg, err, errlen)) < 0)
            return -1;
        freed += rc;
    }
    return freed;
}


int
shm_table_forget_pid(struct shm_table *t, pid_t pid, int timeout_ms,
                     char *err, size_t errlen)
{
    int n = 0;

    for (uint32_t i = 0; i < t->h->capacity; i++) {
        struct entry *e = &t->e[i];
        int           rc;

        if (!(atomic_load_explicit(&e->tag, memory_order_acquire) & TAG_USED))
            continue;
        rc = table_lock_entry_for(t, e, timeout_ms > 0 ? timeout_ms
                                                       : t->timeout_ms,
                                  NULL, err, errlen);
        if (rc == SHM_TABLE_TIMEOUT)
            continue;
        if (rc != SHM_TABLE_OK)
            return -1;
        begin(e, INTENT_LEASE);
        n += e->state != SHM_FREE && table_drop_pid(e, pid);
        end(e);
        shm_unlock(&e->lock);
    }
    return n;
}


/* Check of the free list: every link free, every free entry on it. */
static int
check_freelist(struct shm_table *t, char *err, size_t errlen)
{
    uint32_t i = t->h->free_head, n = 0, nfree = 0;
    int      rc;

    if ((rc = table_lock_free(t, err, errlen)) != SHM_TABLE_OK)
        return -1;
    for (i = t->h->free_head; i != 0 && n <= t->h->capacity; n++) {
        if (atomic_load_explicit(&t->e[i - 1].tag, memory_order_relaxed))
            break;
        i = t->e[i - 1].free_next;
    }
    for (uint32_t k = 0; k < t->h->capacity; k++)
        nfree += atomic_load_explicit(&t->e[k].tag, memory_order_relaxed) == 0;
    if (i != 0 || n != nfree
        || n != atomic_load_explicit(&t->h->nfree, memory_order_relaxed))
        rc = tfail(err, errlen, -1, "free list: %u linked, %u free, %u "
                   "counted%s", n, nfree, atomic_load(&t->h->nfree),
                   i != 0 ? ", bad link" : "");
    shm_unlock(&t->h->free_lock);
    return rc == SHM_TABLE_OK ? 0 : -1;
}


/* Check of one stripe: chains hold exactly its in-use entries, once. */
static int
check_stripe(struct shm_table *t, uint32_t s, uint8_t *seen, char *err,
             size_t errlen)
{
    uint32_t linked = 0, used = 0;
    int      rc;

    if ((rc = table_lock_stripe(t, s, NULL, err, errlen)) != SHM_TABLE_OK)
        return -1;
    for (uint32_t b = s; rc == 0 && b < t->h->nbuckets; b += NSTRIPES) {
        for (uint32_t i = t->buckets[b]; rc == 0 && i != 0;
             i = t->e[i - 1].chain_next)
        {
            struct entry *e = &t->e[i - 1];
            if (seen[i - 1]++ || bucket_of(t, e->key) != b
                || atomic_load(&e->tag) != (TAG_USED | s))
                rc = tfail(err, errlen, -1, "stripe %u: entry %u wrongly "
                           "linked", s, i - 1);
            linked++;
        }
    }
    for (uint32_t k = 0; rc == 0 && k < t->h->capacity; k++)
        used += atomic_load(&t->e[k].tag) == (TAG_USED | s);
    if (rc == 0 && used != linked)
        rc = tfail(err, errlen, -1, "stripe %u: %u in use, %u linked", s,
                   used, linked);
    shm_unlock(&t->h->stripe[s]);
    return rc == 0 ? 0 : -1;
}


static int
check_entry(struct shm_table *t, uint32_t i, char *err, size_t errlen)
{
    struct entry *e = &t->e[i];
    int           rc = table_lock_entry(t, e, NULL, err, errlen), ok;

    if (rc != SHM_TABLE_OK)
        return -1;
    ok = table_entry_sane(e)
         && atomic_load(&e->intent) == INTENT_NONE
         && (e->size == SHM_SIZE_UNKNOWN || e->held.n == 0
             || e->held.r[e->held.n - 1].end <= e->size)
         && (e->state == SHM_FREE || (atomic_load(&e->tag) & TAG_USED));
    shm_unlock(&e->lock);
    return ok ? 0 : tfail(err, errlen, -1, "entry %u: inconsistent", i);
}


int
shm_table_check(struct shm_table *t, char *err, size_t errlen)
{
    uint8_t *seen = calloc(t->h->capacity, 1);
    int      rc = 0;

    if (seen == NULL)
        return tfail(err, errlen, -1, "out of memory");
    if (check_freelist(t, err, errlen) < 0)
        rc = -1;
    for (uint32_t s = 0; rc == 0 && s < NSTRIPES; s++)
        rc = check_stripe(t, s, seen, err, errlen);
    for (uint32_t i = 0; rc == 0 && i < t->h->capacity; i++)
        rc = check_entry(t, i, err, errlen);
    free(seen);
    return rc;
}
