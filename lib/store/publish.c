/* publish.c: durable, no-overwrite publication of finished uploads. */
#include "lib/store/publish.h"
#include "lib/store/path.h"
#include "lib/util/syncsite.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define CMP_CHUNK  (128 * 1024)     /* per side; bounds the compare's memory */

/* Fills err with "what: strerror" and keeps errno for the caller. */
static int
fail(char *err, size_t errlen, const char *what)
{
    int e = errno;

    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", what, strerror(e));
    errno = e;
    return -1;
}

static void
close_keep_errno(int fd)
{
    int e = errno;

    close(fd);
    errno = e;
}

static int
random_bytes(unsigned char *p, size_t n)
{
    ssize_t r;

    while (n > 0) {
        r = getrandom(p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int
store_staging_create(int staging_fd, char *name_out, size_t len, int *fd_r,
                     char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char     rnd[16];
    int               fd, tries;
    size_t            i;

    if (len < STORE_STAGING_NAME_LEN) {
        errno = EINVAL;
        return fail(err, errlen, "staging name buffer");
    }
    /* 128 random bits make a collision a bug, not bad luck; O_EXCL turns
     * even that into a retry instead of two uploads sharing a file. The
     * creator's pid lets the master remove the files of a dead worker. */
    for (tries = 0; tries < 4; tries++) {
        if (random_bytes(rnd, sizeof(rnd)) < 0)
            return fail(err, errlen, "getrandom");
        int n = snprintf(name_out, len, "up-%ld-", (long)getpid());
        for (i = 0; i < sizeof(rnd); i++) {
            name_out[n + 2 * i] = hex[rnd[i] >> 4];
            name_out[n + 1 + 2 * i] = hex[rnd[i] & 0xf];
        }
        name_out[n + 2 * sizeof(rnd)] = '\0';
        fd = openat(staging_fd, name_out,
                    O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0) {
            *fd_r = fd;
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    return fail(err, errlen, "create staging file");
}

pid_t
store_staging_owner(const char *name)
{
    long v = 0;
    const char *p;

    if (strncmp(name, "up-", 3) != 0)
        return -1;
    for (p = name + 3; *p >= '0' && *p <= '9' && v <= INT_MAX / 10; p++)
        v = v * 10 + (*p - '0');
    if (p == name + 3 || *p != '-' || v <= 0 || v > INT_MAX)
        return -1;
    return (pid_t)v;
}

/* Reads exactly n bytes at off; returns n, a short count at EOF, or -1. */
static ssize_t
pread_full(int fd, char *buf, size_t n, off_t off)
{
    size_t  got = 0;
    ssize_t r;

    while (got < n) {
        r = pread(fd, buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* 1: same bytes, 0: different, -1: error. Streams in fixed chunks so a
 * multi-gigabyte duplicate costs time, never memory. */
static int
same_bytes(int a, int b, off_t size, char *err, size_t errlen)
{
    char   *buf;
    off_t   off;
    size_t  want;
    ssize_t ra, rb;
    int     rc = 1;

    if ((buf = malloc(2 * CMP_CHUNK)) == NULL)
        return fail(err, errlen, "compare buffer");
    for (off = 0; off < size && rc == 1; off += (off_t)want) {
        want = size - off < CMP_CHUNK ? (size_t)(size - off) : CMP_CHUNK;
        ra = pread_full(a, buf, want, off);
        rb = pread_full(b, buf + CMP_CHUNK, want, off);
        if (ra < 0 || rb < 0)
            rc = fail(err, errlen, "read for compare");
        else if (ra != rb || memcmp(buf, buf + CMP_CHUNK, (size_t)ra) != 0)
            rc = 0;
        else if ((size_t)ra < want)
            rc = 0;     /* both shrank under us: not what we were given */
    }
    free(buf);
    return rc;
}

#define JUDGE_VANISHED  100     /* internal: the taken name went away */

/* Decides between IDENTICAL_EXISTS and CONFLICT for a name that linkat
 * found taken. */
static int
judge_existing(int dfd, const char *leaf, int data_fd, bool sync_dir,
               char *err, size_t errlen)
{
    struct stat ours, theirs;
    int         fd, same;

    fd = openat(dfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return JUDGE_VANISHED;
    if (fd < 0 && errno == ELOOP)
        return STORE_CONFLICT;      /* a symlink is never our upload */
    if (fd < 0)
        return fail(err, errlen, "open existing target");
    if (fstat(fd, &theirs) < 0 || fstat(data_fd, &ours) < 0) {
        fail(err, errlen, "fstat");
        close_keep_errno(fd);
        return STORE_PUBLISH_ERROR;
    }
    if (!S_ISREG(theirs.st_mode) || theirs.st_size != ours.st_size) {
        close(fd);
        return STORE_CONFLICT;
    }
    same = same_bytes(data_fd, fd, ours.st_size, err, errlen);
    close_keep_errno(fd);
    if (same <= 0)
        return same < 0 ? STORE_PUBLISH_ERROR : STORE_CONFLICT;
    /* A concurrent publisher of the same bytes may not have synced the
     * entry yet; "already there" must be as durable as "published". */
    if (sync_dir && SYNC_AT("publish_existing_dir", fsync(dfd)) < 0)
        return fail(err, errlen, "fsync of existing file's directory");
    return STORE_IDENTICAL_EXISTS;
}

/* After success only: the file is published whatever happens here, so a
 * failure is a warning in err, never an error result. Not synced: a name
 * that a power cut brings back is a second link to a published file,
 * which the start removes (every one-shot "up-*" name; a session's `data`
 * goes with its directory, whose manifest says COMPLETE or holds every
 * byte). No client was told anything about the staging name. */
static void
drop_staging(int staging_fd, const char *name, char *err, size_t errlen)
{
    if (unlinkat(staging_fd, name, 0) < 0)
        fail(err, errlen, "warning: unlink of staging name");
}

/* fsync of the new entry failed: take the name back so that nothing is
 * visible which we cannot promise survives, but only if it is still ours. */
static void
unpublish(int dfd, const char *leaf, int data_fd)
{
    struct stat ours, there;
    int         e = errno;

    if (fstat(data_fd, &ours) == 0
        && fstatat(dfd, leaf, &there, AT_SYMLINK_NOFOLLOW) == 0
        && ours.st_dev == there.st_dev && ours.st_ino == there.st_ino)
        unlinkat(dfd, leaf, 0);
    errno = e;
}

static int
link_or_judge(int staging_fd, const char *staging_name, int data_fd,
              int dfd, const char *leaf, bool sync_dir, char *err,
              size_t errlen)
{
    int tries, rc;

    for (tries = 0; tries < 3; tries++) {
        /* linkat fails with EEXIST instead of replacing: the atomic "no
         * overwrite". The name appears with the data already complete, so
         * a GET never sees a partial file. */
        if (linkat(staging_fd, staging_name, dfd, leaf, 0) == 0)
            return STORE_PUBLISHED;
        if (errno != EEXIST)
            return fail(err, errlen, "linkat");
        rc = judge_existing(dfd, leaf, data_fd, sync_dir, err, errlen);
        if (rc != JUDGE_VANISHED)
            return rc;
    }
    errno = EAGAIN;
    return fail(err, errlen, "target name keeps appearing and vanishing");
}

/* Every path to publication (one-shot staging file 0644, session data file
 * 0600) ends here, so this is where the file gets the one mode operators
 * configured, before its name appears. */
static int
set_mode(int data_fd, mode_t mode, char *err, size_t errlen)
{
    struct stat st;

    if (fstat(data_fd, &st) < 0)
        return fail(err, errlen, "fstat of upload data");
    if ((st.st_mode & 07777) != mode && fchmod(data_fd, mode) < 0)
        return fail(err, errlen, "fchmod of upload data");
    return 0;
}

static int
publish(int staging_fd, const char *staging_name, int data_fd, int root_fd,
        const char *rel, const struct store_modes *modes, bool sync_dirs,
        char *err, size_t errlen)
{
    const char *leaf;
    int         dfd, rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (set_mode(data_fd, modes->file, err, errlen) < 0)
        return STORE_PUBLISH_ERROR;
    /* Data before name: otherwise a power cut could leave a published
     * name over blocks that were never written (zeros or stale data).
     * fsync, not fdatasync: the mode just set is inode metadata that
     * fdatasync may leave behind. */
    if (SYNC_AT("publish_data", fsync(data_fd)) < 0)
        return fail(err, errlen, "fsync of upload data");
    /* Creates and syncs missing directories: the file's entry is only as
     * durable as every directory above it. */
    if ((sync_dirs ? store_open_parent : store_open_parent_unsynced)(
            root_fd, rel, modes->dir, &dfd, &leaf, err, errlen) < 0)
        return STORE_PUBLISH_ERROR;
    rc = link_or_judge(staging_fd, staging_name, data_fd, dfd, leaf,
                       sync_dirs, err, errlen);
    /* The new entry survives a power cut only once its directory is
     * synced; before that we must not report success. */
    if (sync_dirs && rc == STORE_PUBLISHED
        && SYNC_AT("publish_dir", fsync(dfd)) < 0) {
        rc = fail(err, errlen, "fsync of target directory");
        unpublish(dfd, leaf, data_fd);
    }
    close_keep_errno(dfd);
    if (rc == STORE_PUBLISHED || rc == STORE_IDENTICAL_EXISTS)
        drop_staging(staging_fd, staging_name, err, errlen);
    return rc;
}

int
store_publish(int staging_fd, const char *staging_name, int data_fd,
              int root_fd, const char *rel, const struct store_modes *modes,
              char *err, size_t errlen)
{
    return publish(staging_fd, staging_name, data_fd, root_fd, rel, modes,
                   true, err, errlen);
}

int
store_publish_unsynced_dirs(int staging_fd, const char *staging_name,
                            int data_fd, int root_fd, const char *rel,
                            const struct store_modes *modes, char *err,
                            size_t errlen)
{
    return publish(staging_fd, staging_name, data_fd, root_fd, rel, modes,
                   false, err, errlen);
}

int
store_sync_dir(int root_fd, const char *dir, bool holds_file, char *err,
               size_t errlen)
{
    char        rel[STORE_PATH_MAX + 3];
    const char *leaf;
    int         dfd, rc;

    /* The directory is the parent of a made-up leaf below it. */
    if ((size_t)snprintf(rel, sizeof(rel), "%s%sx", dir, dir[0] ? "/" : "")
        >= sizeof(rel)) {
        errno = ENAMETOOLONG;
        return fail(err, errlen, "directory path");
    }
    if (store_open_parent_unsynced(root_fd, rel, 0, &dfd, &leaf, err,
                                   errlen) < 0)
        return -1;
    rc = holds_file ? SYNC_AT("publish_dir", fsync(dfd))
                    : SYNC_AT("publish_parent_dir", fsync(dfd));
    if (rc < 0)
        fail(err, errlen, holds_file ? "fsync of target directory"
                                     : "fsync of parent directory");
    close_keep_errno(dfd);
    return rc < 0 ? -1 : 0;
}

void
store_unpublish(int root_fd, const char *rel, int data_fd)
{
    const char *leaf;
    int         dfd, e = errno;

    if (store_open_parent_unsynced(root_fd, rel, 0, &dfd, &leaf, NULL, 0) < 0)
        return;
    unpublish(dfd, leaf, data_fd);
    close(dfd);
    errno = e;
}

int
store_staging_discard(int staging_fd, const char *name)
{
    if (unlinkat(staging_fd, name, 0) < 0 && errno != ENOENT)
        return -1;
    return 0;
}

int
store_free_bytes(int fd, uint64_t *out)
{
    struct statvfs sv;

    if (fstatvfs(fd, &sv) < 0)
        return -1;
    /* f_bavail, not f_bfree: the root-reserved blocks are not ours. */
    *out = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    return 0;
}
