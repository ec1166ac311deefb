/* syncpool.c: a mutex+condvar queue in, an eventfd-signalled queue out.
 *
 * Condition variables are fine here: they never leave this process. The
 * eventfd is the only bridge back to the loop, so `done` callbacks run in
 * loop order like any other event. */
#include "worker/syncpool.h"
#include "worker/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Threads: syncpool_create's count is the floor; a job that finds no idle
 * thread starts one more, up to SYNCPOOL_MAX_THREADS; a thread above the
 * floor that found nothing to do for SYNCPOOL_IDLE_S exits. Concurrent
 * fsyncs on a journaled filesystem share its commits, so the pool grows to
 * what the load has in flight instead of queueing behind a fixed few. */
#define SYNCPOOL_MAX_THREADS 32
#define SYNCPOOL_IDLE_S      10

enum slot_state { SLOT_FREE, SLOT_RUNNING, SLOT_EXITED };

struct syncpool;

struct slot {
    pthread_t        tid;
    enum slot_state  state;     /* under mu */
    struct syncpool *p;
};

struct syncpool {
    pthread_mutex_t  mu;
    pthread_cond_t   cv;        /* CLOCK_MONOTONIC */
    struct sync_job *todo_head, *todo_tail;
    struct sync_job *done_head, *done_tail;
    int              pending;
    int              stopping;
    int              nthreads, min_threads, idle;   /* under mu */
    int              queued;    /* jobs in todo, under mu */
    struct slot      slots[SYNCPOOL_MAX_THREADS];
    struct loop_io   io;
    struct loop     *loop;
    bool             held;      /* loop thread only, like `held_jobs` */
    struct sync_job *held_jobs; /* syncpool_submit_held while held */
};

static void
push(struct sync_job **head, struct sync_job **tail, struct sync_job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* Waits for a job; false when this thread should exit (stopping, or idle
 * too long above the floor). Called and returns with mu held. */
static bool
wait_for_job(struct syncpool *p)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += SYNCPOOL_IDLE_S;
    while (p->todo_head == NULL && !p->stopping) {
        p->idle++;
        int rc = pthread_cond_timedwait(&p->cv, &p->mu, &until);
        p->idle--;
        if (rc == ETIMEDOUT && p->todo_head == NULL
            && p->nthreads > p->min_threads)
            return false;
    }
    return p->todo_head != NULL;
}

static void *
thread_main(void *arg)
{
    struct slot     *me = arg;
    struct syncpool *p = me->p;

    pthread_mutex_lock(&p->mu);
    while (wait_for_job(p)) {
        struct sync_job *j = p->todo_head;
        p->todo_head = j->next;
        if (p->todo_head == NULL)
            p->todo_tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->mu);

        j->work(j);

        pthread_mutex_lock(&p->mu);
        push(&p->done_head, &p->done_tail, j);
        uint64_t one = 1;
        ssize_t w = write(p->io.fd, &one, sizeof(one));
        (void)w;   /* an eventfd write only fails on counter overflow */
    }
    p->nthreads--;
    me->state = SLOT_EXITED;    /* joined by the next start, or destroy */
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* One more thread, under mu. Fails quietly: the threads there are will
 * get to the job. */
static int
start_thread(struct syncpool *p)
{
    for (int i = 0; i < SYNCPOOL_MAX_THREADS; i++) {
        struct slot *s = &p->slots[i];
        if (s->state == SLOT_RUNNING)
            continue;
        if (s->state == SLOT_EXITED)
            pthread_join(s->tid, NULL);   /* it already let go of mu */
        s->state = SLOT_FREE;
        s->p = p;
        if (pthread_create(&s->tid, NULL, thread_main, s) != 0)
            return -1;
        s->state = SLOT_RUNNING;
        p->nthreads++;
        return 0;
    }
    return -1;
}

static void
on_done(struct loop_io *io, uint32_t events)
{
    struct syncpool *p = io->data;
    uint64_t n;
    (void)events;
    ssize_t r = read(io->fd, &n, sizeof(n));
    (void)r;

    pthread_mutex_lock(&p->mu);
    struct sync_job *j = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);

    while (j) {
        struct sync_job *next = j->next;
        p->pending--;
        j->done(j);      /* may free j */
        j = next;
    }
}

struct syncpool *
syncpool_create(struct loop *l, int nthreads)
{
    struct syncpool   *p = calloc(1, sizeof(*p));
    pthread_condattr_t ca;

    if (p == NULL)
        return NULL;
    if (nthreads > SYNCPOOL_MAX_THREADS)
        nthreads = SYNCPOOL_MAX_THREADS;
    p->min_threads = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->loop = l;
    p->io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->io.fn = on_done;
    p->io.data = p;
    if (p->io.fd < 0 || loop_add(l, &p->io, EPOLLIN) < 0)
        goto fail;
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (rc == 0 && p->nthreads < nthreads)
        rc = start_thread(p);
    pthread_mutex_unlock(&p->mu);
    if (rc < 0)
        goto fail;
    return p;
fail:
    syncpool_destroy(p);
    return NULL;
}

void
syncpool_submit(struct syncpool *p, struct sync_job *job)
{
    pthread_mutex_lock(&p->mu);
    push(&p->todo_head, &p->todo_tail, job);
    p->pending++;
    p->queued++;
    /* More jobs waiting than idle threads to take them. */
    if (p->queued > p->idle && p->nthreads < SYNCPOOL_MAX_THREADS)
        start_thread(p);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void
syncpool_submit_held(struct syncpool *p, struct sync_job *job)
{
    if (!p->held) {
        syncpool_submit(p, job);
        return;
    }
    job->next = p->held_jobs;
    p->held_jobs = job;
}

int
syncpool_hold(struct syncpool *p, bool hold)
{
    int n = 0;
    p->held = hold;
    if (hold)
        return 0;
    while (p->held_jobs) {
        struct sync_job *j = p->held_jobs;
        p->held_jobs = j->next;
        syncpool_submit(p, j);
        n++;
    }
    return n;
}

bool
syncpool_held(const struct syncpool *p)
{
    return p->held;
}

int
syncpool_pending(const struct syncpool *p)
{
    return p->pending;
}

int
syncpool_threads(struct syncpool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void
syncpool_destroy(struct syncpool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    /* Slots change only under mu by threads of this pool, and none starts
     * any more: every thread ends as EXITED, and is joined here. */
    for (int i = 0; i < SYNCPOOL_MAX_THREADS; i++)
        if (p->slots[i].state != SLOT_FREE)
            pthread_join(p->slots[i].tid, NULL);
    if (p->io.fd >= 0)
        on_done(&p->io, 0);       /* completions nobody has collected */
    if (p->io.fd >= 0) {
        loop_del(p->loop, &p->io);
        close(p->io.fd);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
