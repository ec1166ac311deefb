/* pause: what a worker does when netmon reports a network change.
 *
 * Checkpoint every upload in flight (make what arrived durable), then hold
 * responses (w->paused, which conn.c reads) and publications (the sync
 * pool's held jobs) until the reconnect window has passed, without counting
 * that time against any connection's timeouts. See docs/netmon.md. */
#ifndef WORKER_PAUSE_H
#define WORKER_PAUSE_H

struct worker;

int  pause_init(struct worker *w, int wake_fd);
void pause_fini(struct worker *w);

#endif
