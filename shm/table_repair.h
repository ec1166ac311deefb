/* table_repair: what the lock wrappers call when a lock comes back from a
 * dead holder (EOWNERDEAD), with that lock held. Each rebuilds exactly the
 * data its lock guards, takes no lock and makes no system call except the
 * repair callback (shm_table_set_repair) reading a manifest. Also holds
 * shm_table_reset (shm/table.h). Private to shm/table_*.c. */
#ifndef SHM_TABLE_REPAIR_H
#define SHM_TABLE_REPAIR_H

#include <stdint.h>
#include <sys/types.h>

#include "shm/table_internal.h"

/* Stripe lock s held: relinks its chains from the entries' tags. */
void table_rebuild_stripe(struct shm_table *t, uint32_t s);
/* Free-list lock held (or no other process attached): relinks the free
 * list from the entries' tags and recounts it. */
void table_rebuild_freelist(struct shm_table *t);
/* Entry lock held after its holder `dead` died: keeps the content if no
 * change was in progress and it is sane, else rebuilds it from disk; drops
 * dead's leases and claims. Counts a repair. */
void table_repair_entry(struct shm_table *t, struct entry *e, pid_t dead);
/* Entry lock held: drops pid's leases, dooms its CREATING claim, reopens
 * its COMPLETING one. 1 if anything changed. */
int  table_drop_pid(struct entry *e, pid_t pid);
/* Ranges sorted and merged, leases well-formed, state known. */
int  table_entry_sane(const struct entry *e);

#endif
