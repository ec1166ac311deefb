/* pause: what a worker does when netmon reports a network change.
 *
 * Checkpoint every upload in flight (make what arrived durable), then hold
 * responses and publications until the reconnect window has passed, without
 * counting that time against any connection's timeouts. See docs/netmon.md. */
#ifndef WORKER_PAUSE_H
#define WORKER_PAUSE_H

#include <stdbool.h>

struct worker;
struct sync_job;

int  pause_init(struct worker *w, int wake_fd);
bool pause_active(const struct worker *w);
/* Run `job` on the sync pool now, or when the pause ends. */
void pause_submit(struct worker *w, struct sync_job *job);
void pause_fini(struct worker *w);

#endif
