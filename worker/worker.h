/* worker: one event-driven worker process serving many connections.
 *
 * The master forks a worker with everything it needs already open (listening
 * sockets, storage directories, shared counters) and calls worker_run, which
 * returns the process's exit status. 2 means "fatal, do not respawn". */
#ifndef WORKER_WORKER_H
#define WORKER_WORKER_H

#include <stddef.h>

struct linesink;
struct conf;
struct netmon_shared;
struct peers;
struct shm_table;
struct stats;

struct worker_init {
    const struct conf *conf;
    const int    *listen_fds;     /* nonblocking, already listening, in the
                                     order of conf->listen (which says TLS) */
    void         *tls_ctx;        /* SSL_CTX, NULL without TLS listeners */
    size_t        nlisten;
    int           root_fd;        /* storage root, O_DIRECTORY */
    int           staging_fd;     /* staging dir, same filesystem */
    struct stats *stats;
    int           stats_slot;
    int           index;          /* worker number in its generation */
    int           parent_fd;      /* read end of the master-alive pipe */
    unsigned      generation;
    struct netmon_shared *netmon; /* NULL: no network change detection */
    struct shm_table *table;      /* resumable sessions, mapped by master */
    int           netmon_wake_fd;
    int           reaped_wake_fd; /* eventfd: the master queued a dead pid */
    struct linesink *alog;       /* the master's, inherited; NULL: off */
    struct peers *peers;          /* per-address counts; row = stats_slot */
};

int worker_run(const struct worker_init *init);

#endif
