/* syncpool: runs blocking file work (fsync, link, directory sync, hashing)
 * off the event loop, on as many threads per worker as the load keeps busy
 * (2 to 32).
 *
 * Why: an fdatasync of a large upload takes hundreds of milliseconds; done on
 * the loop it would stall every other connection of the worker. A job's
 * `work` runs on a pool thread and must touch only what the job owns; its
 * `done` runs later on the loop thread, where connection state may change. */
#ifndef WORKER_SYNCPOOL_H
#define WORKER_SYNCPOOL_H

#include <stdbool.h>

struct loop;
struct syncpool;

struct sync_job {
    void (*work)(struct sync_job *job);    /* pool thread */
    void (*done)(struct sync_job *job);    /* loop thread */
    struct sync_job *next;
};

struct syncpool *syncpool_create(struct loop *l, int nthreads);
void syncpool_submit(struct syncpool *p, struct sync_job *job);
/* Like syncpool_submit, unless the pool is held: then the job waits until
 * syncpool_hold(p, false). For work that answers a client (a publication),
 * which must not happen while the network switches under it; durability
 * work (checkpoints) goes to syncpool_submit and is never held. */
void syncpool_submit_held(struct syncpool *p, struct sync_job *job);
/* Hold (true) or release (false) the jobs of syncpool_submit_held.
 * Releasing submits every held job and returns how many there were. */
int  syncpool_hold(struct syncpool *p, bool hold);
/* True while syncpool_hold(p, true) is in force (loop thread only): work
 * that a caller might do on the loop itself must then be submitted held. */
bool syncpool_held(const struct syncpool *p);
/* Threads now: from syncpool_create's count (the floor), grown by jobs
 * that find every thread busy, up to 32; idle ones above the floor exit
 * after 10 s. */
int  syncpool_threads(struct syncpool *p);
/* Jobs queued or running; the worker waits for zero before exiting. */
int  syncpool_pending(const struct syncpool *p);
/* Stops the threads after the queue drains. */
void syncpool_destroy(struct syncpool *p);

#endif
