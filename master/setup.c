/* setup.c: storage directories, daemonizing, the pidfile, privileges. */
#define _GNU_SOURCE
#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/store/path.h"
#include "lib/tls/tls.h"
#include "lib/util/log.h"

/* The last component gets exactly mode when we make it (chmod: the umask
 * must not decide whether a web server can read storage.dir). */
static int
mkdir_p(const char *path, mode_t mode)
{
    char tmp[CONF_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0)
        return errno != EEXIST ? -1 : 0;
    return chmod(tmp, mode);
}

static int
open_dir(const char *path, mode_t mode, const char *what, char *err,
         size_t errlen)
{
    if (mkdir_p(path, mode) < 0) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
    return fd;
}

/* Directories the master makes as root must belong to the user the
 * workers run as, or every upload would fail with EACCES. */
static int
hand_over(const struct conf *c, int fd, const char *path, char *err,
          size_t errlen)
{
    if (c->user[0] == '\0' || geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam(c->user);
    struct group *gr = c->group[0] ? getgrnam(c->group) : NULL;
    if (pw == NULL) {
        snprintf(err, errlen, "server.user %s: no such user", c->user);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_uid == 0
        && fchown(fd, pw->pw_uid, gr ? gr->gr_gid : pw->pw_gid) < 0) {
        snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int
master_open_storage(struct master *m, char *err, size_t errlen)
{
    struct stat a, b;

    m->root_fd = open_dir(m->conf.storage_dir, m->conf.dir_mode,
                          "storage.dir", err, errlen);
    if (m->root_fd < 0)
        return -1;
    m->staging_fd = open_dir(m->conf.staging_dir, 0750, "storage.staging",
                             err, errlen);
    if (m->staging_fd < 0)
        return -1;
    if (hand_over(&m->conf, m->root_fd, m->conf.storage_dir, err, errlen) < 0
        || hand_over(&m->conf, m->staging_fd, m->conf.staging_dir, err,
                     errlen) < 0)
        return -1;
    /* Publication is a link(2) from staging into storage: it cannot cross
     * filesystems, and a copy would not be atomic. */
    if (fstat(m->root_fd, &a) < 0 || fstat(m->staging_fd, &b) < 0
        || a.st_dev != b.st_dev) {
        snprintf(err, errlen, "storage.staging (%s) must be on the same "
                 "filesystem as storage.dir (%s)", m->conf.staging_dir,
                 m->conf.storage_dir);
        return -1;
    }
    return 0;
}

static void
reopen_dir(const char *key, const char *path, int fd)
{
    char err[256];
    int  rc = store_dir_refresh(path, fd, err, sizeof(err));

    if (rc < 0)
        log_error("%s %s %s", key, path, err);
    else if (rc > 0)
        log_info("%s %s was replaced: re-opened it", key, path);
}

/* SIGHUP: a storage directory deleted and re-created since the start (a
 * restore from backup, a remount) is what the new generation gets. Nothing
 * is created here: the master no longer runs as root, and an empty
 * directory made in place of a missing mount would hide the problem that
 * /health reports. Workers make the same check before each upload. */
void
master_reopen_storage(struct master *m)
{
    reopen_dir("storage.dir", m->conf.storage_dir, m->root_fd);
    reopen_dir("storage.staging", m->conf.staging_dir, m->staging_fd);
}

int
master_daemonize(struct master *m, char *err, size_t errlen)
{
    (void)m;
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0)
        _exit(0);
    setsid();
    pid = fork();      /* not a session leader: can never regain a tty */
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (strcmp(m->conf.log_target, "stderr") != 0)
            dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    umask(027);
    /* No chdir("/"): relative paths in the configuration (storage, secret
     * files, pidfile) stay relative to where the daemon was started, for
     * reloads too. Installed configurations use absolute paths. */
    return 0;
}

int
master_write_pidfile(const struct master *m, char *err, size_t errlen)
{
    if (m->conf.pidfile[0] == '\0')
        return 0;
    char tmp[CONF_PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", m->conf.pidfile);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0
        || rename(tmp, m->conf.pidfile) < 0) {
        snprintf(err, errlen, "pidfile %s: %s", m->conf.pidfile,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int
master_drop_privileges(const struct master *m, char *err, size_t errlen)
{
    const struct conf *c = &m->conf;
    if (c->user[0] == '\0' || geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam(c->user);
    if (pw == NULL) {
        snprintf(err, errlen, "server.user %s: no such user", c->user);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (c->group[0]) {
        struct group *gr = getgrnam(c->group);
        if (gr == NULL) {
            snprintf(err, errlen, "server.group %s: no such group", c->group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "dropping privileges to %s: %s", c->user,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int
master_tls_context(const struct conf *c, void **ctx_r, char *err,
                   size_t errlen)
{
    *ctx_r = NULL;
    for (size_t i = 0; i < c->nlisten; i++)
        if (c->listen[i].tls) {
            *ctx_r = tls_context_create(c, err, errlen);
            return *ctx_r ? 0 : -1;
        }
    return 0;
}
