/* main.c: command line, configuration check, start-up order.
 *
 * Order matters: parse and check everything first (so -t and a bad reload
 * say the same thing), bind while still privileged, daemonize, write the
 * pidfile, drop privileges, and only then fork workers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/util/linesink.h"
#include "lib/util/log.h"
#include "master/master.h"
#include "netmon/netmon.h"
#include "shm/peers.h"
#include "shm/stats.h"
#include "shm/table.h"

#include <sys/eventfd.h>
#include <sys/mman.h>

#define VERSION "0.1.0"

/* Used when no -c is given: a working server for local development. The
 * secret is public — never expose this configuration beyond loopback. */
static const char embedded_config[] =
    "server: { listen = [\"127.0.0.1:8080\"]; workers = 2;\n"
    "          pidfile = \"./var/hmac-file-server.pid\"; };\n"
    "storage: { dir = \"./var/storage\"; staging = \"./var/staging\"; };\n"
    "security: { secrets = [\"dev-secret-change-me\"]; };\n"
    "logging: { target = \"stderr\"; level = \"info\"; };\n";

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: hmac-file-server [-c FILE] [-t] [-f] [-V]\n"
        "  -c FILE  configuration file (default: the embedded development\n"
        "           configuration: 127.0.0.1:8080, storage under ./var)\n"
        "  -t       check the configuration and exit\n"
        "  -f       stay in the foreground\n"
        "  -V       print the version and exit\n");
}

static int
load_config(struct master *m, const char *path, char *err, size_t errlen)
{
    m->conf_path = path ? realpath(path, NULL) : NULL;
    if (path && m->conf_path == NULL)
        m->conf_path = path;     /* conf_load reports why it cannot read */
    if (path)
        return conf_load(m->conf_path, &m->conf, err, errlen);
    return conf_load_string(embedded_config, "(embedded)", &m->conf, err,
                            errlen);
}

/* A start-up failure is logged, and also said on the starting command's
 * standard error: with a syslog or file target nobody may be listening or
 * looking. After daemonizing, the starting process prints it (ready_fd). */
static int
start_failed(struct master *m, const char *what, const char *err)
{
    bool to_stderr = strcmp(m->conf.log_target, "stderr") == 0;

    log_error("%s%s", what, err);
    master_remove_pidfile(m);
    if (m->ready_fd >= 0) {
        dprintf(m->ready_fd, "1%s%s", to_stderr ? "" : what,
                to_stderr ? "" : err);
        close(m->ready_fd);
        m->ready_fd = -1;
    } else if (!to_stderr) {
        fprintf(stderr, "hmac-file-server: %s%s\n", what, err);
    }
    return 1;
}

static int
start(struct master *m)
{
    char err[1024];
    sigset_t all;

    if (log_open(m->conf.log_target, (enum log_level)m->conf.log_level, err,
                 sizeof(err)) < 0) {
        fprintf(stderr, "hmac-file-server: %s\n", err);
        return 1;
    }
    /* Opened here, as root and with stderr still open, so a wrong path
     * fails the start visibly; workers inherit it. */
    if (linesink_open(m->conf.access_log, &m->alog, err, sizeof(err)) < 0) {
        fprintf(stderr, "hmac-file-server: logging.access_log: %s\n", err);
        return 1;
    }
    /* Blocked from here on: the master takes signals with sigtimedwait,
     * and workers inherit the mask and read theirs from a signalfd. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    if (master_open_storage(m, err, sizeof(err)) < 0
        || master_tls_context(&m->conf, &m->tls_ctx, err, sizeof(err)) < 0
        || master_listen(m, err, sizeof(err)) < 0
        || (!m->foreground && master_daemonize(m, err, sizeof(err)) < 0)
        || master_write_pidfile(m, err, sizeof(err)) < 0
        || master_drop_privileges(m, err, sizeof(err)) < 0)
        return start_failed(m, "", err);
    m->netmon = mmap(NULL, sizeof(*m->netmon), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    m->netmon_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    m->reaped_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if ((m->stats = stats_create()) == NULL || m->netmon == MAP_FAILED
        || (m->peers = peers_create()) == NULL
        || m->netmon_wake_fd < 0 || m->reaped_wake_fd < 0 || pipe2(m->alive_pipe, O_CLOEXEC) < 0)
        return start_failed(m, "shared memory: ", strerror(errno));
    if (master_recover(m, err, sizeof(err)) < 0)
        return start_failed(m, "session table: ", err);
    if (m->ready_fd >= 0) {      /* started: let the starting process go */
        dprintf(m->ready_fd, "0");
        close(m->ready_fd);
        m->ready_fd = -1;
    }
    m->stats->config_generation = 1;
    m->stats->last_reload_ok = 1;
    m->generation = 1;
    if (m->conf_path == NULL)
        log_warn("using the embedded development configuration: its secret "
                 "is public; use -c FILE for anything but local testing");
    for (size_t i = 0; i < m->conf.nlisten; i++)
        log_info("listening on %s%s%s:%d", strchr(m->conf.listen[i].addr, ':')
                 ? "[" : "", m->conf.listen[i].addr,
                 strchr(m->conf.listen[i].addr, ':') ? "]" : "",
                 m->conf.listen[i].port);
    int rc = master_run(m);
    master_remove_pidfile(m);
    shm_table_unlink(m->conf.shm_name);
    return rc;
}

int
main(int argc, char **argv)
{
    static struct master m;   /* large; zeroed */
    const char *path = NULL;
    int check = 0, opt;
    char err[1024];

    m.ready_fd = -1;
    while ((opt = getopt(argc, argv, "c:tfVh")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 't': check = 1; break;
        case 'f': m.foreground = true; break;
        case 'V': printf("hmac-file-server %s\n", VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 1;
    }
    if (load_config(&m, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "hmac-file-server: %s\n", err);
        return 1;
    }
    /* The run user and the storage directories, as start will need them. */
    if (check && master_check(&m, err, sizeof(err)) < 0) {
        fprintf(stderr, "hmac-file-server: %s\n", err);
        return 1;
    }
    if (check) {
        printf("%s: configuration ok\n", path ? path : "(embedded)");
        return 0;
    }
    return start(&m);
}
