/* peers: counts per client address (connections, uploads in progress)
 * shared by every worker, so per-address limits hold across workers.
 *
 * One anonymous MAP_SHARED mapping made by the master before forking. Each
 * worker counts in its own row (its stats slot), which only it writes; a
 * count is the sum over the rows. The master zeroes a row when it reaps
 * the process, so a crash never leaves counts behind, and nothing here
 * takes a lock: the master never waits on a worker.
 *
 * Addresses are not stored. Each is hashed (keyed by a random seed drawn at
 * start, so a client cannot choose collisions) to two of PEERS_BUCKETS
 * counters, and its count is the smaller of the two sums: never less than
 * the truth, more only if both its counters are shared with other busy
 * addresses (count-min sketch). IPv6 addresses count per /64, the block
 * one subscriber gets; IPv4-mapped IPv6 addresses as IPv4. */
#ifndef SHM_PEERS_H
#define SHM_PEERS_H

#include <stdint.h>
#include <sys/socket.h>

#include "shm/stats.h"

#define PEERS_BUCKETS 4096

enum peers_kind { PEERS_CONNS, PEERS_UPLOADS, PEERS_KINDS };

struct peers_key { uint16_t a, b; };    /* two bucket indices, a != b */

struct peers {
    uint64_t         seed;
    _Atomic int      nrows;             /* rows ever used: sums stop here */
    _Atomic uint32_t rows[STATS_SLOTS][PEERS_KINDS][PEERS_BUCKETS];
};

struct peers *peers_create(void);                   /* master, before fork */
void  peers_row_open(struct peers *p, int row);     /* master, at fork */
void  peers_row_clear(struct peers *p, int row);    /* master, at reap */
/* The key of a peer address (AF_INET or AF_INET6; others: all in one). */
struct peers_key peers_key(const struct peers *p, const struct sockaddr *sa);
/* In row `row` (the caller's own): count one more (+1) or one less (-1). */
void  peers_add(struct peers *p, int row, struct peers_key k,
                enum peers_kind kind, int delta);
/* The count of k over every worker. */
uint32_t peers_count(const struct peers *p, struct peers_key k,
                     enum peers_kind kind);

#endif
