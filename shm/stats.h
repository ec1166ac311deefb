/* stats: counters for /metrics, shared by every process of the daemon.
 *
 * One anonymous MAP_SHARED mapping made by the master before forking, so it
 * survives worker crashes and reloads. Counters are atomics any process may
 * bump; gauges live in per-process slots written by that process only and
 * zeroed by the master when it reaps the process (so a crash cannot leave a
 * gauge stuck). Nothing here is a pointer. */
#ifndef SHM_STATS_H
#define SHM_STATS_H

#include <stdint.h>
#include <sys/types.h>

#define STATS_SLOTS      512      /* worker processes across generations */
#define STATS_METHODS    9        /* GET HEAD PUT POST PATCH OPTIONS DELETE other */

/* Failed storage calls, by what they were doing (docs/recovery.md,
 * "Failing disks"): writing upload bytes, making them durable (a data or
 * manifest sync, a record write), publishing (sync, link, directory). */
enum stats_store_op { STATS_STORE_WRITE, STATS_STORE_COMMIT,
                      STATS_STORE_PUBLISH, STATS_STORE_OPS };

struct stats_slot {
    pid_t             pid;        /* 0 = free */
    _Atomic int64_t   connections;
    _Atomic int64_t   uploads;
    _Atomic int64_t   paused;
};

struct stats {
    _Atomic uint64_t  requests[STATS_METHODS][64];   /* by method, status index */
    _Atomic uint64_t  bytes_in, bytes_out;
    _Atomic uint64_t  worker_restarts;
    _Atomic uint64_t  network_changes;
    _Atomic uint64_t  uploads_paused;
    _Atomic uint64_t  checkpoints;
    _Atomic uint64_t  config_generation;
    _Atomic int64_t   last_reload_time;
    _Atomic int       last_reload_ok;
    _Atomic int64_t   start_time;
    _Atomic uint64_t  storage_errors[STATS_STORE_OPS];
    struct stats_slot slots[STATS_SLOTS];
};

struct stats *stats_create(void);                 /* master, before fork */
int   stats_slot_claim(struct stats *s, pid_t pid);   /* master, at fork */
void  stats_slot_release(struct stats *s, pid_t pid); /* master, at reap */
void  stats_count_request(struct stats *s, int method, int status);
/* Prometheus text exposition into buf; returns bytes written or -1. */
int   stats_render(const struct stats *s, char *buf, size_t len);

#endif
