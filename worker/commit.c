/* commit.c: gather published-but-unsynced uploads, sync their directories
 * once per group, then answer them (see commit.h). */
#include "worker/commit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/store/publish.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/loop.h"
#include "worker/syncpool.h"

struct batch;

/* One directory of a group, synced by its own pool job. */
struct dir_job {
    struct sync_job job;
    struct batch   *b;
    char           *dir;        /* below root_fd; "" is root_fd */
    bool            holds_file; /* some member's own directory */
    int             result;     /* 0 or errno */
    char            err[160];
};

struct batch {
    struct commit        *c;
    struct commit_member *members;
    struct dir_job       *dirs;
    size_t                ndirs, cap;
    size_t                left;     /* dir jobs not done yet */
};

struct commit {
    struct worker        *w;
    struct commit_member *open_head, *open_tail;  /* gathering */
    int                   nopen;
    int                   inflight;     /* groups being synced */
    int                   pending;      /* members, gathering or syncing */
    struct loop_io        timer;
    bool                  armed;
};

static void close_group(struct commit *c);

/* dir is a proper prefix directory of rel ("" of every rel). */
static bool
under(const char *rel, const char *dir)
{
    size_t n = strlen(dir);

    return n == 0 || (strncmp(rel, dir, n) == 0 && rel[n] == '/');
}

static int
add_dir(struct batch *b, const char *rel, size_t len, bool holds_file)
{
    for (size_t i = 0; i < b->ndirs; i++)
        if (strlen(b->dirs[i].dir) == len
            && memcmp(b->dirs[i].dir, rel, len) == 0) {
            b->dirs[i].holds_file |= holds_file;
            return 0;
        }
    if (b->ndirs == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 8;
        struct dir_job *d = realloc(b->dirs, cap * sizeof(*d));
        if (d == NULL)
            return -1;
        b->dirs = d;
        b->cap = cap;
    }
    struct dir_job *d = &b->dirs[b->ndirs];
    memset(d, 0, sizeof(*d));
    if ((d->dir = strndup(rel, len)) == NULL)
        return -1;
    d->b = b;
    d->holds_file = holds_file;
    b->ndirs++;
    return 0;
}

/* Every directory from the root down to rel's own, as store_publish
 * would have synced them one upload at a time. */
static int
add_dirs_of(struct batch *b, const char *rel)
{
    const char *last = strrchr(rel, '/');

    if (add_dir(b, rel, 0, last == NULL) < 0)
        return -1;
    for (const char *p = strchr(rel, '/'); p; p = strchr(p + 1, '/'))
        if (add_dir(b, rel, (size_t)(p - rel), p == last) < 0)
            return -1;
    return 0;
}

static void
dir_work(struct sync_job *job)
{
    struct dir_job *d = (struct dir_job *)job;
    struct worker  *w = d->b->c->w;

    if (store_sync_dir(w->root_fd, d->dir, d->holds_file, d->err,
                       sizeof(d->err)) == 0)
        return;
    d->result = errno ? errno : EIO;
    /* Members are read-only while their group syncs. */
    for (struct commit_member *m = d->b->members; m; m = m->next)
        if (under(m->rel, d->dir))
            store_unpublish(w->root_fd, m->rel, m->data_fd);
}

static void
finish_group(struct batch *b)
{
    struct commit *c = b->c;

    for (struct commit_member *m = b->members, *next; m; m = next) {
        next = m->next;
        m->result = 0;
        for (size_t i = 0; i < b->ndirs && m->result == 0; i++)
            if (b->dirs[i].result != 0 && under(m->rel, b->dirs[i].dir)) {
                m->result = b->dirs[i].result;
                snprintf(m->err, sizeof(m->err), "%s", b->dirs[i].err);
            }
        c->pending--;
        m->done(m);             /* may free m */
    }
    for (size_t i = 0; i < b->ndirs; i++)
        free(b->dirs[i].dir);
    free(b->dirs);
    free(b);
    c->inflight--;
    /* Window 0: what gathered while this group synced goes next. */
    if (c->w->conf->sync_window_ms == 0 && c->nopen > 0)
        close_group(c);
}

static void
dir_done(struct sync_job *job)
{
    struct dir_job *d = (struct dir_job *)job;
    struct batch   *b = d->b;

    if (--b->left == 0)
        finish_group(b);
}

static void
disarm(struct commit *c)
{
    struct itimerspec off;

    if (!c->armed)
        return;
    memset(&off, 0, sizeof(off));
    timerfd_settime(c->timer.fd, 0, &off, NULL);
    c->armed = false;
}

/* Out of memory for the directory list: nothing of the group may stay
 * visible. Rare enough to take the names back right here. */
static void
fail_group(struct batch *b)
{
    struct commit *c = b->c;

    for (struct commit_member *m = b->members, *next; m; m = next) {
        next = m->next;
        store_unpublish(c->w->root_fd, m->rel, m->data_fd);
        m->result = ENOMEM;
        snprintf(m->err, sizeof(m->err), "group commit: out of memory");
        c->pending--;
        m->done(m);
    }
    for (size_t i = 0; i < b->ndirs; i++)
        free(b->dirs[i].dir);
    free(b->dirs);
    free(b);
}

static void arm(struct commit *c, int ms);

static void
close_group(struct commit *c)
{
    struct batch *b;

    disarm(c);
    if (c->nopen == 0)
        return;
    if ((b = calloc(1, sizeof(*b))) == NULL) {
        arm(c, 1);              /* try again in a moment */
        return;
    }
    b->c = c;
    b->members = c->open_head;
    c->open_head = c->open_tail = NULL;
    c->nopen = 0;
    c->w->stats->sync_batches++;
    for (struct commit_member *m = b->members; m; m = m->next)
        if (add_dirs_of(b, m->rel) < 0) {
            fail_group(b);
            return;
        }
    c->inflight++;
    b->left = b->ndirs;
    for (size_t i = 0; i < b->ndirs; i++) {
        b->dirs[i].job.work = dir_work;
        b->dirs[i].job.done = dir_done;
        syncpool_submit(c->w->pool, &b->dirs[i].job);
    }
}

static void
on_timer(struct loop_io *io, uint32_t events)
{
    struct commit *c = io->data;
    uint64_t       n;
    ssize_t        r = read(io->fd, &n, sizeof(n));

    (void)events;
    (void)r;
    c->armed = false;
    close_group(c);
}

static void
arm(struct commit *c, int ms)
{
    struct itimerspec at;

    memset(&at, 0, sizeof(at));
    at.it_value.tv_sec = ms / 1000;
    at.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    if (timerfd_settime(c->timer.fd, 0, &at, NULL) == 0)
        c->armed = true;
}

void
commit_add(struct commit *c, struct commit_member *m)
{
    m->next = NULL;
    if (c->open_tail)
        c->open_tail->next = m;
    else
        c->open_head = m;
    c->open_tail = m;
    c->nopen++;
    c->pending++;
    if (c->nopen >= c->w->conf->sync_batch_max)
        close_group(c);
    else if (c->w->conf->sync_window_ms == 0) {
        if (c->inflight == 0)
            close_group(c);
    } else if (!c->armed)
        arm(c, c->w->conf->sync_window_ms);
}

void
commit_flush(struct commit *c)
{
    if (c != NULL)
        close_group(c);
}

int
commit_pending(const struct commit *c)
{
    return c ? c->pending : 0;
}

struct commit *
commit_create(struct worker *w)
{
    struct commit *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->w = w;
    c->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    c->timer.fn = on_timer;
    c->timer.data = c;
    if (c->timer.fd < 0 || loop_add(w->loop, &c->timer, EPOLLIN) < 0) {
        if (c->timer.fd >= 0)
            close(c->timer.fd);
        free(c);
        return NULL;
    }
    return c;
}

void
commit_destroy(struct commit *c)
{
    if (c == NULL)
        return;
    loop_del(c->w->loop, &c->timer);
    close(c->timer.fd);
    free(c);
}
