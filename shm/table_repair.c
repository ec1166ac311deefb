/* table_repair.c: putting the table back in order after a lock holder
 * died, and the master's reset that does it for every lock at once.
 *
 * Called by the table's lock wrappers with the dead holder's lock held,
 * before shm_lock_consistent. Nothing here takes a lock, so this file sits
 * below everything that does. docs/shm.md, "Repair", has the argument
 * for why each rebuild is exact. */
#define _GNU_SOURCE
#include "shm/table_repair.h"

#include <string.h>

#include "shm/lock.h"


/* Stripe repair: relink every in-use entry whose tag names this stripe.
 * Those tags cannot change while we hold the stripe lock, so their keys
 * are stable too. */
void
table_rebuild_stripe(struct shm_table *t, uint32_t s)
{
    for (uint32_t b = s; b < t->h->nbuckets; b += NSTRIPES)
        t->buckets[b] = 0;
    for (uint32_t i = 0; i < t->h->capacity; i++) {
        struct entry *e = &t->e[i];
        uint32_t      b;

        if (atomic_load_explicit(&e->tag, memory_order_acquire)
            != (TAG_USED | s))
            continue;
        b = bucket_of(t, e->key);
        e->chain_next = t->buckets[b];
        t->buckets[b] = i + 1;
    }
}


/* Free-list repair: tags change only under this lock, so they are exact. */
void
table_rebuild_freelist(struct shm_table *t)
{
    uint32_t n = 0;

    t->h->free_head = 0;
    for (uint32_t i = t->h->capacity; i-- > 0;) {
        if (atomic_load_explicit(&t->e[i].tag, memory_order_relaxed) != 0)
            continue;
        t->e[i].free_next = t->h->free_head;
        t->h->free_head = i + 1;
        n++;
    }
    atomic_store_explicit(&t->h->nfree, n, memory_order_relaxed);
}


int
table_entry_sane(const struct entry *e)
{
    if (e->state > SHM_DOOMED || !ranges_valid(&e->held)
        || e->digest.len > ranges_prefix(&e->held))
        return 0;
    for (int i = 0; i < SHM_LEASES; i++)
        if (e->leases[i].id != 0 && (e->leases[i].start >= e->leases[i].end
                                     || e->leases[i].done < e->leases[i].start
                                     || e->leases[i].done > e->leases[i].end))
            return 0;
    return 1;
}


/* Replaces the cached content with what the manifest says. */
static void
rebuild_entry(struct shm_table *t, struct entry *e)
{
    struct shm_rebuild rb;
    int                ok;

    memset(&rb, 0, sizeof(rb));
    ranges_init(&rb.held);
    ok = t->repair != NULL && t->repair(e->key, &rb, t->repair_arg) == 0
         && ranges_valid(&rb.held)
         && (rb.state == SHM_ACTIVE || rb.state == SHM_DONE
             || rb.state == SHM_DOOMED);
    e->state = ok ? rb.state : SHM_DOOMED;
    if (ok)
        e->size = rb.size;
    if (ok)
        e->held = rb.held;
    else
        ranges_init(&e->held);
    /* The manifest has no digest: publication reads the file instead. */
    memset(&e->digest, 0, sizeof(e->digest));
    clear_leases(e);
    e->owner_pid = 0;
}


/* Leases and claims of a process that is gone. Returns 1 if any. */
int
table_drop_pid(struct entry *e, pid_t pid)
{
    int changed = 0;

    for (int i = 0; i < SHM_LEASES; i++)
        if (e->leases[i].id != 0 && e->leases[i].pid == pid) {
            memset(&e->leases[i], 0, sizeof(e->leases[i]));
            changed = 1;
        }
    if (e->owner_pid == pid
        && (e->state == SHM_CREATING || e->state == SHM_COMPLETING))
    {
        e->state = e->state == SHM_CREATING ? SHM_DOOMED : SHM_ACTIVE;
        e->owner_pid = 0;
        changed = 1;
    }
    return changed;
}


/* Entry repair after EOWNERDEAD. A FREE entry caches nothing. */
void
table_repair_entry(struct shm_table *t, struct entry *e, pid_t dead)
{
    count(&t->h->repairs);
    if (e->state != SHM_FREE) {
        if (atomic_load_explicit(&e->intent, memory_order_relaxed)
                != INTENT_NONE || !table_entry_sane(e))
            rebuild_entry(t, e);
        if (dead > 0)
            (void)table_drop_pid(e, dead);
    }
    e->seq++;
    atomic_store_explicit(&e->intent, INTENT_NONE, memory_order_relaxed);
}


int
shm_table_reset(struct shm_table *t, char *err, size_t errlen)
{
    if (shm_mutex_reset(&t->h->free_lock, err, errlen) < 0)
        return SHM_TABLE_ERROR;
    for (int s = 0; s < NSTRIPES; s++)
        if (shm_mutex_reset(&t->h->stripe[s], err, errlen) < 0)
            return SHM_TABLE_ERROR;
    for (uint32_t i = 0; i < t->h->capacity; i++)
        if (shm_mutex_reset(&t->e[i].lock, err, errlen) < 0)
            return SHM_TABLE_ERROR;
    table_rebuild_freelist(t);
    for (uint32_t s = 0; s < NSTRIPES; s++)
        table_rebuild_stripe(t, s);
    /* Nobody else runs: every lease and claim belongs to a dead process. */
    for (uint32_t i = 0; i < t->h->capacity; i++) {
        struct entry *e = &t->e[i];

        if (e->state == SHM_FREE)
            continue;
        if (atomic_load_explicit(&e->intent, memory_order_relaxed)
                != INTENT_NONE || !table_entry_sane(e))
            rebuild_entry(t, e);
        clear_leases(e);
        if (e->state == SHM_CREATING || e->state == SHM_COMPLETING)
            e->state = e->state == SHM_CREATING ? SHM_DOOMED : SHM_ACTIVE;
        e->owner_pid = 0;
        atomic_store_explicit(&e->intent, INTENT_NONE, memory_order_relaxed);
    }
    return SHM_TABLE_OK;
}
