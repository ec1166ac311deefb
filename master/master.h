/* master: the supervising process. It owns the configuration, the listening
 * sockets and the shared mappings; it forks workers and never serves a
 * request or takes a lock in shared memory itself (what a dead worker
 * leaves in the session table is released by a live worker: see
 * stats_dead_push). */
#ifndef MASTER_MASTER_H
#define MASTER_MASTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/conf/conf.h"

#define MASTER_MAX_CHILDREN 512

struct linesink;
struct stats;
struct netmon_shared;
struct peers;
struct shm_table;

struct child {
    pid_t    pid;             /* 0: slot free */
    int      index;           /* worker number within its generation */
    unsigned generation;
    int64_t  started_ms;
    bool     retiring;        /* old generation: told to stop, not replaced */
    bool     netmon;          /* the network monitor, not a worker */
    int      slot;            /* stats and peers row, -1: none */
};

struct master {
    struct conf   conf;
    const char   *conf_path;  /* NULL: the embedded development config */
    bool          foreground;
    int           listen_fds[CONF_MAX_LISTEN];
    size_t        nlisten;
    int           root_fd, staging_fd;
    struct stats *stats;
    struct peers *peers;      /* per-address counts (shm/peers.h) */
    struct shm_table *table;  /* resumable sessions (shm/table.h) */
    void         *tls_ctx;    /* SSL_CTX for tls: listeners, or NULL */
    struct linesink *alog;   /* logging.access_log, NULL when off */
    struct netmon_shared *netmon;   /* shared page netmon writes */
    int           netmon_wake_fd;   /* eventfd netmon writes, workers watch */
    int           reaped_wake_fd;   /* eventfd: a dead pid was queued */
    int64_t       netmon_respawn_at_ms;
    int           netmon_backoff_ms;
    int           alive_pipe[2];  /* workers see EOF on [0] if we die */
    int           ready_fd;       /* to the starting process; -1: none */
    bool          pidfile_written; /* ours to remove when we end */
    unsigned      generation;
    int           nworkers;
    struct child  children[MASTER_MAX_CHILDREN];
    /* Per worker index: when to respawn and the current back-off. */
    int64_t       respawn_at_ms[256];
    int           backoff_ms[256];
};

/* listen.c */
int  master_listen(struct master *m, char *err, size_t errlen);
/* setup.c */
int  master_check(const struct master *m, char *err, size_t errlen);
int  master_open_storage(struct master *m, char *err, size_t errlen);
void master_reopen_storage(struct master *m);
int  master_daemonize(struct master *m, char *err, size_t errlen);
int  master_write_pidfile(struct master *m, char *err, size_t errlen);
/* Removes the pidfile if this master wrote it (at exit, or a failed start). */
void master_remove_pidfile(struct master *m);
int  master_drop_privileges(const struct master *m, char *err, size_t errlen);
int  master_tls_context(const struct conf *c, void **ctx_r, char *err,
                        size_t errlen);
/* recover.c */
int  master_recover(struct master *m, char *err, size_t errlen);
void master_sweep_oneshot(struct master *m, pid_t pid);
/* supervise.c */
int  master_run(struct master *m);
int  master_start_generation(struct master *m);
int  master_restart_netmon(struct master *m);
/* reload.c */
int  master_reload(struct master *m);

#endif
