/* session_janitor.c: keeping the session table true to the disk, from a
 * worker.
 *
 * repair is the table's callback for an entry whose lock holder died in
 * the middle of a change (shm/table_repair.c calls it with that lock held):
 * the manifest says what is really durable. The janitor (sess_janitor, on
 * the sync pool; sess_reclaim for a caller already off the loop) expires
 * idle sessions and removes their staging directories; a claim that finds
 * the table full runs it at once (session.c). sess_forget_dead releases
 * what a worker the master reaped still held in the table: the master
 * queues the pid and never takes a table lock itself. */
#define _GNU_SOURCE
#include "worker/session_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/store/manifest.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/syncpool.h"

/* After a worker died holding an entry's lock mid-change: the manifest says
 * what is really durable. Runs with that lock held; no shm_table_* here. */
static int
repair(const uint8_t key[SHM_KEY_LEN], struct shm_rebuild *out, void *arg)
{
    struct worker *w = arg;
    static __thread struct manifest_state st;
    struct manifest *m;
    char err[256];

    if (manifest_open(w->staging_fd, key, &m, err, sizeof(err)) < 0)
        return -1;
    int rc = manifest_load(m, 0, &st, err, sizeof(err));
    manifest_close(m);
    if (rc < 0)
        return -1;
    out->state = st.complete ? SHM_DONE : st.aborted ? SHM_DOOMED : SHM_ACTIVE;
    out->size = st.size == MANIFEST_SIZE_UNKNOWN ? SHM_SIZE_UNKNOWN : st.size;
    out->held = st.held;
    log_warn("repaired session %s from its manifest after a worker died",
             st.header.path);
    return 0;
}

void
sess_setup(struct worker *w)
{
    shm_table_set_repair(w->table, repair, w);
    sess_owners_init(w);
}

void
sess_teardown(struct worker *w)
{
    sess_owners_fini(w);
}

struct janitor {
    struct sync_job job;
    struct worker  *w;
    int             freed;
};

static int
expire_one(const uint8_t key[SHM_KEY_LEN], void *arg)
{
    struct worker *w = arg;
    char err[256];
    if (w->owners != NULL)
        return sess_owner_expire(w, key);
    return manifest_remove(w->staging_fd, key, err, sizeof(err)) < 0 ? -1 : 0;
}

int
sess_reclaim(struct worker *w, char *err, size_t errlen)
{
    return shm_table_expire_scan(w->table, sess_now(), w->conf->sessiontimeout,
                                 expire_one, w, err, errlen);
}

static void
janitor_work(struct sync_job *job)
{
    struct janitor *j = (struct janitor *)job;
    char err[256];
    j->freed = sess_reclaim(j->w, err, sizeof(err));
    if (j->freed < 0)
        log_warn("session expiry: %s", err);
}

static void
janitor_done(struct sync_job *job)
{
    struct janitor *j = (struct janitor *)job;
    if (j->freed > 0)
        log_info("expired %d idle upload session(s)", j->freed);
    j->w->janitor_running = false;
    free(j);
}

void
sess_janitor(struct worker *w)
{
    struct janitor *j;
    if (w->janitor_running || (j = calloc(1, sizeof(*j))) == NULL)
        return;
    j->w = w;
    j->job.work = janitor_work;
    j->job.done = janitor_done;
    w->janitor_running = true;
    /* The scan removes directories and fsyncs: off the loop. */
    syncpool_submit(w->pool, &j->job);
}

/* A lock held longer than this by a live process is not a critical
 * section of a few instructions but a stopped or hung holder: skip that
 * entry rather than hold up the pool (and this worker's shutdown). */
#define FORGET_WAIT_MS 50

struct forget {
    struct sync_job job;
    struct worker  *w;
};

/* Every pid the master queued: release what it held in the table, then
 * free the claims that became doomed. Each entry lock may make us wait up
 * to the table's lock timeout if its holder is stopped or hung, so this
 * runs off the loop (or at start, before the loop, with a short timeout). */
static void
forget_queued(struct worker *w, int timeout_ms)
{
    char  err[256];
    pid_t pid;

    while ((pid = stats_dead_take(w->stats, w->slot)) != 0) {
        /* Reused by a process of ours since it was queued: the leases
         * are that process's now. The dead one's end at their deadlines. */
        int n = stats_pid_live(w->stats, pid) ? 0
              : shm_table_forget_pid(w->table, pid, timeout_ms, err,
                                     sizeof(err));
        /* The claims it was creating are doomed now: free them, or a
         * client retrying the same upload is told "busy" until the
         * janitor comes round. Also when a worker died doing this. */
        if (n >= 0 && (n > 0 || atomic_exchange(&w->stats->dead_sweep, 0)))
            n = sess_reclaim(w, err, sizeof(err)) < 0 ? -1 : n;
        atomic_store(&w->slot->forgetting, 0);
        if (n < 0)
            log_warn("session table after worker pid %d died: %s", (int)pid,
                     err);
        else if (n > 0)
            log_info("released %d upload session(s) held by worker pid %d, "
                     "which died", n, (int)pid);
    }
}

static void
forget_work(struct sync_job *job)
{
    forget_queued(((struct forget *)job)->w, FORGET_WAIT_MS);
}

static void
forget_done(struct sync_job *job)
{
    struct forget *f = (struct forget *)job;

    f->w->forget_running = false;
    free(f);
}

void
sess_forget_dead(struct worker *w)
{
    struct forget *f;

    if (w->table == NULL || w->forget_running || w->stopping)
        return;
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return;                          /* the next tick tries again */
    f->w = w;
    f->job.work = forget_work;
    f->job.done = forget_done;
    w->forget_running = true;
    syncpool_submit(w->pool, &f->job);
}

void
sess_forget_dead_now(struct worker *w, int timeout_ms)
{
    if (w->table == NULL)
        return;
    forget_queued(w, timeout_ms);
    /* Another new worker may be doing it (all died at once): a client
     * retrying now would be told "busy" by us meanwhile. Bounded: a
     * cleanup stuck behind a hung lock holder must not keep us out. */
    for (int i = 0; i < 200 && stats_dead_pending(w->stats); i++)
        usleep(10000);
}
