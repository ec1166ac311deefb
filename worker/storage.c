/* storage.c: the storage roots a worker holds, checked where it matters. */
#define _GNU_SOURCE
#include "worker/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/store/path.h"
#include "lib/store/publish.h"
#include "lib/util/log.h"
#include "worker/conn.h"
#include "worker/loop.h"

/* st_r: the held directory's stat, for the same-filesystem check. */
static int
check_dir(const char *key, const char *path, int fd, struct stat *st_r,
          char *why, size_t len)
{
    char err[160];
    int  rc = store_dir_refresh(path, fd, st_r, err, sizeof(err));

    if (rc < 0) {
        snprintf(why, len, "%s %s", key, err);
        return -1;
    }
    if (rc > 0)
        log_info("%s %s was replaced: re-opened it", key, path);
    /* Real ids are the worker's own after the privilege drop; flags 0
     * asks the kernel, which also answers EROFS and EPERM (immutable). */
    if (faccessat(fd, ".", W_OK | X_OK, 0) < 0) {
        snprintf(why, len, "%s is not writable: %s", key, strerror(errno));
        return -1;
    }
    return 0;
}

static int
check(struct worker *w, char *why, size_t len)
{
    const struct conf *cf = w->conf;
    struct stat        a, b;

    if (check_dir("storage.dir", cf->storage_dir, w->root_fd, &a, why,
                  len) < 0
        || check_dir("storage.staging", cf->staging_dir, w->staging_fd, &b,
                     why, len) < 0)
        return -1;
    /* Publication is a link(2) from one into the other. */
    if (a.st_dev != b.st_dev) {
        snprintf(why, len, "storage.staging is not on the filesystem of "
                 "storage.dir");
        return -1;
    }
    return 0;
}

/* Logs a change of state once per worker, not once per request. */
static int
check_logged(struct worker *w, char *why, size_t len)
{
    int rc = check(w, why, len);

    if (rc < 0 && !w->storage_failing)
        log_error("%s: uploads are refused (503) until it is fixed", why);
    else if (rc == 0 && w->storage_failing)
        log_info("storage is usable again");
    w->storage_failing = rc < 0;
    return rc;
}

int
storage_gate(struct conn *c, const struct http_request *req)
{
    char why[256];

    /* Per root a stat of the path, an fstat of the held directory (also
     * what the same-filesystem check compares) and an access check: six
     * syscalls, done for the first upload of each batch of events the
     * loop handles, so a re-created root is used at once. The uploads of
     * one batch arrived together: checking again for each of them (a
     * quarter of a small upload's syscalls) could tell nothing new. */
    if (req->method != HTTP_PUT && req->method != HTTP_POST
        && req->method != HTTP_PATCH)
        return 0;
    uint64_t turn = loop_turn(c->w->loop);
    if (c->w->storage_gate_turn == turn)
        return 0;
    if (check_logged(c->w, why, sizeof(why)) == 0) {
        c->w->storage_gate_turn = turn;
        return 0;
    }
    conn_reject(c, 503, why);
    return -1;
}

void
storage_tick(struct worker *w)
{
    char why[256];

    check_logged(w, why, sizeof(why));
}

int
storage_health(struct worker *w, char *why, size_t len)
{
    uint64_t avail;

    if (check_logged(w, why, len) < 0)
        return -1;
    if (store_free_bytes(w->root_fd, &avail) < 0) {
        snprintf(why, len, "storage.dir: statvfs: %s", strerror(errno));
        return -1;
    }
    if (avail < w->conf->min_free_bytes) {
        snprintf(why, len, "storage.dir has %llu bytes free, below "
                 "storage.min_free (%llu)", (unsigned long long)avail,
                 (unsigned long long)w->conf->min_free_bytes);
        return -1;
    }
    return 0;
}
