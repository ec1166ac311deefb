/* table_lease: what table_lease.c, the writing side of a session, gives the
 * other parts of the table. Its public calls (shm_table_lease, _commit,
 * _unlease, _ranges, _set_size, _complete_begin, _complete_end) are in
 * shm/table.h. Private to shm/table_*.c. */
#ifndef SHM_TABLE_LEASE_H
#define SHM_TABLE_LEASE_H

#include <stdint.h>

#include "shm/table_internal.h"

/* Entry lock held: drops the leases whose deadline is before now (the
 * expiry scan does it too). */
void table_drop_expired_leases(struct entry *e, int64_t now);

#endif
