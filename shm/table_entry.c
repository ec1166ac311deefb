/* table_entry.c: session entries in a shared segment, found through a
 * chained hash index. The lock wrappers every part goes through (with the
 * glue that calls table_repair.c when a holder died), and the life of an
 * entry: claim, find, activate, view, abort, remove, restore. The layout
 * and the lock order are in shm/table_internal.h. */
#define _GNU_SOURCE
#include "shm/table_entry.h"

#include <errno.h>
#include <stdatomic.h>
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
table_lock_entry_for(struct shm_table *t, struct entry *e, int timeout_ms,
                     struct shm_view *v, char *err, size_t errlen)
{
    pid_t pid = 0;
    int   rc = shm_lock(&e->lock, timeout_ms, &pid);

    return locked(t, &e->lock, rc, pid, fix_entry, e, v, err, errlen);
}


int
table_lock_entry(struct shm_table *t, struct entry *e, struct shm_view *v,
                 char *err, size_t errlen)
{
    return table_lock_entry_for(t, e, t->timeout_ms, v, err, errlen);
}


/* Locks the entry a ref names, if it still names a live session. */
int
table_entry_get(struct shm_table *t, struct shm_ref ref, struct entry **e_r,
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


void
table_fill_view(const struct entry *e, struct shm_view *v)
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
    memset(&e->digest, 0, sizeof(e->digest));
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
    table_fill_view(e, v);
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
    table_fill_view(e, v);
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
        table_fill_view(e, v);
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
    int           rc = table_entry_get(t, ref, &e, NULL, err, errlen);

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
    int           rc = table_entry_get(t, ref, &e, v, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    table_fill_view(e, v);
    shm_unlock(&e->lock);
    return SHM_TABLE_OK;
}


int
shm_table_abort(struct shm_table *t, struct shm_ref ref, char *err,
                size_t errlen)
{
    struct entry *e;
    int           rc = table_entry_get(t, ref, &e, NULL, err, errlen);

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
    if ((rc = table_entry_get(t, *ref, &e, NULL, err, errlen)) != SHM_TABLE_OK)
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
