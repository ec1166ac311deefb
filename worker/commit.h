/* commit: the group commit of storage.sync = "batch".
 *
 * A one-shot upload in "batch" mode is published on the sync pool by
 * store_publish_unsynced_dirs: its data synced (every upload on its own
 * pool thread, so those syncs run at once), then linked at its name. It is
 * then handed here, visible but not yet durable. The stage gathers such
 * uploads for up to storage.sync_window_ms, or until storage.sync_batch_max
 * of them are waiting, and syncs every distinct directory on their paths
 * once, all on the pool at the same time. Only then does each member's
 * `done` run, with result 0, or an errno after its name was taken back
 * (a directory sync failed: nothing may stay visible that a power cut
 * could take away). docs/recovery.md, "Sync modes".
 *
 * Loop thread only, like everything of the worker but the pool's work. */
#ifndef WORKER_COMMIT_H
#define WORKER_COMMIT_H

#include <stddef.h>

struct worker;
struct commit;

struct commit_member {
    const char *rel;            /* published path, below w->root_fd */
    int         data_fd;        /* the file, to take its name back */
    int         result;         /* set before done: 0 or an errno */
    char        err[160];       /* what failed, when result != 0 */
    void      (*done)(struct commit_member *m);
    struct commit_member *next; /* the stage's */
};

struct commit *commit_create(struct worker *w);
void commit_add(struct commit *c, struct commit_member *m);
/* Members waiting or being synced: the worker exits only at zero. */
int  commit_pending(const struct commit *c);
/* The loop has stopped: sync what is still gathering now (before the pool
 * is destroyed, which runs the dones of what it finishes). */
void commit_flush(struct commit *c);
/* After the pool is destroyed. */
void commit_destroy(struct commit *c);

#endif
