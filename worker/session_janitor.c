/* session_janitor.c: keeping the session table true to the disk, from a
 * worker.
 *
 * repair is the table's callback for an entry whose lock holder died in
 * the middle of a change (shm/table_repair.c calls it with that lock held):
 * the manifest says what is really durable. The janitor (sess_janitor, on
 * the sync pool; sess_reclaim for a caller already off the loop) expires
 * idle sessions and removes their staging directories; a claim that finds
 * the table full runs it at once (session.c). */
#define _GNU_SOURCE
#include "worker/session_internal.h"

#include <stdlib.h>

#include "lib/conf/conf.h"
#include "lib/store/manifest.h"
#include "lib/util/log.h"
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
