/* table_entry.c: session entries in a shared segment, found through a
 * chained hash index. The layout and the lock order are in
 * shm/table_internal.h. */
#define _GNU_SOURCE
#include "shm/table_entry.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/lock.h"
#include "shm/table_repair.h"

#define NONE           UINT32_MAX


static int
key_eq(const uint8_t *a, const uint8_t *b)
{
    uint8_t d = 0;

    for (int i = 0; i < SHM_KEY_LEN; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}


/* Turns a shm_lock result into a table result, repairing on EOWNERDEAD. */
static int
locked(struct shm_table *t, struct shm_mutex *m, int rc, pid_t pid,
       void (*fix)(struct shm_table *, void *, pid_t), void *what,
       struct shm_view *v, char *err, size_t errlen)
{
    switch (rc) {
    case SHM_LOCKED:
        return SHM_TABLE_OK;
    case SHM_LOCKED_AFTER_REPAIR:
        fix(t, what, pid);
        if (shm_lock_consistent(m) < 0) {
            shm_unlock(m);
            return tfail(err, errlen, SHM_TABLE_BROKEN,
                         "pthread_mutex_consistent: %s", strerror(errno));
        }
        return SHM_TABLE_OK;
    case SHM_LOCK_TIMEOUT:
        count(&t->h->timeouts);
        if (v != NULL)
            v->pid = pid;
        return tfail(err, errlen, SHM_TABLE_TIMEOUT,
                     "session table lock held too long by pid %d", (int)pid);
    case SHM_LOCK_BROKEN:
        return tfail(err, errlen, SHM_TABLE_BROKEN, "session table lock not "
                     "recoverable; the master must reset the table");
    default:
        return tfail(err, errlen, SHM_TABLE_ERROR, "session table lock: %s",
                     strerror(errno));
    }
}


static void
fix_stripe(struct shm_table *t, void *what, pid_t dead)
{
    (void)dead;
    count(&t->h->repairs);
    table_rebuild_stripe(t, (uint32_t)(uintptr_t)what);
}


static void
fix_free(struct shm_table *t, void *what, pid_t dead)
{
    (void)what;
    (void)dead;
    count(&t->h->repairs);
    table_rebuild_freelist(t);
}


static void
fix_entry(struct shm_table *t, void *what, pid_t dead)
{
    table_repair_entry(t, what, dead);
}


int
table_lock_stripe(struct shm_table *t, uint32_t s, struct shm_view *v,
                  char *err, size_t errlen)
{
    struct shm_mutex *m = &t->h->stripe[s];
    pid_t             pid = 0;
    int               rc = shm_lock(m, t->timeout_ms, &pid);

    return locked(t, m, rc, pid, fix_stripe, (void *)(uintptr_t)s, v, err,
                  errlen);
}


int
table_lock_free(struct shm_table *t, char *err, size_t errlen)
{
    struct shm_mutex *m = &t->h->free_lock;
    pid_t             pid = 0;
    int               rc = shm_lock(m, t->timeout_ms, &pid);

    return locked(t, m, rc, pid, fix_free, NULL, NULL, err, errlen);
}


int
table_lock_entry(struct shm_table *t, struct entry *e, struct shm_view *v,
                 char *err, size_t errlen)
{
    pid_t pid = 0;
    int   rc = shm_lock(&e->lock, t->timeout_ms, &pid);

    return locked(t, &e->lock, rc, pid, fix_entry, e, v, err, errlen);
}


/* Locks the entry a ref names, if it still names a live session. */
static int
entry_get(struct shm_table *t, struct shm_ref ref, struct entry **e_r,
          struct shm_view *v, char *err, size_t errlen)
{
    struct entry *e;
    int           rc;

    if (v != NULL)
        memset(v, 0, sizeof(*v));
    if (ref.idx >= t->h->capacity)
        return tfail(err, errlen, SHM_TABLE_GONE, "no such session entry");
    e = &t->e[ref.idx];
    if ((rc = table_lock_entry(t, e, v, err, errlen)) != SHM_TABLE_OK)
        return rc;
    if (gen_of(e) != ref.gen || e->state == SHM_FREE) {
        shm_unlock(&e->lock);
        return tfail(err, errlen, SHM_TABLE_GONE, "session was removed");
    }
    *e_r = e;
    return SHM_TABLE_OK;
}


static void
fill_view(const struct entry *e, struct shm_view *v)
{
    if (v == NULL)
        return;
    v->state = (enum shm_state)e->state;
    v->proto = e->proto;
    v->size = e->size;
    v->chunk_size = e->chunk_size;
    v->prefix = ranges_prefix(&e->held);
    v->held = ranges_total(&e->held);
    v->nranges = e->held.n;
    v->nleases = nleases(e);
    v->created = e->created;
    v->last_active = e->last_active;
    v->expires = e->expires;
}


void
table_drop_expired_leases(struct entry *e, int64_t now)
{
    for (int i = 0; i < SHM_LEASES; i++)
        if (e->leases[i].id != 0 && e->leases[i].deadline < now)
            memset(&e->leases[i], 0, sizeof(e->leases[i]));
}


static uint32_t
chain_find(const struct shm_table *t, uint32_t b, const uint8_t *key)
{
    uint32_t i = t->buckets[b];

    /* Bounded: a chain never has more links than there are entries. */
    for (uint32_t n = 0; i != 0 && n < t->h->capacity; n++) {
        if (key_eq(t->e[i - 1].key, key))
            return i - 1;
        i = t->e[i - 1].chain_next;
    }
    return NONE;
}


static void
chain_unlink(struct shm_table *t, uint32_t b, uint32_t idx)
{
    uint32_t *link = &t->buckets[b];

    for (uint32_t n = 0; *link != 0 && n < t->h->capacity; n++) {
        if (*link == idx + 1) {
            *link = t->e[idx].chain_next;
            return;
        }
        link = &t->e[*link - 1].chain_next;
    }
}


/* Entry content for a new session; stripe and entry lock held. */
static void
init_entry(struct entry *e, const struct shm_session *s, int64_t now,
           int64_t deadline, pid_t self)
{
    begin(e, INTENT_INIT);
    gen_bump(e);
    e->proto = s->proto;
    e->size = s->size;
    e->chunk_size = s->chunk_size;
    e->created = e->last_active = now;
    e->expires = s->expires;
    e->owner_pid = self;
    e->owner_deadline = deadline;
    clear_leases(e);
    ranges_init(&e->held);
    e->state = SHM_CREATING;
    end(e);
}


/* The key was found: hand out the session, or take over an abandoned or
 * orphaned claim. Stripe lock held. */
static int
claim_found(struct shm_table *t, uint32_t idx, const struct shm_session *s,
            int64_t now, int64_t deadline, pid_t self, struct shm_ref *ref,
            struct shm_view *v, char *err, size_t errlen)
{
    struct entry *e = &t->e[idx];
    int           rc = table_lock_entry(t, e, v, err, errlen);
    pid_t         busy = 0;

    if (rc != SHM_TABLE_OK)
        return rc;
    if (e->state == SHM_FREE || (e->state == SHM_CREATING
                                 && e->owner_deadline < now)) {
        /* The gen bump also voids the refs of an abandoned creator. */
        init_entry(e, s, now, deadline, self);
        count(&t->h->created);
        rc = SHM_TABLE_NEW;
    } else if (e->state == SHM_CREATING || e->state == SHM_DOOMED) {
        busy = e->state == SHM_CREATING ? e->owner_pid : 0;
        rc = tfail(err, errlen, SHM_TABLE_BUSY, "session is being %s",
                   e->state == SHM_CREATING ? "created" : "removed");
    } else if (e->size != s->size || e->proto != s->proto) {
        rc = tfail(err, errlen, SHM_TABLE_CONFLICT, "session exists with "
                   "another size or protocol");
    }
    fill_view(e, v);
    if (v != NULL)
        v->pid = busy;
    ref->idx = idx;
    ref->gen = gen_of(e);
    shm_unlock(&e->lock);
    return rc;
}


/* Takes an entry off the free list and links it. Stripe lock held. */
static int
claim_new(struct shm_table *t, uint32_t b, const uint8_t *key,
          const struct shm_session *s, int64_t now, int64_t deadline,
          pid_t self, struct shm_ref *ref, struct shm_view *v,
          char *err, size_t errlen)
{
    struct hdr   *h = t->h;
    struct entry *e;
    uint32_t      idx;
    int           rc;

    if ((rc = table_lock_free(t, err, errlen)) != SHM_TABLE_OK)
        return rc;
    if (h->free_head == 0) {
        shm_unlock(&h->free_lock);
        return tfail(err, errlen, SHM_TABLE_FULL, "session table full (%u "
                     "sessions)", h->capacity);
    }
    idx = h->free_head - 1;
    e = &t->e[idx];
    h->free_head = e->free_next;
    memcpy(e->key, key, SHM_KEY_LEN);
    atomic_store_explicit(&e->tag, TAG_USED | stripe_of(b),
                          memory_order_release);
    atomic_fetch_sub_explicit(&h->nfree, 1, memory_order_relaxed);
    shm_unlock(&h->free_lock);
    /* Linked even if the entry lock fails: a FREE entry in a chain is an
     * orphan that the next claim or expiry scan takes care of. */
    e->chain_next = t->buckets[b];
    t->buckets[b] = idx + 1;
    if ((rc = table_lock_entry(t, e, v, err, errlen)) != SHM_TABLE_OK)
        return rc;
    init_entry(e, s, now, deadline, self);
    fill_view(e, v);
    ref->idx = idx;
    ref->gen = gen_of(e);
    shm_unlock(&e->lock);
    count(&h->created);
    return SHM_TABLE_NEW;
}


int
shm_table_claim(struct shm_table *t, const uint8_t key[SHM_KEY_LEN],
                const struct shm_session *s, int64_t now, int64_t deadline,
                struct shm_ref *ref, struct shm_view *v, char *err,
                size_t errlen)
{
    uint32_t b = bucket_of(t, key), st = stripe_of(b), idx;
    pid_t    self = getpid();
    int      rc;

    if (v != NULL)
        memset(v, 0, sizeof(*v));
    if ((rc = table_lock_stripe(t, st, v, err, errlen)) != SHM_TABLE_OK)
        return rc;
    idx = chain_find(t, b, key);
    if (idx != NONE)
        rc = claim_found(t, idx, s, now, deadline, self, ref, v, err, errlen);
    else
        rc = claim_new(t, b, key, s, now, deadline, self, ref, v, err,
                       errlen);
    shm_unlock(&t->h->stripe[st]);
    return rc;
}


int
shm_table_find(struct shm_table *t, const uint8_t key[SHM_KEY_LEN],
               struct shm_ref *ref, struct shm_view *v, char *err,
               size_t errlen)
{
    uint32_t      b = bucket_of(t, key), st = stripe_of(b), idx;
    struct entry *e;
    int           rc;

    if (v != NULL)
        memset(v, 0, sizeof(*v));
    if ((rc = table_lock_stripe(t, st, v, err, errlen)) != SHM_TABLE_OK)
        return rc;
    idx = chain_find(t, b, key);
    if (idx == NONE) {
        shm_unlock(&t->h->stripe[st]);
        return tfail(err, errlen, SHM_TABLE_NOTFOUND, "no such session");
    }
    e = &t->e[idx];
    if ((rc = table_lock_entry(t, e, v, err, errlen)) == SHM_TABLE_OK) {
        if (e->state == SHM_FREE)
            rc = tfail(err, errlen, SHM_TABLE_NOTFOUND, "no such session");
        fill_view(e, v);
        ref->idx = idx;
        ref->gen = gen_of(e);
        shm_unlock(&e->lock);
    }
    shm_unlock(&t->h->stripe[st]);
    return rc;
}


/* Frees an entry: stripe and entry lock held; returns with the entry lock
 * released. If the free-list lock cannot be had the entry stays linked as
 * an orphan (FREE in a chain), cleaned up later. */
static int
free_entry(struct shm_table *t, struct entry *e, char *err, size_t errlen)
{
    struct hdr *h = t->h;
    uint32_t    idx = (uint32_t)(e - t->e);
    int         rc;

    begin(e, INTENT_STATE);
    e->state = SHM_FREE;
    gen_bump(e);
    clear_leases(e);
    e->owner_pid = 0;
    end(e);
    shm_unlock(&e->lock);
    if ((rc = table_lock_free(t, err, errlen)) != SHM_TABLE_OK)
        return rc;
    chain_unlink(t, bucket_of(t, e->key), idx);
    atomic_store_explicit(&e->tag, 0, memory_order_release);
    e->free_next = h->free_head;
    h->free_head = idx + 1;
    atomic_fetch_add_explicit(&h->nfree, 1, memory_order_relaxed);
    shm_unlock(&h->free_lock);
    return SHM_TABLE_OK;
}


/* Removes entry idx if it still has generation gen (any gen if orphan). */
int
table_remove_idx(struct shm_table *t, uint32_t idx, uint32_t gen,
                 int orphan, char *err, size_t errlen)
{
    struct entry *e = &t->e[idx];
    uint32_t      tag = atomic_load_explicit(&e->tag, memory_order_acquire);
    uint32_t      st = tag & ~TAG_USED;
    int           rc;

    if (!(tag & TAG_USED))
        return tfail(err, errlen, SHM_TABLE_GONE, "session was removed");
    if ((rc = table_lock_stripe(t, st, NULL, err, errlen)) != SHM_TABLE_OK)
        return rc;
    if (atomic_load_explicit(&e->tag, memory_order_acquire) != tag) {
        shm_unlock(&t->h->stripe[st]);
        return tfail(err, errlen, SHM_TABLE_GONE, "session was removed");
    }
    if ((rc = table_lock_entry(t, e, NULL, err, errlen)) != SHM_TABLE_OK) {
        shm_unlock(&t->h->stripe[st]);
        return rc;
    }
    if (orphan ? e->state != SHM_FREE
               : gen_of(e) != gen || e->state == SHM_FREE) {
        shm_unlock(&e->lock);
        shm_unlock(&t->h->stripe[st]);
        return tfail(err, errlen, SHM_TABLE_GONE, "session was removed");
    }
    rc = free_entry(t, e, err, errlen);
    shm_unlock(&t->h->stripe[st]);
    return rc;
}


int
shm_table_remove(struct shm_table *t, struct shm_ref ref, char *err,
                 size_t errlen)
{
    if (ref.idx >= t->h->capacity)
        return tfail(err, errlen, SHM_TABLE_GONE, "no such session entry");
    return table_remove_idx(t, ref.idx, ref.gen, 0, err, errlen);
}


int
shm_table_activate(struct shm_table *t, struct shm_ref ref, int64_t now,
                   char *err, size_t errlen)
{
    struct entry *e;
    int           rc = entry_get(t, ref, &e, NULL, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    if (e->state != SHM_CREATING) {
        rc = tfail(err, errlen, SHM_TABLE_CONFLICT, "session is not being "
                   "created");
    } else {
        begin(e, INTENT_STATE);
        e->state = SHM_ACTIVE;
        e->owner_pid = 0;
        e->last_active = now;
        end(e);
    }
    shm_unlock(&e->lock);
    return rc;
}


int
shm_table_view(struct shm_table *t, struct shm_ref ref, struct shm_view *v,
               char *err, size_t errlen)
{
    struct entry *e;
    int           rc = entry_get(t, ref, &e, v, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    fill_view(e, v);
    shm_unlock(&e->lock);
    return SHM_TABLE_OK;
}


int
shm_table_ranges(struct shm_table *t, struct shm_ref ref, struct ranges *out,
                 char *err, size_t errlen)
{
    struct entry *e;
    int           rc = entry_get(t, ref, &e, NULL, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    out->n = e->held.n;
    out->pad_ = 0;
    memcpy(out->r, e->held.r, e->held.n * sizeof(out->r[0]));
    shm_unlock(&e->lock);
    return SHM_TABLE_OK;
}


int
shm_table_set_size(struct shm_table *t, struct shm_ref ref, uint64_t size,
                   char *err, size_t errlen)
{
    struct entry *e;
    int           rc = entry_get(t, ref, &e, NULL, err, errlen);
    uint64_t      top;

    if (rc != SHM_TABLE_OK)
        return rc;
    top = e->held.n > 0 ? e->held.r[e->held.n - 1].end : 0;
    if (e->size == size) {
        rc = SHM_TABLE_OK;
    } else if (e->size != SHM_SIZE_UNKNOWN || size == SHM_SIZE_UNKNOWN
               || top > size) {
        rc = tfail(err, errlen, SHM_TABLE_CONFLICT, "size contradicts the "
                   "session");
    } else {
        for (int i = 0; i < SHM_LEASES; i++)
            if (e->leases[i].id != 0 && e->leases[i].end > size)
                rc = tfail(err, errlen, SHM_TABLE_CONFLICT, "a write in "
                           "progress goes past the size");
        if (rc == SHM_TABLE_OK) {
            begin(e, INTENT_STATE);
            e->size = size;
            end(e);
        }
    }
    shm_unlock(&e->lock);
    return rc;
}


/* Commits of a lease grow one range from its start, so a lease adds at
 * most one range, and none if its start touches held bytes on the left.
 * Counting that for every lease guarantees a commit never finds the range
 * list full. A lease at offset 0 has no left to touch: one range is kept
 * in reserve for it, so a client whose first chunk comes last is never
 * shut out, and leases that add nothing are always admitted. */
static uint32_t
new_range_cost(const struct ranges *held, uint64_t start)
{
    return start == 0 || !ranges_covers(held, start - 1, start);
}


static uint32_t
range_budget(const struct entry *e)
{
    uint32_t n = 0;

    for (int i = 0; i < SHM_LEASES; i++) {
        const struct lease_slot *l = &e->leases[i];
        if (l->id != 0 && l->done == l->start)
            n += new_range_cost(&e->held, l->start);
    }
    return n;
}


/* Why [start, end) cannot be leased now, or SHM_TABLE_OK. */
static int
lease_check(const struct entry *e, uint64_t start, uint64_t end,
            struct shm_view *v, char *err, size_t errlen)
{
    uint32_t cost, limit;

    if (e->state == SHM_CREATING) {
        if (v != NULL)
            v->pid = e->owner_pid;
        return tfail(err, errlen, SHM_TABLE_BUSY, "session is being created");
    }
    if (e->state != SHM_ACTIVE)
        return tfail(err, errlen, SHM_TABLE_CONFLICT, "session is not active");
    if (start >= end || (e->size != SHM_SIZE_UNKNOWN && end > e->size))
        return tfail(err, errlen, SHM_TABLE_CONFLICT, "range is empty or "
                     "past the upload's size");
    if (ranges_covers(&e->held, start, end))
        return tfail(err, errlen, SHM_TABLE_HELD, "range already held");
    if (ranges_overlaps(&e->held, start, end))
        return tfail(err, errlen, SHM_TABLE_CONFLICT, "range overlaps held "
                     "bytes partly");
    for (int i = 0; i < SHM_LEASES; i++) {
        const struct lease_slot *l = &e->leases[i];
        if (l->id != 0 && l->start < end && start < l->end) {
            if (v != NULL)
                v->pid = l->pid;
            return tfail(err, errlen, SHM_TABLE_BUSY, "range is being "
                         "written by pid %d", (int)l->pid);
        }
    }
    cost = new_range_cost(&e->held, start);
    limit = cost == 0 || start == 0 ? RANGES_MAX : RANGES_MAX - 1;
    if (e->held.n + range_budget(e) + cost > limit)
        return tfail(err, errlen, SHM_TABLE_FULL, "too many holes in the "
                     "upload; fill some first");
    return SHM_TABLE_OK;
}


int
shm_table_lease(struct shm_table *t, struct shm_ref ref, uint64_t start,
                uint64_t end_, int64_t now, int64_t deadline,
                struct shm_lease *l, struct shm_view *v, char *err,
                size_t errlen)
{
    struct entry *e;
    pid_t         self = getpid(), busy = 0;
    int           rc = entry_get(t, ref, &e, v, err, errlen), slot = -1;

    if (rc != SHM_TABLE_OK)
        return rc;
    table_drop_expired_leases(e, now);
    if (v != NULL)
        v->pid = 0;
    rc = lease_check(e, start, end_, v, err, errlen);
    for (int i = 0; rc == SHM_TABLE_OK && slot < 0 && i < SHM_LEASES; i++)
        if (e->leases[i].id == 0)
            slot = i;
    if (rc == SHM_TABLE_OK && slot < 0)
        rc = tfail(err, errlen, SHM_TABLE_FULL, "too many parallel writes "
                   "to one session");
    if (rc == SHM_TABLE_OK) {
        struct lease_slot *ls = &e->leases[slot];
        begin(e, INTENT_LEASE);
        if (++e->lease_ids == 0)
            e->lease_ids = 1;
        *ls = (struct lease_slot){ start, end_, start, deadline, self,
                                   e->lease_ids };
        e->last_active = now;
        end(e);
        l->slot = (uint32_t)slot;
        l->id = ls->id;
    }
    busy = v != NULL ? v->pid : 0;
    fill_view(e, v);
    if (v != NULL)
        v->pid = busy;
    shm_unlock(&e->lock);
    return rc;
}


static struct lease_slot *
lease_of(struct entry *e, struct shm_lease l)
{
    if (l.slot >= SHM_LEASES || l.id == 0 || e->leases[l.slot].id != l.id)
        return NULL;
    return &e->leases[l.slot];
}


int
shm_table_commit(struct shm_table *t, struct shm_ref ref, struct shm_lease l,
                 uint64_t start, uint64_t end_, int64_t now, int64_t deadline,
                 struct shm_view *v, char *err, size_t errlen)
{
    struct entry      *e;
    struct lease_slot *ls;
    int                rc = entry_get(t, ref, &e, v, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    /* A lease lost to repair or expiry does not undo durable bytes: they
     * are recorded all the same, within the size. */
    ls = lease_of(e, l);
    if (e->state != SHM_ACTIVE)
        rc = tfail(err, errlen, SHM_TABLE_CONFLICT, "session is not active");
    else if (start >= end_ || (ls != NULL && (start != ls->done
                                              || end_ > ls->end))
             || (e->size != SHM_SIZE_UNKNOWN && end_ > e->size))
        rc = tfail(err, errlen, SHM_TABLE_CONFLICT, "range does not continue "
                   "the lease or passes the size");
    if (rc == SHM_TABLE_OK) {
        begin(e, INTENT_COMMIT);
        if (ranges_add(&e->held, start, end_) < 0)
            rc = tfail(err, errlen, SHM_TABLE_FULL, "too many holes");
        e->last_active = now;
        if (ls != NULL) {
            ls->done = end_;
            if (deadline != 0)
                ls->deadline = deadline;
        }
        end(e);
    }
    fill_view(e, v);
    shm_unlock(&e->lock);
    return rc;
}


int
shm_table_unlease(struct shm_table *t, struct shm_ref ref, struct shm_lease l,
                  char *err, size_t errlen)
{
    struct entry      *e;
    struct lease_slot *ls;
    int                rc = entry_get(t, ref, &e, NULL, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    if ((ls = lease_of(e, l)) != NULL) {
        begin(e, INTENT_LEASE);
        memset(ls, 0, sizeof(*ls));
        end(e);
    }
    shm_unlock(&e->lock);
    return SHM_TABLE_OK;
}


/* Why the session cannot start completing, or SHM_TABLE_OK. */
static int
complete_check(const struct entry *e, int64_t now, struct shm_view *v,
               char *err, size_t errlen)
{
    if (e->state == SHM_COMPLETING && e->owner_deadline >= now) {
        if (v != NULL)
            v->pid = e->owner_pid;
        return tfail(err, errlen, SHM_TABLE_BUSY, "being completed by pid "
                     "%d", (int)e->owner_pid);
    }
    if (e->state != SHM_ACTIVE && e->state != SHM_COMPLETING)
        return tfail(err, errlen, SHM_TABLE_CONFLICT, "session is not active");
    if (e->size == SHM_SIZE_UNKNOWN || ranges_prefix(&e->held) != e->size)
        return tfail(err, errlen, SHM_TABLE_CONFLICT, "upload is not fully "
                     "held");
    for (int i = 0; i < SHM_LEASES; i++)
        if (e->leases[i].id != 0) {
            if (v != NULL)
                v->pid = e->leases[i].pid;
            return tfail(err, errlen, SHM_TABLE_BUSY, "a write is still in "
                         "progress");
        }
    return SHM_TABLE_OK;
}


int
shm_table_complete_begin(struct shm_table *t, struct shm_ref ref, int64_t now,
                         int64_t deadline, struct shm_view *v, char *err,
                         size_t errlen)
{
    struct entry *e;
    pid_t         self = getpid(), busy;
    int           rc = entry_get(t, ref, &e, v, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    table_drop_expired_leases(e, now);
    rc = complete_check(e, now, v, err, errlen);
    if (rc == SHM_TABLE_OK) {
        begin(e, INTENT_STATE);
        e->state = SHM_COMPLETING;
        e->owner_pid = self;
        e->owner_deadline = deadline;
        e->last_active = now;
        end(e);
    }
    busy = v != NULL ? v->pid : 0;
    fill_view(e, v);
    if (v != NULL)
        v->pid = busy;
    shm_unlock(&e->lock);
    return rc;
}


int
shm_table_complete_end(struct shm_table *t, struct shm_ref ref,
                       enum shm_state to, int64_t now, char *err,
                       size_t errlen)
{
    struct entry *e;
    pid_t         self = getpid();
    int           rc;

    if (to != SHM_DONE && to != SHM_ACTIVE && to != SHM_DOOMED)
        return tfail(err, errlen, SHM_TABLE_ERROR, "bad target state");
    if ((rc = entry_get(t, ref, &e, NULL, err, errlen)) != SHM_TABLE_OK)
        return rc;
    if (e->state != SHM_COMPLETING || e->owner_pid != self) {
        rc = tfail(err, errlen, SHM_TABLE_CONFLICT, "not completing it");
    } else {
        begin(e, INTENT_STATE);
        e->state = to;
        e->owner_pid = 0;
        e->last_active = now;
        /* A published session is kept only to answer late retries; it must
         * not hold its slot for the whole idle timeout, or a busy server's
         * table fills with finished uploads. */
        if (to == SHM_DONE
            && (e->expires == 0 || e->expires > now + SHM_DONE_KEEP_S))
            e->expires = now + SHM_DONE_KEEP_S;
        end(e);
        if (to == SHM_DONE)
            count(&t->h->completed);
    }
    shm_unlock(&e->lock);
    return rc;
}


int
shm_table_abort(struct shm_table *t, struct shm_ref ref, char *err,
                size_t errlen)
{
    struct entry *e;
    int           rc = entry_get(t, ref, &e, NULL, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    if (e->state != SHM_DOOMED) {
        if (e->state != SHM_DONE)
            count(&t->h->aborted);
        begin(e, INTENT_STATE);
        e->state = SHM_DOOMED;
        e->owner_pid = 0;
        end(e);
    }
    shm_unlock(&e->lock);
    return SHM_TABLE_OK;
}


int
shm_table_restore(struct shm_table *t, const uint8_t key[SHM_KEY_LEN],
                  const struct shm_session *s, const struct shm_rebuild *rb,
                  int64_t last_active, struct shm_ref *ref, char *err,
                  size_t errlen)
{
    struct entry *e;
    int           rc;

    if (!ranges_valid(&rb->held) || (rb->state != SHM_ACTIVE
                                     && rb->state != SHM_DONE
                                     && rb->state != SHM_DOOMED))
        return tfail(err, errlen, SHM_TABLE_ERROR, "bad session to restore");
    rc = shm_table_claim(t, key, s, last_active, 0, ref, NULL, err, errlen);
    if (rc == SHM_TABLE_OK)
        return tfail(err, errlen, SHM_TABLE_CONFLICT, "session restored "
                     "twice");
    if (rc != SHM_TABLE_NEW)
        return rc;
    if ((rc = entry_get(t, *ref, &e, NULL, err, errlen)) != SHM_TABLE_OK)
        return rc;
    begin(e, INTENT_INIT);
    e->state = rb->state;
    e->size = rb->size;
    e->held = rb->held;
    e->owner_pid = 0;
    end(e);
    shm_unlock(&e->lock);
    return SHM_TABLE_OK;
}
