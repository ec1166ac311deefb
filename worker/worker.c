/* worker.c: a worker process's main: its context, signals and shutdown.
 *
 * Signals arrive through a signalfd in the loop, so nothing runs in a
 * handler. TERM/INT: graceful (stop accepting, close idle keep-alive
 * connections, finish in-flight requests within shutdown_grace). QUIT: exit
 * now. The master-alive pipe turns a dead master into a graceful stop, so
 * orphaned workers never keep serving with nobody to supervise them. */
#define _GNU_SOURCE
#include "worker/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/conf/conf.h"
#include "lib/util/syncsite.h"
#include "lib/util/linesink.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/accesslog.h"
#include "worker/conn.h"
#include "worker/conn_limit.h"
#include "worker/pause.h"
#include "worker/router.h"
#include "worker/session.h"
#include "worker/storage.h"
#include "worker/commit.h"
#include "worker/syncpool.h"

#define SYNC_THREADS 2
#define JANITOR_MS   30000

static void
on_listener(struct loop_io *io, uint32_t events)
{
    struct listener *l = (struct listener *)io;
    struct worker *w = io->data;
    (void)events;
    /* An event of this batch that arrived before the listener was taken
     * off the loop (or closed: its fd number may be reused by now). */
    if (!w->accepting)
        return;
    conn_accept(w, io->fd, l->tls);
}

static void
stop_accepting(struct worker *w)
{
    if (!w->accepting)
        return;
    for (size_t i = 0; i < w->nlisten; i++)
        loop_del(w->loop, &w->listeners[i].io);
    w->accepting = false;
}

/* Stopping for good: close our copies of the listening sockets. The kernel
 * refuses new connections (ECONNREFUSED) only once every process holding
 * them has closed them; the master closes its own on stop, and keeps them
 * on reload for the next generation. */
static void
close_listeners(struct worker *w)
{
    stop_accepting(w);
    for (size_t i = 0; i < w->nlisten; i++) {
        close(w->listeners[i].io.fd);
        w->listeners[i].io.fd = -1;
    }
    w->nlisten = 0;
}

static void
begin_stop(struct worker *w, const char *why)
{
    if (w->stopping)
        return;
    log_info("%s: finishing %d connection(s)", why, w->nconns);
    w->stopping = true;
    w->stop_deadline_ms = loop_now_ms(w->loop)
                        + (int64_t)w->conf->shutdown_grace * 1000;
    close_listeners(w);
    conn_close_idle(w);
}

static void
on_signal(struct loop_io *io, uint32_t events)
{
    struct worker *w = io->data;
    struct signalfd_siginfo si;
    (void)events;
    while (read(io->fd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            begin_stop(w, "stop requested");
            break;
        case SIGQUIT:
            loop_stop(w->loop);
            break;
        case SIGUSR1:
            log_reopen();
            if (linesink_reopen(w->alog) < 0)
                log_warn("cannot reopen the access log %s: %s (still "
                         "writing to the old file)", w->conf->access_log,
                         strerror(errno));
            break;
        default:
            break;
        }
    }
}

static void
on_parent(struct loop_io *io, uint32_t events)
{
    struct worker *w = io->data;
    char b;
    (void)events;
    if (read(io->fd, &b, 1) <= 0) {      /* EOF: the master is gone */
        loop_del(w->loop, io);
        begin_stop(w, "master exited");
    }
}

static void
on_reaped(struct loop_io *io, uint32_t events)
{
    (void)events;
    sess_forget_dead(io->data);
}

static void
on_tick(void *data)
{
    struct worker *w = data;
    conn_tick(w);
    conn_memory_tick(w);
    if (!w->stopping)
        storage_tick(w);
    /* Any worker may release what a dead one held: not only worker 0,
     * which may be the one stopped or hung. */
    if (w->table)
        sess_forget_dead(w);
    /* One janitor per generation is enough: worker 0 sweeps. */
    if (w->index == 0 && w->table && !w->stopping
        && loop_now_ms(w->loop) >= w->next_janitor_ms) {
        w->next_janitor_ms = loop_now_ms(w->loop) + JANITOR_MS;
        sess_janitor(w);
    }
    if (w->stopping) {
        conn_close_idle(w);
        if ((w->nconns == 0 && syncpool_pending(w->pool) == 0
             && commit_pending(w->commit) == 0)
            || loop_now_ms(w->loop) >= w->stop_deadline_ms)
            loop_stop(w->loop);
    }
    /* Below the connection limit again: resume accepting (nginx sheds the
     * same way, ngx_accept_disabled). */
    if (!w->stopping && !w->accepting
        && w->nconns < w->conf->max_connections * 7 / 8) {
        for (size_t i = 0; i < w->nlisten; i++)
            loop_add_exclusive(w->loop, &w->listeners[i].io);
        w->accepting = true;
    }
    if (w->accepting && w->nconns >= w->conf->max_connections)
        stop_accepting(w);
    linesink_flush(w->alog);    /* lines of timeouts closed above */
}

static void
on_batch_end(void *data)
{
    struct worker *w = data;
    conn_free_dead(w);
    /* One write for every line of this turn: docs/performance.md. */
    linesink_flush(w->alog);
    if (w->stopping && w->nconns == 0 && syncpool_pending(w->pool) == 0
        && commit_pending(w->commit) == 0)
        loop_stop(w->loop);
}

static int
setup_signals(struct worker *w)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGHUP);     /* the master's; ignore here */
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    w->sig_io.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    w->sig_io.fn = on_signal;
    w->sig_io.data = w;
    if (w->sig_io.fd < 0)
        return -1;
    return loop_add(w->loop, &w->sig_io, EPOLLIN);
}

/* The configured secrets, each with its HMAC state derived now: once
 * per generation instead of once per signature check. */
static int
prepare_keys(struct worker *w)
{
    const struct conf *cf = w->conf;

    w->keys = calloc(cf->nsecrets ? cf->nsecrets : 1, sizeof(*w->keys));
    if (w->keys == NULL)
        return -1;
    for (size_t i = 0; i < cf->nsecrets; i++) {
        w->keys[i].key = cf->secrets[i].key;
        w->keys[i].len = cf->secrets[i].len;
        if (auth_key_prepare(&w->keys[i]) < 0)
            log_warn("security.secrets[%zu]: cannot prepare its HMAC state; "
                     "deriving it for each check", i);
    }
    w->nkeys = cf->nsecrets;
    return 0;
}

static void
release_keys(struct worker *w)
{
    for (size_t i = 0; i < w->nkeys; i++)
        auth_key_release(&w->keys[i]);
    free(w->keys);
    w->keys = NULL;
    w->nkeys = 0;
}

int
worker_run(const struct worker_init *init)
{
    struct worker w;
    char role[32];

    memset(&w, 0, sizeof(w));
    snprintf(role, sizeof(role), "worker %d", init->index);
    log_set_role(role);
    /* The master may die without closing the pipe's write end in a way we
     * notice quickly (e.g. SIGKILL while we block); ask for a signal too. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    w.conf = init->conf;
    w.stats = init->stats;
    w.slot = &init->stats->slots[init->stats_slot];
    w.peers = init->peers;
    w.row = init->stats_slot;
    w.root_fd = init->root_fd;
    w.staging_fd = init->staging_fd;
    w.tls_ctx = init->tls_ctx;
    w.table = init->table;
    w.index = init->index;
    w.route = router_route;     /* conn.c knows no protocol: this does */
    w.log_request = accesslog_request;
    w.netmon = init->netmon;
    w.generation = init->generation;
    w.alog = init->alog;
    conn_memory_init();
    /* Before the pool's threads: they read it. */
    sync_sites_setup(w.conf->sync_mode == CONF_SYNC_OFF, &w.stats->syncs_data,
                     &w.stats->syncs_dir);
    if (prepare_keys(&w) < 0
        || (w.loop = loop_create()) == NULL
        || (w.pool = syncpool_create(w.loop, SYNC_THREADS)) == NULL
        || (w.commit = commit_create(&w)) == NULL
        || setup_signals(&w) < 0) {
        log_error("worker setup: %s", strerror(errno));
        return 2;
    }
    w.parent_io.fd = init->parent_fd;
    w.parent_io.fn = on_parent;
    w.parent_io.data = &w;
    loop_add(w.loop, &w.parent_io, EPOLLIN);
    if (w.table) {
        sess_setup(&w);
        /* Before serving: what workers that died before we existed held
         * (all workers killed at once leave nobody else to do it). */
        sess_forget_dead_now(&w, 20);
        w.reaped_io.fd = init->reaped_wake_fd;
        w.reaped_io.fn = on_reaped;
        w.reaped_io.data = &w;
        /* Edge-triggered and never read: each write by the master is a
         * new edge for every worker (as netmon's, shm/netstate.h). */
        if (w.reaped_io.fd >= 0
            && loop_add(w.loop, &w.reaped_io, EPOLLIN | EPOLLET) < 0) {
            log_error("epoll: %s", strerror(errno));
            return 2;
        }
    }
    if (pause_init(&w, init->netmon_wake_fd) < 0) {
        log_error("network change watch: %s", strerror(errno));
        return 2;
    }

    w.nlisten = init->nlisten;
    for (size_t i = 0; i < init->nlisten; i++) {
        w.listeners[i].io.fd = init->listen_fds[i];
        w.listeners[i].io.fn = on_listener;
        w.listeners[i].io.data = &w;
        w.listeners[i].tls = w.conf->listen[i].tls;
        if (w.listeners[i].tls && init->tls_ctx == NULL) {
            log_error("TLS listener without a TLS context");
            return 2;
        }
        if (loop_add_exclusive(w.loop, &w.listeners[i].io) < 0) {
            log_error("epoll listener: %s", strerror(errno));
            return 2;
        }
    }
    w.accepting = true;
    if (getppid() == 1)          /* after the listeners: they are closed */
        begin_stop(&w, "master exited");
    loop_on_tick(w.loop, on_tick, &w);
    loop_on_batch_end(w.loop, on_batch_end, &w);

    log_debug("serving (generation %u)", w.generation);
    int rc = loop_run(w.loop);
    for (struct conn *c = w.conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    conn_free_dead(&w);
    conn_memory_fini(&w);
    release_keys(&w);
    linesink_flush(w.alog);
    pause_fini(&w);
    commit_flush(w.commit);
    syncpool_destroy(w.pool);    /* waits for running jobs */
    sess_teardown(&w);
    commit_destroy(w.commit);
    loop_destroy(w.loop);
    return rc < 0 ? 1 : 0;
}
