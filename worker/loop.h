/* loop: a tiny epoll event loop (in the spirit of redis's ae.c).
 *
 * Each watched fd is described by a struct loop_io the owner embeds in its
 * own object; epoll hands that pointer back, so dispatch needs no lookup.
 * Level-triggered: an owner that cannot make progress removes the interest
 * instead of leaving a hot fd. A once-a-second tick drives timeouts. */
#ifndef WORKER_LOOP_H
#define WORKER_LOOP_H

#include <stdint.h>
#include <time.h>

struct loop;
struct loop_io;

typedef void loop_io_fn(struct loop_io *io, uint32_t events);
typedef void loop_tick_fn(void *data);

struct loop_io {
    int         fd;
    uint32_t    events;      /* current interest: EPOLLIN | EPOLLOUT */
    loop_io_fn *fn;
    void       *data;
};

struct loop *loop_create(void);
void loop_destroy(struct loop *l);
int  loop_add(struct loop *l, struct loop_io *io, uint32_t events);
int  loop_add_exclusive(struct loop *l, struct loop_io *io);  /* listeners */
int  loop_set(struct loop *l, struct loop_io *io, uint32_t events);
void loop_del(struct loop *l, struct loop_io *io);
void loop_on_tick(struct loop *l, loop_tick_fn *fn, void *data);
/* Called after each batch of events: where objects closed during the batch
 * are freed, since a later event of the same batch may still name them. */
void loop_on_batch_end(struct loop *l, loop_tick_fn *fn, void *data);
/* Runs until loop_stop; returns 0, or -1 if epoll_wait failed. */
int  loop_run(struct loop *l);
void loop_stop(struct loop *l);
/* Which batch of events is being handled: 1, 2, ... (0 before the first),
 * for work done once per batch. */
uint64_t loop_turn(const struct loop *l);
/* CLOCK_MONOTONIC milliseconds, cached per loop iteration. */
int64_t loop_now_ms(const struct loop *l);
/* Wall-clock seconds (CLOCK_REALTIME), read with the above: what a Date
 * header says, with no clock call per answer. */
time_t  loop_now_wall(const struct loop *l);

#endif
