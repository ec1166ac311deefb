/* netstate: the page netmon publishes network changes in, read by workers.
 *
 * netmon is its only writer. Waking: the master creates one eventfd
 * (EFD_NONBLOCK) before forking and hands it to netmon and every worker;
 * workers add it to their epoll set with EPOLLIN | EPOLLET and never read
 * it. Each write by netmon is a new edge for every epoll instance, so one
 * write wakes all workers; since nobody drains the counter, workers learn
 * what happened by comparing `epoch` with the last value they saw, not from
 * the fd. A signal to the process group would hit the master too; a list
 * of worker pids would go stale on respawn.
 *
 * Reading the page: load epoch with acquire; paused_until_ms and
 * last_change are then at least as new as that epoch. paused_until_ms can
 * move later WITHOUT an epoch bump (a flap inside the debounce window), so a
 * worker whose pause timer fires re-reads it before resuming. */
#ifndef SHM_NETSTATE_H
#define SHM_NETSTATE_H

#include <stddef.h>
#include <stdint.h>

/* Written by netmon only; zero-filled is the valid initial state. */
struct netmon_shared {
    _Atomic uint64_t epoch;             /* +1 per change that matters */
    _Atomic int64_t  paused_until_ms;   /* CLOCK_MONOTONIC; 0 = never */
    _Atomic uint64_t changes_total;
    _Atomic uint64_t resyncs_total;     /* full dumps done; 1 once ready */
    _Atomic uint32_t last_seq;          /* seqlock for last_change */
    char             last_change[128];  /* "eth0: carrier lost" */
};

/* The writer's side: replace last_change (seqlock-protected). */
void netstate_set_last_change(struct netmon_shared *sh, const char *what);

/* A consistent copy of last_change for a reader in another process. */
void netstate_last_change(const struct netmon_shared *sh, char *buf,
                          size_t len);

#endif
