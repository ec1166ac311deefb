/* table_lease.c: writing into a session. Leases hand out byte ranges to
 * one writer each, commits record durable bytes as held (the bounded range
 * list and its budget), and completion lets exactly one worker publish.
 * Also the held ranges and the deferred size, which the lease rules read.
 * Each call locks one entry through table_entry_get and changes it between
 * begin() and end() (shm/table_internal.h). */
#define _GNU_SOURCE
#include "shm/table_lease.h"

#include <string.h>
#include <unistd.h>

#include "shm/lock.h"
#include "shm/table_entry.h"


void
table_drop_expired_leases(struct entry *e, int64_t now)
{
    for (int i = 0; i < SHM_LEASES; i++)
        if (e->leases[i].id != 0 && e->leases[i].deadline < now)
            memset(&e->leases[i], 0, sizeof(e->leases[i]));
}


int
shm_table_ranges(struct shm_table *t, struct shm_ref ref, struct ranges *out,
                 char *err, size_t errlen)
{
    struct entry *e;
    int           rc = table_entry_get(t, ref, &e, NULL, err, errlen);

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
    int           rc = table_entry_get(t, ref, &e, NULL, err, errlen);
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
    int           rc = table_entry_get(t, ref, &e, v, err, errlen), slot = -1;

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
    table_fill_view(e, v);
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
    int                rc = table_entry_get(t, ref, &e, v, err, errlen);

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
    table_fill_view(e, v);
    shm_unlock(&e->lock);
    return rc;
}


int
shm_table_unlease(struct shm_table *t, struct shm_ref ref, struct shm_lease l,
                  char *err, size_t errlen)
{
    struct entry      *e;
    struct lease_slot *ls;
    int                rc = table_entry_get(t, ref, &e, NULL, err, errlen);

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


int
shm_table_offer_digest(struct shm_table *t, struct shm_ref ref,
                       const struct digest_sha256 *d, char *err,
                       size_t errlen)
{
    struct entry *e;
    int           rc = table_entry_get(t, ref, &e, NULL, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    /* Bytes past the held prefix may yet be written by someone else (or
     * never): a digest over them would be a guess. */
    if (d->len > e->digest.len && d->len <= ranges_prefix(&e->held)) {
        begin(e, INTENT_COMMIT);
        e->digest = *d;
        end(e);
    }
    shm_unlock(&e->lock);
    return SHM_TABLE_OK;
}


int
shm_table_digest(struct shm_table *t, struct shm_ref ref,
                 struct digest_sha256 *d, char *err, size_t errlen)
{
    struct entry *e;
    int           rc = table_entry_get(t, ref, &e, NULL, err, errlen);

    if (rc != SHM_TABLE_OK)
        return rc;
    *d = e->digest;
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
    int           rc = table_entry_get(t, ref, &e, v, err, errlen);

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
    table_fill_view(e, v);
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
    if ((rc = table_entry_get(t, ref, &e, NULL, err, errlen)) != SHM_TABLE_OK)
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
