/* reload.c: SIGHUP — a new generation of workers on the new configuration.
 *
 * The master parses the file into a scratch struct; if anything is wrong it
 * logs why and carries on with the old one. Otherwise it forks a full new
 * generation and only then asks the old one to finish and exit. Listening
 * sockets for addresses present in both configurations are the same open
 * sockets throughout, so no connection is refused during a reload. */
#define _GNU_SOURCE
#include "master/master.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/tls/tls.h"
#include "lib/util/clock.h"
#include "lib/util/linesink.h"
#include "lib/util/log.h"
#include "shm/stats.h"

static int
find_listener(const struct conf *c, const struct conf_listen *l)
{
    for (size_t i = 0; i < c->nlisten; i++)
        if (strcmp(c->listen[i].addr, l->addr) == 0
            && c->listen[i].port == l->port && c->listen[i].tls == l->tls)
            return (int)i;
    return -1;
}

/* Build the new fd set: reuse what stays, bind what is new. */
static int
rebind(struct master *m, const struct conf *next, int *fds, size_t *nfds,
       char *err, size_t errlen)
{
    struct master scratch;
    memset(&scratch, 0, sizeof(scratch));
    *nfds = 0;
    for (size_t i = 0; i < next->nlisten; i++) {
        int old = find_listener(&m->conf, &next->listen[i]);
        if (old >= 0) {
            fds[(*nfds)++] = m->listen_fds[old];
            continue;
        }
        scratch.conf.nlisten = 1;
        scratch.conf.listen[0] = next->listen[i];
        scratch.nlisten = 0;
        if (master_listen(&scratch, err, errlen) < 0) {
            for (size_t j = 0; j < *nfds; j++)   /* undo only what is new */
                if (find_listener(&m->conf, &next->listen[j]) < 0)
                    close(fds[j]);
            return -1;
        }
        fds[(*nfds)++] = scratch.listen_fds[0];
    }
    return 0;
}

static void
keep_restart_only(struct master *m, struct conf *next)
{
    /* The session table is sized and named once, before the first fork;
     * live sessions in it must survive the reload untouched. */
    if (strcmp(next->shm_name, m->conf.shm_name) != 0
        || next->session_capacity != m->conf.session_capacity) {
        log_warn("uploads.shm_name and uploads.session_capacity take "
                 "effect at the next restart");
        memcpy(next->shm_name, m->conf.shm_name, sizeof(next->shm_name));
        next->session_capacity = m->conf.session_capacity;
    }
    if (strcmp(next->storage_dir, m->conf.storage_dir) != 0
        || strcmp(next->staging_dir, m->conf.staging_dir) != 0) {
        log_warn("storage.dir and storage.staging take effect at the next "
                 "restart");
        memcpy(next->storage_dir, m->conf.storage_dir, sizeof(next->storage_dir));
        memcpy(next->staging_dir, m->conf.staging_dir, sizeof(next->staging_dir));
    }
}

/* A changed logging.access_log is opened for the new generation; the old
 * one keeps its own copy until it exits. If the new one cannot be opened,
 * the old target stays, as for logging.target. */
static void
reopen_access_log(struct master *m, struct conf *next)
{
    struct linesink *al;
    char err[512];

    if (strcmp(next->access_log, m->conf.access_log) == 0)
        return;
    if (linesink_open(next->access_log, &al, err, sizeof(err)) < 0) {
        log_error("reload: %s (keeping the old access log)", err);
        memcpy(next->access_log, m->conf.access_log,
               sizeof(next->access_log));
        return;
    }
    linesink_close(m->alog);
    m->alog = al;
}

static int
load_next(struct master *m, struct conf *next)
{
    char err[1024];
    if (m->conf_path == NULL) {
        log_warn("reload: running on the embedded configuration; nothing "
                 "to re-read");
        return -1;
    }
    if (conf_load(m->conf_path, next, err, sizeof(err)) < 0) {
        log_error("reload failed, keeping the running configuration: %s",
                  err);
        return -1;
    }
    return 0;
}

int
master_reload(struct master *m)
{
    static struct conf next;     /* large: keep it off the stack */
    int fds[CONF_MAX_LISTEN];
    size_t nfds;
    char err[512];

    m->stats->last_reload_time = clock_wall_seconds();
    if (load_next(m, &next) < 0) {
        m->stats->last_reload_ok = 0;
        return -1;
    }
    keep_restart_only(m, &next);
    /* Certificates are re-read on every reload, so a renewed one takes
     * effect; a broken one fails the reload and the old one stays. */
    void *tls_ctx;
    if (master_tls_context(&next, &tls_ctx, err, sizeof(err)) < 0) {
        log_error("reload failed, keeping the running configuration: %s",
                  err);
        m->stats->last_reload_ok = 0;
        return -1;
    }
    if (rebind(m, &next, fds, &nfds, err, sizeof(err)) < 0) {
        tls_context_free(tls_ctx);
        log_error("reload failed, keeping the running configuration: %s",
                  err);
        m->stats->last_reload_ok = 0;
        return -1;
    }
    if (strcmp(next.log_target, m->conf.log_target) != 0
        && log_open(next.log_target, (enum log_level)next.log_level, err,
                    sizeof(err)) < 0)
        log_error("reload: %s (keeping the old log)", err);
    log_set_level((enum log_level)next.log_level);
    reopen_access_log(m, &next);

    /* Close what the new configuration no longer lists; old workers keep
     * their own copies until they exit. */
    for (size_t i = 0; i < m->nlisten; i++)
        if (find_listener(&next, &m->conf.listen[i]) < 0)
            close(m->listen_fds[i]);
    memcpy(m->listen_fds, fds, sizeof(int) * nfds);
    m->nlisten = nfds;

    for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
        if (m->children[i].pid && !m->children[i].netmon)
            m->children[i].retiring = true;
    /* Compared before the new configuration replaces the old one. */
    bool netmon_changed =
        next.networkchangedetection != m->conf.networkchangedetection
        || next.reconnectdelay != m->conf.reconnectdelay
        || next.nlisten != m->conf.nlisten
        || memcmp(next.listen, m->conf.listen, sizeof(next.listen)) != 0;
    m->conf = next;
    master_reopen_storage(m);
    m->generation++;
    m->stats->config_generation++;
    m->stats->last_reload_ok = 1;

    void *old_tls = m->tls_ctx;
    m->tls_ctx = tls_ctx;
    master_start_generation(m);
    tls_context_free(old_tls);   /* old workers hold their own copies */
    for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
        if (m->children[i].pid && m->children[i].retiring
            && !m->children[i].netmon)
            kill(m->children[i].pid, SIGTERM);
    if (netmon_changed)
        master_restart_netmon(m);
    log_info("reloaded %s: generation %u, %d worker(s)", m->conf_path,
             m->generation, m->nworkers);
    return 0;
}
