/* writeback.c: sync_file_range for a large upload's completed stretches,
 * on the sync pool, one job per upload at a time (worker/writeback.h). */
#define _GNU_SOURCE
#include "worker/writeback.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/syncpool.h"

bool
wb_plan_next(struct wb_plan *p, uint64_t written, struct wb_step *st)
{
    uint64_t whole = written / p->stretch * p->stretch;
    if (whole <= p->started)
        return false;
    /* Wait for what the previous job started: by now the disk has had a
     * stretch's worth of body time to write it, so the wait is short, and
     * at most two steps' worth of this upload is dirty at once. */
    st->wait_from = p->waited;
    st->wait_to = p->started;
    st->start_from = p->started;
    st->start_to = whole;
    p->waited = p->started;
    p->started = whole;
    return true;
}

struct writeback {
    struct sync_job  job;
    struct worker   *w;
    int              fd;
    uint64_t         base;
    struct wb_plan   plan;
    struct wb_step   step;           /* the job's, set before submit */
    bool             busy;           /* a job is in flight */
    bool             released;       /* the upload let go: job_done frees */
    _Atomic bool     failed;
    int              err;            /* the job's errno, for the log */
    uint64_t         pending;        /* written, noted while busy */
    void           (*settled)(void *);
    void            *settled_arg;
};

static void
wb_free(struct writeback *wb)
{
    close(wb->fd);
    free(wb);
}

static int
range(int fd, uint64_t base, uint64_t from, uint64_t to, unsigned flags)
{
    if (to <= from)
        return 0;
    int rc;
    do
        rc = sync_file_range(fd, (off64_t)(base + from),
                             (off64_t)(to - from), flags);
    while (rc < 0 && errno == EINTR);
    return rc;
}

static void
job_work(struct sync_job *job)
{
    struct writeback *wb = (struct writeback *)job;
    const struct wb_step *st = &wb->step;
    /* Start the new stretches first, so the disk has them queued while
     * we wait for the previous ones. */
    if (range(wb->fd, wb->base, st->start_from, st->start_to,
              SYNC_FILE_RANGE_WRITE) < 0
        || range(wb->fd, wb->base, st->wait_from, st->wait_to,
                 SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                 | SYNC_FILE_RANGE_WAIT_AFTER) < 0) {
        wb->err = errno;
        wb->failed = true;
    }
}

static void submit(struct writeback *wb, uint64_t written);

static void
job_done(struct sync_job *job)
{
    struct writeback *wb = (struct writeback *)job;
    wb->busy = false;
    if (wb->failed) {
        log_error("write-back of an upload's bytes: sync_file_range: %s",
                  strerror(wb->err));
        wb->w->stats->storage_errors[STATS_STORE_WRITE]++;
    } else {
        wb->w->stats->writeback_bytes += wb->step.start_to
                                         - wb->step.start_from;
    }
    if (wb->released) {
        wb_free(wb);
        return;
    }
    if (wb->settled != NULL) {
        void (*fn)(void *) = wb->settled;
        wb->settled = NULL;
        fn(wb->settled_arg);     /* may release wb: touch it no more */
        return;
    }
    submit(wb, wb->pending);     /* stretches completed meanwhile */
}

static void
submit(struct writeback *wb, uint64_t written)
{
    if (wb->failed || !wb_plan_next(&wb->plan, written, &wb->step))
        return;
    wb->busy = true;
    syncpool_submit(wb->w->pool, &wb->job);
}

struct writeback *
writeback_new(struct worker *w, int fd, uint64_t base, uint64_t stretch)
{
    struct writeback *wb = calloc(1, sizeof(*wb));
    if (wb == NULL)
        return NULL;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if ((wb->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        free(wb);
        return NULL;
    }
    wb->w = w;
    wb->base = base;
    wb->plan.stretch = stretch;
    wb->job.work = job_work;
    wb->job.done = job_done;
    return wb;
}

void
writeback_note(struct writeback *wb, uint64_t written)
{
    wb->pending = written;
    if (!wb->busy)
        submit(wb, written);
}

bool
writeback_busy(const struct writeback *wb)
{
    return wb->busy;
}

bool
writeback_failed(const struct writeback *wb)
{
    return wb->failed;
}

void
writeback_settle(struct writeback *wb, void (*fn)(void *), void *arg)
{
    wb->settled = fn;
    wb->settled_arg = arg;
}

void
writeback_release(struct writeback *wb)
{
    if (wb == NULL)
        return;
    wb->settled = NULL;
    if (wb->busy)
        wb->released = true;
    else
        wb_free(wb);
}
