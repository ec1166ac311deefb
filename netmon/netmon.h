/* netmon: the network-change monitor process (see docs/netmon.md).
 *
 * Forked by the master, it follows rtnetlink and, when a change matters to
 * uploads, publishes it in struct netmon_shared and wakes the workers.
 *
 * Waking: the master creates one eventfd (EFD_NONBLOCK) before forking and
 * passes it here as wake_fd; every worker adds it to its epoll set with
 * EPOLLIN | EPOLLET and never reads it. Each write by netmon is a new edge
 * for every epoll instance, so one write wakes all workers; since nobody
 * drains the counter, workers learn what happened by comparing `epoch` with
 * the last value they saw, not from the fd. A signal to the process group
 * would hit the master too; a list of worker pids would go stale on respawn.
 *
 * Reading the page: load epoch with acquire; paused_until_ms and
 * last_change are then at least as new as that epoch. paused_until_ms can
 * move later WITHOUT an epoch bump (a flap inside the debounce window), so a
 * worker whose pause timer fires re-reads it before resuming. */
#ifndef NETMON_NETMON_H
#define NETMON_NETMON_H

#include <stddef.h>
#include <stdint.h>

#include "lib/conf/conf.h"

/* Window in which further changes on one interface extend the pause
 * instead of counting as new changes. */
#define NETMON_DEBOUNCE_MS 2000

/* Written by netmon only; zero-filled is the valid initial state. */
struct netmon_shared {
    _Atomic uint64_t epoch;             /* +1 per change that matters */
    _Atomic int64_t  paused_until_ms;   /* CLOCK_MONOTONIC; 0 = never */
    _Atomic uint64_t changes_total;
    _Atomic uint64_t resyncs_total;     /* full dumps done; 1 once ready */
    _Atomic uint32_t last_seq;          /* seqlock for last_change */
    char             last_change[128];  /* "eth0: carrier lost" */
};

/* The process main: returns 0 on SIGTERM/SIGINT or when parent_alive_fd
 * (read end of a pipe the master holds open) reports EOF, -1 if netlink
 * cannot be set up. SIGHUP reopens the log and forces a resync. Blocks
 * SIGTERM, SIGINT and SIGHUP in the calling process. wake_fd and
 * parent_alive_fd may be -1. Returns 0 at once if detection is disabled. */
int  netmon_run(const struct conf *c, struct netmon_shared *sh, int wake_fd,
                int parent_alive_fd);

/* A consistent copy of last_change for a reader in another process. */
void netmon_last_change(const struct netmon_shared *sh, char *buf,
                        size_t len);

#endif
