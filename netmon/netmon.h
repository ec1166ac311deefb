/* netmon: the network-change monitor process (see docs/netmon.md).
 *
 * Forked by the master, it follows rtnetlink and, when a change matters to
 * uploads, publishes it in struct netmon_shared and wakes the workers.
 *
 * The page itself (struct netmon_shared) and how workers are woken are in
 * shm/netstate.h: workers read it without knowing this process. */
#ifndef NETMON_NETMON_H
#define NETMON_NETMON_H

#include <stddef.h>
#include <stdint.h>

#include "lib/conf/conf.h"
#include "shm/netstate.h"

/* Window in which further changes on one interface extend the pause
 * instead of counting as new changes. */
#define NETMON_DEBOUNCE_MS 2000

/* The process main: returns 0 on SIGTERM/SIGINT or when parent_alive_fd
 * (read end of a pipe the master holds open) reports EOF, -1 if netlink
 * cannot be set up. SIGHUP reopens the log and forces a resync. Blocks
 * SIGTERM, SIGINT and SIGHUP in the calling process. wake_fd and
 * parent_alive_fd may be -1. Returns 0 at once if detection is disabled. */
int  netmon_run(const struct conf *c, struct netmon_shared *sh, int wake_fd,
                int parent_alive_fd);

#endif
