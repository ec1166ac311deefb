/* table_entry: what table_entry.c, the index and the entry locks, gives
 * the other parts of the table. Private to shm/table_*.c.
 *
 * Every lock goes through these wrappers: each takes the lock with the
 * table's timeout, repairs what it guards if the last holder died
 * (table_repair.h), and turns the outcome into a shm_table_rc. Lock order
 * and the rules for holders: shm/table_internal.h, docs/shm.md. */
#ifndef SHM_TABLE_ENTRY_H
#define SHM_TABLE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "shm/table_internal.h"

/* SHM_TABLE_OK with the lock held, or the error (TIMEOUT names the holder
 * in v->pid when v is not NULL). Release with shm_unlock. */
int  table_lock_stripe(struct shm_table *t, uint32_t s, struct shm_view *v,
                       char *err, size_t errlen);
int  table_lock_free(struct shm_table *t, char *err, size_t errlen);
int  table_lock_entry(struct shm_table *t, struct entry *e,
                      struct shm_view *v, char *err, size_t errlen);

/* Frees entry idx if it still has generation gen (if orphan: if it is
 * FREE but still linked). Takes its stripe, entry and free-list locks. */
int  table_remove_idx(struct shm_table *t, uint32_t idx, uint32_t gen,
                      int orphan, char *err, size_t errlen);

/* Entry lock held: drops the leases whose deadline is before now. */
void table_drop_expired_leases(struct entry *e, int64_t now);

#endif
