/* syncpool.c: a mutex+condvar queue in, an eventfd-signalled queue out.
 *
 * Condition variables are fine here: they never leave this process. The
 * eventfd is the only bridge back to the loop, so `done` callbacks run in
 * loop order like any other event. */
#include "worker/syncpool.h"
#include "worker/loop.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SYNCPOOL_MAX_THREADS 16

struct syncpool {
    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    struct sync_job *todo_head, *todo_tail;
    struct sync_job *done_head, *done_tail;
    int              pending;
    int              stopping;
    int              nthreads;
    pthread_t        threads[SYNCPOOL_MAX_THREADS];
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

static void *
thread_main(void *arg)
{
    struct syncpool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->todo_head == NULL && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->todo_head == NULL)
            break;
        struct sync_job *j = p->todo_head;
        p->todo_head = j->next;
        if (p->todo_head == NULL)
            p->todo_tail = NULL;
        pthread_mutex_unlock(&p->mu);

        j->work(j);

        pthread_mutex_lock(&p->mu);
        push(&p->done_head, &p->done_tail, j);
        uint64_t one = 1;
        ssize_t w = write(p->io.fd, &one, sizeof(one));
        (void)w;   /* an eventfd write only fails on counter overflow */
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
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
    struct syncpool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (nthreads > SYNCPOOL_MAX_THREADS)
        nthreads = SYNCPOOL_MAX_THREADS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->loop = l;
    p->io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->io.fn = on_done;
    p->io.data = p;
    if (p->io.fd < 0 || loop_add(l, &p->io, EPOLLIN) < 0)
        goto fail;
    for (; p->nthreads < nthreads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, thread_main, p))
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

int
syncpool_pending(const struct syncpool *p)
{
    return p->pending;
}

void
syncpool_destroy(struct syncpool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
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
