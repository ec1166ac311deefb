/* table_entry: what table_entry.c, the index and the entry locks, gives
 * the other parts of the table. Its public calls (shm_table_claim, _find,
 * _activate, _view, _abort, _remove, _restore) are in shm/table.h.
 * Private to shm/table_*.c.
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
/* table_lock_entry with its own timeout (ms) instead of the table's. */
int  table_lock_entry_for(struct shm_table *t, struct entry *e, int timeout_ms,
                          struct shm_view *v, char *err, size_t errlen);
int  table_lock_entry(struct shm_table *t, struct entry *e,
                      struct shm_view *v, char *err, size_t errlen);

/* Frees entry idx if it still has generation gen (if orphan: if it is
 * FREE but still linked). Takes its stripe, entry and free-list locks. */
int  table_remove_idx(struct shm_table *t, uint32_t idx, uint32_t gen,
                      int orphan, char *err, size_t errlen);

/* Locks the entry a ref names if it still names a live session (else
 * GONE, unlocked). v, if not NULL, is zeroed first. */
int  table_entry_get(struct shm_table *t, struct shm_ref ref,
                     struct entry **e_r, struct shm_view *v,
                     char *err, size_t errlen);
/* Entry lock held: the snapshot callers get (v may be NULL; v->pid is
 * left alone). */
void table_fill_view(const struct entry *e, struct shm_view *v);

#endif
