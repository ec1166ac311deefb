/* stats: counters for /metrics, shared by every process of the daemon.
 *
 * One anonymous MAP_SHARED mapping made by the master before forking, so it
 * survives worker crashes and reloads. Counters are atomics any process may
 * bump; gauges live in per-process slots written by that process only and
 * zeroed by the master when it reaps the process (so a crash cannot leave a
 * gauge stuck). Nothing here is a pointer. */
#ifndef SHM_STATS_H
#define SHM_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define STATS_SLOTS      512      /* worker processes across generations */
#define STATS_METHODS    9        /* GET HEAD PUT POST PATCH OPTIONS DELETE other */
#define STATS_DEAD_MAX   64       /* reaped workers awaiting table cleanup */

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
    _Atomic pid_t     forgetting;   /* dead pid this process is cleaning up
                                       after (stats_dead_take), 0: none */
};

struct stats {
    _Atomic uint64_t  requests[STATS_METHODS][64];   /* by method, status index */
    _Atomic uint64_t  bytes_in, bytes_out;
    _Atomic uint64_t  worker_restarts;
    _Atomic uint64_t  network_changes;
    _Atomic uint64_t  uploads_paused;
    _Atomic uint64_t  checkpoints;
    _Atomic uint64_t  writeback_bytes;  /* handed to sync_file_range early */
    _Atomic uint64_t  digest_reread_bytes; /* read back to hash at the end */
    _Atomic uint64_t  session_syncs;    /* of session manifests and dirs */
    _Atomic uint64_t  config_generation;
    _Atomic int64_t   last_reload_time;
    _Atomic int       last_reload_ok;
    _Atomic int64_t   start_time;
    _Atomic uint64_t  storage_errors[STATS_STORE_OPS];
    /* Syncs made by workers (lib/util/syncsite.h), and group commits of
     * storage.sync = "batch" (worker/commit.c). */
    _Atomic uint64_t  syncs_data, syncs_dir, sync_batches;
    struct stats_slot slots[STATS_SLOTS];
    /* Workers the master reaped whose session-table leases and claims are
     * still to be released (shm_table_forget_pid). That takes entry locks,
     * which the master never does: it pushes the pid here, lock-free, and
     * the first worker to take it does the work. 0 = free. */
    _Atomic pid_t     dead[STATS_DEAD_MAX];
    _Atomic uint64_t  dead_dropped;     /* queue was full: left to deadlines */
    _Atomic int       dead_sweep;       /* a cleaner died: sweep regardless */
    /* Refused by a per-address limit (worker/conn_limit.c). */
    _Atomic uint64_t  refused_conns, refused_uploads;
};

struct stats *stats_create(void);                 /* master, before fork */
int   stats_slot_claim(struct stats *s, pid_t pid);   /* master, at fork */
void  stats_slot_release(struct stats *s, pid_t pid); /* master, at reap */
void  stats_count_request(struct stats *s, int method, int status);
/* The dead-worker queue: push (master, at reap; never blocks, false if
 * full), take (any worker: one pid or 0; each pid is taken once). The
 * taker's slot->forgetting names the pid from before it leaves the queue
 * until the taker clears it when done: a taker that dies in between is
 * reaped too, and stats_dead_requeue (master, at its reap) puts the pid
 * back and asks for a sweep, so no dead pid is ever lost. */
bool  stats_dead_push(struct stats *s, pid_t pid);
pid_t stats_dead_take(struct stats *s, struct stats_slot *mine);
void  stats_dead_requeue(struct stats *s, struct stats_slot *dead);
/* True while a dead pid is queued or being cleaned up after. */
bool  stats_dead_pending(const struct stats *s);
/* True if pid is a live process slot (a pid reused since it was queued). */
bool  stats_pid_live(const struct stats *s, pid_t pid);
/* Prometheus text exposition into buf; returns bytes written or -1. */
int   stats_render(const struct stats *s, char *buf, size_t len);

#endif
