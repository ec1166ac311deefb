/* supervise.c: the master's loop: fork, reap, respawn, reload, stop.
 *
 * Every signal stays blocked in the master and is taken synchronously with
 * sigtimedwait, so no code runs in a handler and no SIGCHLD can be lost:
 * after any wake-up every exited child is reaped with waitpid(WNOHANG). */
#define _GNU_SOURCE
#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/util/linesink.h"
#include "lib/util/log.h"
#include "netmon/netmon.h"
#include "shm/peers.h"
#include "shm/stats.h"
#include "worker/worker.h"

#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    10000
#define HEALTHY_UPTIME_MS 2000

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
workers_wanted(const struct conf *c)
{
    if (c->workers > 0)
        return c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static struct child *
free_child(struct master *m)
{
    for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
        if (m->children[i].pid == 0)
            return &m->children[i];
    return NULL;
}

static int
spawn_worker(struct master *m, int index)
{
    struct child *ch = free_child(m);
    int slot = stats_slot_claim(m->stats, 1);   /* pid set below */
    if (ch == NULL || slot < 0) {
        log_error("no free process slot for worker %d", index);
        if (slot >= 0)
            stats_slot_release(m->stats, 1);
        return -1;
    }
    peers_row_clear(m->peers, slot);
    peers_row_open(m->peers, slot);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        stats_slot_release(m->stats, 1);
        return -1;
    }
    if (pid == 0) {
        close(m->alive_pipe[1]);
        struct worker_init wi = {
            .conf = &m->conf, .listen_fds = m->listen_fds,
            .nlisten = m->nlisten, .tls_ctx = m->tls_ctx,
            .root_fd = m->root_fd,
            .staging_fd = m->staging_fd, .stats = m->stats,
            .stats_slot = slot, .index = index,
            .parent_fd = m->alive_pipe[0],
            .generation = m->generation,
            .netmon = m->netmon, .netmon_wake_fd = m->netmon_wake_fd,
            .reaped_wake_fd = m->reaped_wake_fd,
            .table = m->table, .alog = m->alog, .peers = m->peers,
        };
        _exit(worker_run(&wi));
    }
    m->stats->slots[slot].pid = pid;
    ch->pid = pid;
    ch->slot = slot;
    ch->index = index;
    ch->generation = m->generation;
    ch->started_ms = now_ms();
    ch->retiring = false;
    log_debug("started worker %d (pid %d, generation %u)", index, (int)pid,
              m->generation);
    return 0;
}

static void describe_exit(int status, char *buf, size_t len);

static int
spawn_netmon(struct master *m)
{
    if (!m->conf.networkchangedetection)
        return 0;
    struct child *ch = free_child(m);
    if (ch == NULL)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork netmon: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(m->alive_pipe[1]);
        log_set_role("netmon");
        for (size_t i = 0; i < m->nlisten; i++)
            close(m->listen_fds[i]);   /* it serves nothing */
        _exit(netmon_run(&m->conf, m->netmon, m->netmon_wake_fd,
                         m->alive_pipe[0]) == 0 ? 0 : 1);
    }
    ch->pid = pid;
    ch->index = -1;
    ch->slot = -1;
    ch->netmon = true;
    ch->generation = m->generation;
    ch->started_ms = now_ms();
    ch->retiring = false;
    m->netmon_respawn_at_ms = -1;
    log_debug("started netmon (pid %d)", (int)pid);
    return 0;
}

static void
netmon_exited(struct master *m, struct child *ch, int status, bool stopping)
{
    char how[128];
    describe_exit(status, how, sizeof(how));
    bool current = !ch->retiring;
    int64_t uptime = now_ms() - ch->started_ms;
    ch->pid = 0;
    if (stopping || !current) {
        log_info("netmon %s", how);
        return;
    }
    log_error("netmon %s; workers keep serving, restarting it", how);
    int b = uptime < HEALTHY_UPTIME_MS ? m->netmon_backoff_ms * 2 : 0;
    m->netmon_backoff_ms = uptime < HEALTHY_UPTIME_MS
        ? (b < BACKOFF_MIN_MS ? BACKOFF_MIN_MS : b > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b)
        : 0;
    m->netmon_respawn_at_ms = now_ms() + m->netmon_backoff_ms;
}

static void
describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "ended with status 0x%x", status);
}

static void
child_exited(struct master *m, struct child *ch, int status, bool stopping)
{
    char how[128];
    int64_t uptime = now_ms() - ch->started_ms;
    int idx = ch->index;
    bool current = !ch->retiring && ch->generation == m->generation;

    /* It may have died cleaning up after another dead worker: that one
     * goes back into the queue. */
    if (ch->slot >= 0)
        stats_dead_requeue(m->stats, &m->stats->slots[ch->slot]);
    stats_slot_release(m->stats, ch->pid);
    /* Its connections and uploads are gone: they count no more. */
    if (ch->slot >= 0)
        peers_row_clear(m->peers, ch->slot);
    ch->slot = -1;
    describe_exit(status, how, sizeof(how));
    /* Leases and claims of the dead process are void now, so a client
     * retrying its range is not kept waiting for their deadlines. Releasing
     * them takes entry locks, which a stopped or hung worker may hold for
     * ever: a worker does it (stats_dead_take), never the master. */
    uint64_t one = 1;
    if (m->table && !stats_dead_push(m->stats, ch->pid))
        log_warn("worker %d (pid %d): cleanup queue full; its upload "
                 "leases end at their deadlines", idx, (int)ch->pid);
    else if (m->table && write(m->reaped_wake_fd, &one, sizeof(one)) < 0)
        log_debug("waking workers: %s", strerror(errno));
    /* Its one-shot uploads died with it. Done before any fork, so the pid
     * cannot have been reused by a worker of ours yet. */
    master_sweep_oneshot(m, ch->pid);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (stopping || ch->retiring)
        log_info("worker %d (pid %d) %s", idx, (int)ch->pid, how);
    else
        log_error("worker %d (pid %d) %s", idx, (int)ch->pid, how);
    ch->pid = 0;
    if (stopping || !current || idx >= m->nworkers)
        return;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
        log_error("worker %d failed fatally; not respawning", idx);
        return;
    }
    /* A worker that dies young is likely to die again: back off so a crash
     * loop does not spin the CPU or flood the log. */
    if (uptime < HEALTHY_UPTIME_MS && !clean) {
        int b = m->backoff_ms[idx] * 2;
        m->backoff_ms[idx] = b < BACKOFF_MIN_MS ? BACKOFF_MIN_MS
                           : b > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b;
    } else {
        m->backoff_ms[idx] = 0;
    }
    m->respawn_at_ms[idx] = now_ms() + m->backoff_ms[idx];
    if (m->backoff_ms[idx])
        log_warn("respawning worker %d in %d ms", idx, m->backoff_ms[idx]);
    m->stats->worker_restarts++;
}

static int
reap(struct master *m, bool stopping)
{
    int status, n = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
            if (m->children[i].pid == pid && m->children[i].netmon) {
                netmon_exited(m, &m->children[i], status, stopping);
                n++;
                break;
            } else if (m->children[i].pid == pid) {
                child_exited(m, &m->children[i], status, stopping);
                n++;
                break;
            }
    }
    return n;
}

static int
live_children(const struct master *m)
{
    int n = 0;
    for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
        if (m->children[i].pid)
            n++;
    return n;
}

static bool
index_running(const struct master *m, int idx)
{
    for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
        if (m->children[i].pid && !m->children[i].retiring
            && m->children[i].generation == m->generation
            && m->children[i].index == idx)
            return true;
    return false;
}

static void
respawn_due(struct master *m)
{
    int64_t now = now_ms();
    if (m->netmon_respawn_at_ms >= 0 && now >= m->netmon_respawn_at_ms
        && spawn_netmon(m) < 0)
        m->netmon_respawn_at_ms = now + BACKOFF_MAX_MS;
    for (int i = 0; i < m->nworkers; i++)
        if (!index_running(m, i) && m->respawn_at_ms[i] >= 0
            && now >= m->respawn_at_ms[i]) {
            if (spawn_worker(m, i) < 0)
                m->respawn_at_ms[i] = now + BACKOFF_MAX_MS;
            else
                m->respawn_at_ms[i] = -1;
        }
}

static void
signal_children(struct master *m, int sig, bool retiring_only)
{
    for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
        if (m->children[i].pid
            && (!retiring_only || m->children[i].retiring))
            kill(m->children[i].pid, sig);
}

static int64_t
next_wake(const struct master *m)
{
    int64_t wake = now_ms() + 1000;
    if (m->netmon_respawn_at_ms >= 0 && m->netmon_respawn_at_ms < wake)
        wake = m->netmon_respawn_at_ms;
    for (int i = 0; i < m->nworkers; i++)
        if (m->respawn_at_ms[i] >= 0 && m->respawn_at_ms[i] < wake)
            wake = m->respawn_at_ms[i];
    return wake;
}

static int
wait_signal(int64_t until_ms)
{
    sigset_t set;
    siginfo_t si;
    int64_t left = until_ms - now_ms();
    if (left < 0)
        left = 0;
    struct timespec ts = { left / 1000, (left % 1000) * 1000000 };
    sigfillset(&set);
    int sig = sigtimedwait(&set, &si, &ts);
    return sig < 0 ? 0 : sig;
}

/* Graceful: workers finish in-flight requests within the grace period;
 * whatever is left then is killed. New connections are refused from the
 * start: the master closes its listening sockets here and every worker
 * closes its copies when told to stop, so a load balancer fails over at
 * once instead of queueing clients on a backlog nobody will accept. */
static void
stop_all(struct master *m, int sig)
{
    int64_t deadline = now_ms()
        + (sig == SIGQUIT ? 2000 : (int64_t)m->conf.shutdown_grace * 1000 + 2000);
    while (m->nlisten > 0)
        close(m->listen_fds[--m->nlisten]);
    signal_children(m, sig, false);
    while (live_children(m) > 0 && now_ms() < deadline) {
        int s = wait_signal(now_ms() + 200);
        if (s == SIGQUIT && sig != SIGQUIT) {
            sig = SIGQUIT;
            signal_children(m, SIGQUIT, false);
        }
        reap(m, true);
    }
    if (live_children(m) > 0) {
        log_warn("killing %d worker(s) still running after the grace period",
                 live_children(m));
        signal_children(m, SIGKILL, false);
        while (live_children(m) > 0 && reap(m, true) >= 0)
            if (live_children(m) > 0)
                usleep(10000);
    }
}

int
master_start_generation(struct master *m)
{
    m->nworkers = workers_wanted(&m->conf);
    for (int i = 0; i < 256; i++) {
        m->respawn_at_ms[i] = -1;
        m->backoff_ms[i] = 0;
    }
    for (int i = 0; i < m->nworkers; i++)
        if (spawn_worker(m, i) < 0)
            m->respawn_at_ms[i] = now_ms() + BACKOFF_MIN_MS;
    return 0;
}

/* A new netmon when its options changed (or none is running). */
int
master_restart_netmon(struct master *m)
{
    for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
        if (m->children[i].pid && m->children[i].netmon) {
            m->children[i].retiring = true;
            kill(m->children[i].pid, SIGTERM);
        }
    return spawn_netmon(m);
}

int
master_run(struct master *m)
{
    m->netmon_respawn_at_ms = -1;
    spawn_netmon(m);
    master_start_generation(m);
    log_info("started %d worker(s)", m->nworkers);

    for (;;) {
        int sig = wait_signal(next_wake(m));
        reap(m, false);
        switch (sig) {
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            log_info("%s: stopping%s", strsignal(sig),
                     sig == SIGQUIT ? " now" : " gracefully");
            stop_all(m, sig == SIGQUIT ? SIGQUIT : SIGTERM);
            log_info("stopped");
            return 0;
        case SIGHUP:
            master_reload(m);
            break;
        case SIGUSR1:
            log_reopen();
            log_info("log reopened");
            /* The master writes no access lines, but workers it forks
             * later inherit its copy: it must follow the rotation too. */
            if (linesink_reopen(m->alog) < 0)
                log_warn("cannot reopen the access log %s: %s",
                         m->conf.access_log, strerror(errno));
            signal_children(m, SIGUSR1, false);
            break;
        default:
            break;
        }
        respawn_due(m);
    }
}
