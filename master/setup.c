/* setup.c: storage directories, daemonizing, the pidfile, privileges. */
#define _GNU_SOURCE
#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/store/path.h"
#include "lib/tls/tls.h"
#include "lib/util/log.h"
#include "lib/util/syncsite.h"

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
open_dir(const struct conf *c, const char *path, mode_t mode,
         const char *what, char *err, size_t errlen)
{
    if (mkdir_p(path, mode) < 0)
        return conf_key_error(c, what, err, errlen, "%s: %s", path,
                              strerror(errno));
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        conf_key_error(c, what, err, errlen, "%s: %s", path, strerror(errno));
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

/* The account workers run as: server.user when started as root (*drop),
 * else whoever we are. The names are looked up even when not root: a user
 * or group that does not exist is a broken configuration wherever it is
 * checked, and start-up as root would fail on it after daemonizing. */
static int
run_ids(const struct conf *c, bool *drop, uid_t *uid, gid_t *gid, char *err,
        size_t errlen)
{
    struct passwd *pw = NULL;
    struct group  *gr = NULL;

    *drop = false;
    *uid = geteuid();
    *gid = getegid();
    if (c->user[0] && (pw = getpwnam(c->user)) == NULL)
        return conf_key_error(c, "server.user", err, errlen,
                              "no such user \"%s\"", c->user);
    if (c->group[0] && (gr = getgrnam(c->group)) == NULL)
        return conf_key_error(c, "server.group", err, errlen,
                              "no such group \"%s\"", c->group);
    if (pw != NULL && geteuid() == 0) {
        *drop = true;
        *uid = pw->pw_uid;
        *gid = gr ? gr->gr_gid : pw->pw_gid;
    }
    return 0;
}

/* 0 if a file can be created (and removed) in dfd, else the errno. */
static int
probe_dir(int dfd)
{
    char name[48];
    snprintf(name, sizeof(name), ".hfs-probe-%ld", (long)getpid());
    unlinkat(dfd, name, 0);          /* a crashed probe's, same pid */
    int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC
                    | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno;
    close(fd);
    if (unlinkat(dfd, name, 0) < 0)
        return errno;
    /* Or a power cut soon after the start can bring the probe back, as
     * litter in the storage root that no later start removes (another pid
     * names it). */
    return SYNC_AT("probe_dir", fsync(dfd)) < 0 ? errno : 0;
}

/* probe_dir as the run user, with exactly the credentials the workers will
 * have (master_drop_privileges): in a child, so we stay root. */
static int
probe_as(int dfd, bool drop, uid_t uid, gid_t gid)
{
    int st;
    if (!drop)
        return probe_dir(dfd);
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
            _exit(errno & 0xff);
        _exit(probe_dir(dfd) & 0xff);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
}

static int
dir_error(const struct conf *c, const char *key, const char *path, bool drop,
          uid_t uid, int e, char *err, size_t errlen)
{
    if (drop)
        return conf_key_error(c, key, err, errlen, "%s: user %s cannot "
                              "create files there: %s", path, c->user,
                              strerror(e));
    return conf_key_error(c, key, err, errlen, "%s: cannot create files "
                          "there as uid %ld: %s", path, (long)uid,
                          strerror(e));
}

/* Uploads are written by the workers as the run user; a directory it cannot
 * write would fail every upload with 500 after its whole body was read. */
static int
check_writable(const struct conf *c, const char *key, const char *path,
               int fd, char *err, size_t errlen)
{
    bool  drop;
    uid_t uid;
    gid_t gid;
    if (run_ids(c, &drop, &uid, &gid, err, errlen) < 0)
        return -1;
    int e = probe_as(fd, drop, uid, gid);
    return e ? dir_error(c, key, path, drop, uid, e, err, errlen) : 0;
}

/* Start hands a root-owned directory over to the run user (hand_over):
 * -t cannot chown, so it predicts. */
static bool
handed_over(const struct conf *c, int fd)
{
    struct stat st;
    return c->user[0] && geteuid() == 0 && getpwnam(c->user) != NULL
        && fstat(fd, &st) == 0 && st.st_uid == 0;
}

/* Writable by its owner-to-be: owner write and search bits, and writable
 * at all (a read-only mount, an immutable flag) as we are now. */
static int
check_as_owner(const struct conf *c, const char *key, const char *path,
               int fd, char *err, size_t errlen)
{
    struct stat st;
    int e = fstat(fd, &st) < 0 ? errno
          : (st.st_mode & 0300) != 0300 ? EACCES : probe_dir(fd);
    return e ? dir_error(c, key, path, true, 0, e, err, errlen) : 0;
}

/* -t: the same checks as start, changing nothing. A directory that exists
 * is probed as the run user; a missing one must be creatable by us (start
 * makes it and, as root, hands it over to the run user). */
static int
check_dir(const struct conf *c, const char *key, const char *path, char *err,
          size_t errlen)
{
    char anc[CONF_PATH_MAX];
    int  fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        int rc = handed_over(c, fd) ? check_as_owner(c, key, path, fd, err,
                                                    errlen)
                                    : check_writable(c, key, path, fd, err,
                                                     errlen);
        close(fd);
        return rc;
    }
    if (errno != ENOENT)
        return conf_key_error(c, key, err, errlen, "%s: %s", path,
                              strerror(errno));
    snprintf(anc, sizeof(anc), "%s", path);
    for (;;) {
        char *slash = strrchr(anc, '/');
        if (slash == NULL)
            snprintf(anc, sizeof(anc), ".");
        else if (slash == anc)
            anc[1] = '\0';
        else
            *slash = '\0';
        if (access(anc, F_OK) == 0 || slash == NULL || slash == anc)
            break;
    }
    if (faccessat(AT_FDCWD, anc, W_OK | X_OK, AT_EACCESS) < 0)
        return conf_key_error(c, key, err, errlen, "%s does not exist and "
                              "cannot be created in %s: %s", path, anc,
                              strerror(errno));
    return 0;
}

int
master_check(const struct master *m, char *err, size_t errlen)
{
    bool  drop;
    uid_t uid;
    gid_t gid;
    const struct conf *c = &m->conf;

    if (run_ids(c, &drop, &uid, &gid, err, errlen) < 0
        || check_dir(c, "storage.dir", c->storage_dir, err, errlen) < 0
        || check_dir(c, "storage.staging", c->staging_dir, err, errlen) < 0)
        return -1;
    return 0;
}

int
master_open_storage(struct master *m, char *err, size_t errlen)
{
    struct stat a, b;
    bool  drop;
    uid_t uid;
    gid_t gid;

    /* Before anything is made: an unknown user is named as such. */
    if (run_ids(&m->conf, &drop, &uid, &gid, err, errlen) < 0)
        return -1;
    m->root_fd = open_dir(&m->conf, m->conf.storage_dir, m->conf.dir_mode,
                          "storage.dir", err, errlen);
    if (m->root_fd < 0)
        return -1;
    m->staging_fd = open_dir(&m->conf, m->conf.staging_dir, 0750,
                             "storage.staging", err, errlen);
    if (m->staging_fd < 0)
        return -1;
    if (hand_over(&m->conf, m->root_fd, m->conf.storage_dir, err, errlen) < 0
        || hand_over(&m->conf, m->staging_fd, m->conf.staging_dir, err,
                     errlen) < 0)
        return -1;
    if (check_writable(&m->conf, "storage.dir", m->conf.storage_dir,
                       m->root_fd, err, errlen) < 0
        || check_writable(&m->conf, "storage.staging", m->conf.staging_dir,
                          m->staging_fd, err, errlen) < 0)
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
    int  rc = store_dir_refresh(path, fd, NULL, err, sizeof(err));

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

/* A start that failed after writing the pidfile: the daemon removes it if
 * it still may, but it has dropped privileges by then and the shipped path
 * is in root's /run. The starting process still has the privileges it was
 * started with: once the pid in the file is gone (the failing daemon exits
 * right after reporting), the file names no daemon and goes. A live pid is
 * left alone: the file is not ours to judge then. */
static void
remove_dead_pidfile(const char *pidfile)
{
    FILE *f = pidfile[0] ? fopen(pidfile, "r") : NULL;
    int   pid = 0;

    if (f == NULL)
        return;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    for (int i = 0; pid > 0 && i < 200; i++) {   /* at most 2 s */
        if (kill(pid, 0) < 0 && errno == ESRCH) {
            unlink(pidfile);
            return;
        }
        usleep(10000);
    }
}

/* The starting process waits until the daemon is serving or has failed, so
 * its exit status and standard error say how start-up went (systemd's
 * Type=forking, init scripts, an operator at a terminal): "0", or "1" and
 * the reason; EOF alone means the daemon died without a word. */
static void __attribute__((noreturn))
wait_ready(int fd, const char *pidfile)
{
    char    buf[1100];
    size_t  n = 0;
    ssize_t r;

    while (n < sizeof(buf) - 1
           && ((r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0
               || (r < 0 && errno == EINTR)))
        n += r > 0 ? (size_t)r : 0;
    buf[n] = '\0';
    if (n > 0 && buf[0] == '0')
        _exit(0);
    remove_dead_pidfile(pidfile);
    if (n > 1)
        fprintf(stderr, "hmac-file-server: %s\n", buf + 1);
    else if (n == 0)
        fprintf(stderr, "hmac-file-server: the daemon exited during start-up "
                "(see its log)\n");
    _exit(1);
}

int
master_daemonize(struct master *m, char *err, size_t errlen)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        close(ready[1]);
        wait_ready(ready[0], m->conf.pidfile);
    }
    close(ready[0]);
    m->ready_fd = ready[1];
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
master_write_pidfile(struct master *m, char *err, size_t errlen)
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
        unlink(tmp);
        return -1;
    }
    m->pidfile_written = true;
    return 0;
}

void
master_remove_pidfile(struct master *m)
{
    if (m->pidfile_written)
        unlink(m->conf.pidfile);
    m->pidfile_written = false;
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
