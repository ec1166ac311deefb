/* test_syncpool.c: the pool grows to the jobs in flight, and every job's
 * done runs on the loop. */
#include "tests/unit/unit.h"
#include "worker/loop.h"
#include "worker/syncpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#define NJOBS 12

struct rendezvous {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             running;    /* jobs inside work at once */
    int             done;       /* done callbacks on the loop */
    bool            all_met;    /* every job saw all NJOBS running */
    struct loop    *loop;
};

struct job {
    struct sync_job    job;
    struct rendezvous *r;
    bool               met;
};

/* Each job waits until all NJOBS run at the same time: only a pool that
 * grew past its floor of 2 gets there (a deadlock guard of 20 s ends the
 * wait otherwise, and the test fails on `met`). */
static void
work(struct sync_job *sj)
{
    struct job        *j = (struct job *)sj;
    struct rendezvous *r = j->r;
    struct timespec    until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&r->mu);
    r->running++;
    pthread_cond_broadcast(&r->cv);
    while (r->running < NJOBS
           && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0)
        ;
    j->met = r->running >= NJOBS;
    pthread_mutex_unlock(&r->mu);
}

static void
done(struct sync_job *sj)
{
    struct job *j = (struct job *)sj;

    j->r->all_met &= j->met;
    if (++j->r->done == NJOBS)
        loop_stop(j->r->loop);
}

static void
test_grows_to_the_load(void)
{
    struct rendezvous r = { PTHREAD_MUTEX_INITIALIZER,
                            PTHREAD_COND_INITIALIZER, 0, 0, true, NULL };
    struct job        jobs[NJOBS];
    struct syncpool  *p;

    r.loop = loop_create();
    CU_ASSERT_FATAL(r.loop != NULL);
    p = syncpool_create(r.loop, 2);
    CU_ASSERT_FATAL(p != NULL);
    CU_ASSERT_EQUAL(syncpool_threads(p), 2);
    for (int i = 0; i < NJOBS; i++) {
        jobs[i] = (struct job){ { work, done, NULL }, &r, false };
        syncpool_submit(p, &jobs[i].job);
    }
    CU_ASSERT_EQUAL(loop_run(r.loop), 0);
    CU_ASSERT_EQUAL(r.done, NJOBS);
    CU_ASSERT(r.all_met);
    CU_ASSERT(syncpool_threads(p) >= NJOBS);
    CU_ASSERT_EQUAL(syncpool_pending(p), 0);
    syncpool_destroy(p);
    loop_destroy(r.loop);
}

static CU_TestInfo tests[] = {
    { "grows past its floor to the jobs in flight", test_grows_to_the_load },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("syncpool", NULL, NULL, tests);
