/* pause.c: reacting to netmon's epoch.
 *
 * netmon bumps an epoch in shared memory and writes an eventfd every worker
 * watches edge-triggered (never read: one write wakes all). The loop, not a
 * signal handler, does the work: compare the epoch, checkpoint, arm a
 * timerfd for the end of the window. netmon may push the window later
 * without a new epoch (a flapping link), so the timer re-reads it before
 * resuming. */
#define _GNU_SOURCE
#include "worker/pause.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/util/log.h"
#include "shm/netstate.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/syncpool.h"
#include "worker/handler.h"

static void
arm(struct worker *w, int64_t until_ms)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = until_ms / 1000;
    its.it_value.tv_nsec = (until_ms % 1000) * 1000000;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    timerfd_settime(w->pause_timer.fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void
resume(struct worker *w)
{
    int64_t now = loop_now_ms(w->loop);
    int64_t held = now - w->pause_started_ms;
    int n = 0;

    w->paused = false;
    w->slot->paused = 0;
    /* Time inside the window never counts against a connection. */
    for (struct conn *c = w->conns; c; c = c->next) {
        c->deadline_ms += held;
        c->body_deadline_ms += held;
    }
    n = syncpool_hold(w->pool, false);
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_WRITE)
            conn_flush(c);
    }
    log_info("network settled after %lld ms: resuming (%d publication(s) "
             "released)", (long long)held, n);
}

static void
on_timer(struct loop_io *io, uint32_t events)
{
    struct worker *w = io->data;
    uint64_t ticks;
    (void)events;
    ssize_t r = read(io->fd, &ticks, sizeof(ticks));
    (void)r;
    if (!w->paused)
        return;
    int64_t until = atomic_load_explicit(&w->netmon->paused_until_ms,
                                         memory_order_acquire);
    if (until > loop_now_ms(w->loop)) {
        arm(w, until);            /* the window moved later: wait on */
        return;
    }
    resume(w);
}

static void
network_changed(struct worker *w)
{
    char what[128];
    int n = 0;

    netstate_last_change(w->netmon, what, sizeof(what));
    /* Checkpoint: whatever a client has sent survives what the network
     * does next, and a client that reconnects resumes from there. */
    for (struct conn *c = w->conns; c; c = c->next)
        if (c->handler && c->handler->checkpoint && c->state == CONN_BODY
            && c->handler->checkpoint(c) == 0)
            n++;
    w->stats->checkpoints += (uint64_t)n;
    if (!w->conf->uploadpauseonchange) {
        log_info("network change (%s): checkpointed %d upload(s)", what, n);
        return;
    }
    int64_t until = atomic_load_explicit(&w->netmon->paused_until_ms,
                                         memory_order_acquire);
    if (!w->paused)
        w->pause_started_ms = loop_now_ms(w->loop);
    w->paused = true;
    /* No publication into a network that is switching: the client would
     * get no answer and might retry a file that is already there. */
    syncpool_hold(w->pool, true);
    w->slot->paused = n;
    w->stats->uploads_paused += (uint64_t)n;
    arm(w, until);
    log_info("network change (%s): checkpointed and paused %d upload(s) "
             "for %lld ms", what, n,
             (long long)(until - loop_now_ms(w->loop)));
}

static void
on_wake(struct loop_io *io, uint32_t events)
{
    struct worker *w = io->data;
    (void)events;
    uint64_t epoch = atomic_load_explicit(&w->netmon->epoch,
                                          memory_order_acquire);
    if (epoch == w->netmon_epoch)
        return;
    w->netmon_epoch = epoch;
    network_changed(w);
}

int
pause_init(struct worker *w, int wake_fd)
{
    w->pause_timer.fd = -1;
    if (w->netmon == NULL || wake_fd < 0)
        return 0;
    w->netmon_epoch = atomic_load_explicit(&w->netmon->epoch,
                                           memory_order_acquire);
    w->netmon_io.fd = wake_fd;
    w->netmon_io.fn = on_wake;
    w->netmon_io.data = w;
    w->pause_timer.fd = timerfd_create(CLOCK_MONOTONIC,
                                       TFD_NONBLOCK | TFD_CLOEXEC);
    w->pause_timer.fn = on_timer;
    w->pause_timer.data = w;
    if (w->pause_timer.fd < 0
        || loop_add(w->loop, &w->pause_timer, EPOLLIN) < 0
        || loop_add(w->loop, &w->netmon_io, EPOLLIN | EPOLLET) < 0)
        return -1;
    return 0;
}

void
pause_fini(struct worker *w)
{
    if (w->pause_timer.fd >= 0) {
        loop_del(w->loop, &w->pause_timer);
        close(w->pause_timer.fd);
    }
    syncpool_hold(w->pool, false);  /* stopping: publish what is complete */
}
