/* path.c: decoding and confinement of client-supplied paths. */
#define _GNU_SOURCE     /* dup3 */
#include "lib/store/path.h"
#include "lib/util/hex.h"
#include "lib/util/syncsite.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void
close_keep(int fd)
{
    int e = errno;

    close(fd);
    errno = e;
}


/* The one rule for a component, shared by decoding and by the walk, so an
 * fd-level caller that skipped store_path_decode still cannot pass ".." or
 * an absolute path to openat. Messages never echo client bytes (log
 * injection): they name the component by position. */
static int
check_comp(const char *s, size_t n, size_t idx, int last, char *err,
           size_t errlen)
{
    if (n == 0) {
        seterr(err, errlen, idx == 0 && last ? "empty path"
               : idx == 0 ? "path starts with '/'"
               : last ? "path ends with '/'" : "empty component ('//')");
        return -1;
    }
    if (n > STORE_NAME_MAX) {
        seterr(err, errlen, "component %zu longer than %d bytes", idx + 1,
               STORE_NAME_MAX);
        return -1;
    }
    if (s[0] == '.') {
        if (n == 1 || (n == 2 && s[1] == '.'))
            seterr(err, errlen, "component %zu is '%.*s'", idx + 1, (int)n, s);
        else
            seterr(err, errlen, "component %zu starts with '.'", idx + 1);
        return -1;
    }
    if (idx >= STORE_DEPTH_MAX) {
        seterr(err, errlen, "more than %d components", STORE_DEPTH_MAX);
        return -1;
    }
    return 0;
}

/* Only reached for bytes inside a component, so any '/' here came from a
 * "%2F": refusing it keeps the component structure the one the MAC saw. */
static int
check_byte(unsigned char c, size_t idx, char *err, size_t errlen)
{
    if (c == 0) {
        seterr(err, errlen, "NUL byte in component %zu", idx + 1);
        return -1;
    }
    if (c == '/') {
        seterr(err, errlen, "encoded '/' (%%2F) in component %zu", idx + 1);
        return -1;
    }
    if (c < 0x20 || c == 0x7f) {
        seterr(err, errlen, "control byte 0x%02x in component %zu", c, idx + 1);
        return -1;
    }
    if (c == '\\') {
        seterr(err, errlen, "backslash in component %zu", idx + 1);
        return -1;
    }
    return 0;
}

int
store_path_decode(const char *raw, size_t rawlen, char *out, size_t outlen,
                  size_t *outlen_r, char *err, size_t errlen)
{
    size_t        i, o = 0, start = 0, idx = 0;
    int           hi, lo, sep;
    unsigned char c;

    if (rawlen == 0 || raw[0] == '/')
        return check_comp(raw, 0, 0, rawlen == 0, err, errlen);
    for (i = 0; i < rawlen; i++) {
        c = (unsigned char)raw[i];
        sep = c == '/';
        if (sep) {
            if (check_comp(out + start, o - start, idx, 0, err, errlen) < 0)
                return -1;
            if (++idx >= STORE_DEPTH_MAX) {
                seterr(err, errlen, "more than %d components",
                       STORE_DEPTH_MAX);
                return -1;
            }
        } else {
            if (c == '%') {
                if (rawlen - i < 3 || (hi = hex_value(raw[i + 1])) < 0
                    || (lo = hex_value(raw[i + 2])) < 0) {
                    seterr(err, errlen, "bad %%-escape in component %zu",
                           idx + 1);
                    return -1;
                }
                c = (unsigned char)(hi << 4 | lo);
                i += 2;
            }
            /* A decoded '/' is refused here, not treated as a separator. */
            if (check_byte(c, idx, err, errlen) < 0)
                return -1;
        }
        if (o >= STORE_PATH_MAX) {
            seterr(err, errlen, "path longer than %d bytes", STORE_PATH_MAX);
            return -1;
        }
        if (o + 1 >= outlen) {
            seterr(err, errlen, "output buffer too small");
            return -1;
        }
        out[o++] = (char)c;
        if (sep)
            start = o;
    }
    out[o] = '\0';
    if (check_comp(out + start, o - start, idx, 1, err, errlen) < 0)
        return -1;
    if (outlen_r != NULL)
        *outlen_r = o;
    return 0;
}

/* Re-validates a decoded path before any fd work: the walk below is only
 * confined if no component is "", "." or "..". */
static int
check_rel(const char *rel, char *err, size_t errlen)
{
    size_t idx = 0, len = strlen(rel);
    const char *p = rel, *slash;

    if (len > STORE_PATH_MAX) {
        seterr(err, errlen, "path longer than %d bytes", STORE_PATH_MAX);
        return -1;
    }
    for (;;) {
        slash = strchr(p, '/');
        if (check_comp(p, slash ? (size_t)(slash - p) : strlen(p), idx,
                       slash == NULL, err, errlen) < 0)
            return -1;
        if (slash == NULL)
            return 0;
        p = slash + 1;
        idx++;
    }
}

/* Makes a missing directory with exactly dir_mode: mkdirat's mode passes
 * through the umask, and operators choose storage.dir_mode so that another
 * user (a web server) can read the tree, whatever umask we started with. */
static int
make_dir(int dfd, const char *name, mode_t dir_mode, int flags,
         const char **what)
{
    int fd;

    if (mkdirat(dfd, name, dir_mode) < 0) {
        if (errno != EEXIST) {
            *what = "mkdirat";
            return -1;
        }
        return openat(dfd, name, flags);    /* a concurrent creator's */
    }
    fd = openat(dfd, name, flags);
    if (fd >= 0 && fchmod(fd, dir_mode) < 0) {
        *what = "fchmod of new directory";
        close_keep(fd);
        fd = -1;
    }
    return fd;
}

/* Opens one directory component, making it first if asked (dir_mode not
 * 0). Then the parent is fsynced whether or not we made the directory: one
 * made an instant ago by a concurrent publisher may not be synced yet, and
 * our file must not survive a power cut only to lose the directory that
 * names it. Syncing a clean directory is cheap next to the data sync before
 * it. */
static int
open_dir(int dfd, const char *name, mode_t dir_mode, bool sync, char *err,
         size_t errlen)
{
    int         fd, e, flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    const char *what = "openat";
    struct stat st;

    fd = openat(dfd, name, flags);
    if (fd < 0 && errno == ENOENT && dir_mode != 0)
        fd = make_dir(dfd, name, dir_mode, flags, &what);
    if (fd >= 0 && dir_mode != 0 && sync
        && SYNC_AT("publish_parent_dir", fsync(dfd)) < 0) {
        what = "fsync of parent directory";
        close_keep(fd);
        fd = -1;
    }
    if (fd >= 0)
        return fd;
    e = errno;
    /* O_DIRECTORY is checked before O_NOFOLLOW, so a symlink reports
     * ENOTDIR; callers deserve to know it was a link. */
    if (e == ENOTDIR && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
        && S_ISLNK(st.st_mode))
        e = ELOOP;
    if (e == ELOOP)
        seterr(err, errlen, "symlink in path");
    else if (e == ENOTDIR)
        seterr(err, errlen, "non-directory in path");
    else
        seterr(err, errlen, "%s: %s", what, strerror(e));
    errno = e;
    return -1;
}

static int
open_parent(int root_fd, const char *rel, mode_t dir_mode, bool sync,
            int *dirfd_r, const char **leaf_r, char *err, size_t errlen)
{
    char        comp[STORE_NAME_MAX + 1];
    const char *p = rel, *slash;
    int         cur, fd;

    if (check_rel(rel, err, errlen) < 0) {
        errno = EINVAL;
        return -1;
    }
    cur = root_fd;
    while ((slash = strchr(p, '/')) != NULL) {
        memcpy(comp, p, (size_t)(slash - p));
        comp[slash - p] = '\0';
        fd = open_dir(cur, comp, dir_mode, sync, err, errlen);
        if (cur != root_fd)
            close_keep(cur);
        if (fd < 0)
            return -1;
        cur = fd;
        p = slash + 1;
    }
    /* Always hand back an fd the caller owns, even for a one-component
     * path whose parent is the root itself (only then a dup: a syscall
     * per upload saved on the usual /<dir>/<file>). */
    if (cur == root_fd && (cur = fcntl(root_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        seterr(err, errlen, "dup of root fd: %s", strerror(errno));
        return -1;
    }
    *dirfd_r = cur;
    *leaf_r = p;
    return 0;
}

int
store_open_parent(int root_fd, const char *rel, mode_t dir_mode,
                  int *dirfd_r, const char **leaf_r, char *err, size_t errlen)
{
    return open_parent(root_fd, rel, dir_mode, true, dirfd_r, leaf_r, err,
                       errlen);
}

int
store_open_parent_unsynced(int root_fd, const char *rel, mode_t dir_mode,
                           int *dirfd_r, const char **leaf_r, char *err,
                           size_t errlen)
{
    return open_parent(root_fd, rel, dir_mode, false, dirfd_r, leaf_r, err,
                       errlen);
}

/* One syscall instead of a walk per GET. ENOSYS: kernel < 5.6 or a seccomp
 * profile that predates openat2 (Docker's did); EPERM: profiles that deny
 * rather than hide it. Either way the walk gives the same confinement. */
static int
open_beneath(int root_fd, const char *rel, int flags)
{
    struct open_how how;

    memset(&how, 0, sizeof(how));
    how.flags = (unsigned long long)flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
                  | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
}

static int
open_walk(int root_fd, const char *rel, int flags)
{
    const char *leaf;
    int         dfd, fd;

    if (store_open_parent(root_fd, rel, 0, &dfd, &leaf, NULL, 0) < 0)
        return -1;
    fd = openat(dfd, leaf, flags);
    close_keep(dfd);
    return fd;
}

int
store_open_file(int root_fd, const char *rel, int *fd_r, struct stat *st_r,
                char *err, size_t errlen)
{
    int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    int fd, saved;

    if (check_rel(rel, err, errlen) < 0) {
        errno = EINVAL;
        return -1;
    }
    fd = open_beneath(root_fd, rel, flags);
    if (fd < 0 && (errno == ENOSYS || errno == EPERM))
        fd = open_walk(root_fd, rel, flags);
    if (fd < 0) {
        saved = errno;
        if (saved == ELOOP)
            seterr(err, errlen, "symlink in path");
        else if (saved == ENOTDIR)
            seterr(err, errlen, "non-directory in path");
        else
            seterr(err, errlen, "open: %s", strerror(saved));
        errno = saved;
        return -1;
    }
    if (fstat(fd, st_r) < 0) {
        saved = errno;
        seterr(err, errlen, "fstat: %s", strerror(saved));
    } else if (!S_ISREG(st_r->st_mode)) {
        saved = S_ISDIR(st_r->st_mode) ? EISDIR : EPERM;
        seterr(err, errlen, "not a regular file");
    } else {
        *fd_r = fd;
        return 0;
    }
    close(fd);
    errno = saved;
    return -1;
}

int
store_dir_refresh(const char *path, int fd, struct stat *st_r, char *err,
                  size_t errlen)
{
    struct stat ps, fs;
    int         nfd, e;

    if (stat(path, &ps) < 0) {
        e = errno;
        seterr(err, errlen, e == ENOENT ? "is missing" : "%s", strerror(e));
        errno = e;
        return -1;
    }
    if (!S_ISDIR(ps.st_mode)) {
        seterr(err, errlen, "is not a directory");
        errno = ENOTDIR;
        return -1;
    }
    /* While we hold the old directory its inode cannot be freed, so an
     * equal (st_dev, st_ino) really is the same directory. */
    if (fstat(fd, &fs) == 0 && fs.st_nlink > 0 && fs.st_dev == ps.st_dev
        && fs.st_ino == ps.st_ino) {
        if (st_r)
            *st_r = fs;
        return 0;
    }
    nfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (nfd < 0) {
        e = errno;
        seterr(err, errlen, "cannot be opened: %s", strerror(e));
        errno = e;
        return -1;
    }
    /* dup3, not close and open: other threads may be using the number
     * right now, and it must name a directory throughout, never a closed
     * (or reused) descriptor. */
    if (dup3(nfd, fd, O_CLOEXEC) < 0 || (st_r && fstat(nfd, st_r) < 0)) {
        e = errno;
        seterr(err, errlen, "dup3: %s", strerror(e));
        close(nfd);
        errno = e;
        return -1;
    }
    close(nfd);
    return 1;
}
