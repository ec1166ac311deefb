/* loop.c: epoll dispatch plus a coarse tick for timeouts.
 *
 * Timeouts in this server are seconds long (header, body-idle, keep-alive),
 * so a per-second sweep over connections is precise enough and far simpler
 * than a timer heap: one pass over a few thousand structs costs microseconds. */
#include "worker/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_BATCH 256

struct loop {
    int           epfd;
    int           running;
    int64_t       now_ms;
    uint64_t      turn;
    time_t        now_wall;
    int64_t       next_tick_ms;
    loop_tick_fn *tick;
    void         *tick_data;
    loop_tick_fn *batch_end;
    void         *batch_data;
};

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Both clocks once per loop iteration (vDSO calls, no syscall). */
static void
update_clocks(struct loop *l)
{
    struct timespec ts;
    l->now_ms = mono_ms();
    clock_gettime(CLOCK_REALTIME, &ts);
    l->now_wall = ts.tv_sec;
}

struct loop *
loop_create(void)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    update_clocks(l);
    l->next_tick_ms = l->now_ms + 1000;
    return l;
}

void
loop_destroy(struct loop *l)
{
    close(l->epfd);
    free(l);
}

int
loop_add(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = io };
    io->events = events;
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
}

int
loop_add_exclusive(struct loop *l, struct loop_io *io)
{
    /* EPOLLEXCLUSIVE: one sleeping worker is woken per new connection
     * instead of all of them (the thundering herd nginx also avoids). */
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
                              .data.ptr = io };
    io->events = EPOLLIN;
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
}

int
loop_set(struct loop *l, struct loop_io *io, uint32_t events)
{
    if (io->events == events)
        return 0;
    struct epoll_event ev = { .events = events, .data.ptr = io };
    io->events = events;
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void
loop_del(struct loop *l, struct loop_io *io)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->events = 0;
}

void
loop_on_tick(struct loop *l, loop_tick_fn *fn, void *data)
{
    l->tick = fn;
    l->tick_data = data;
}

void
loop_on_batch_end(struct loop *l, loop_tick_fn *fn, void *data)
{
    l->batch_end = fn;
    l->batch_data = data;
}

uint64_t
loop_turn(const struct loop *l)
{
    return l->turn;
}

int64_t
loop_now_ms(const struct loop *l)
{
    return l->now_ms;
}

time_t
loop_now_wall(const struct loop *l)
{
    return l->now_wall;
}

void
loop_stop(struct loop *l)
{
    l->running = 0;
}

int
loop_run(struct loop *l)
{
    struct epoll_event evs[LOOP_BATCH];

    l->running = 1;
    while (l->running) {
        int wait = (int)(l->next_tick_ms - l->now_ms);
        if (wait < 0)
            wait = 0;
        int n = epoll_wait(l->epfd, evs, LOOP_BATCH, wait);
        if (n < 0 && errno != EINTR)
            return -1;
        update_clocks(l);
        l->turn++;
        for (int i = 0; i < n; i++) {
            struct loop_io *io = evs[i].data.ptr;
            io->fn(io, evs[i].events);
        }
        if (l->batch_end)
            l->batch_end(l->batch_data);
        if (l->now_ms >= l->next_tick_ms) {
            l->next_tick_ms = l->now_ms + 1000;
            if (l->tick)
                l->tick(l->tick_data);
        }
    }
    return 0;
}
