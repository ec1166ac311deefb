/* recover.c: the session table rebuilt from the manifests at start.
 *
 * Shared memory is a cache; the manifests under storage.staging are the
 * truth. Before any worker accepts, the master makes a fresh segment and
 * replays every session directory: torn tails are cut, sessions that were
 * never acknowledged, finished, aborted or expired are removed, the rest
 * go back into the table with exactly the ranges their records prove. So
 * nothing a client was told is durable is lost to kill -9 of any process. */
#define _GNU_SOURCE
#include "master/master.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/store/manifest.h"
#include "lib/store/publish.h"
#include "lib/util/log.h"
#include "shm/table.h"

struct recovery {
    struct master *m;
    int64_t        now;
    int            restored, removed, broken;
};

static void
drop(struct recovery *r, const uint8_t key[MANIFEST_KEY_LEN], const char *why)
{
    char err[256], hex[MANIFEST_KEY_HEXLEN + 1];
    manifest_key_hex(key, hex);
    if (manifest_remove(r->m->staging_fd, key, err, sizeof(err)) < 0)
        log_warn("recovery: removing session %.16s: %s", hex, err);
    else
        log_debug("recovery: removed session %.16s (%s)", hex, why);
    r->removed++;
}

static int
recover_one(const uint8_t key[MANIFEST_KEY_LEN], void *arg)
{
    struct recovery *r = arg;
    struct manifest *mf;
    static struct manifest_state st;     /* large */
    char err[256], hex[MANIFEST_KEY_HEXLEN + 1];

    manifest_key_hex(key, hex);
    if (manifest_open(r->m->staging_fd, key, &mf, err, sizeof(err)) < 0) {
        drop(r, key, "no manifest");
        return 0;
    }
    int rc = manifest_load(mf, MANIFEST_TRUNCATE, &st, err, sizeof(err));
    manifest_close(mf);
    if (rc < 0 && errno == ENODATA) {
        drop(r, key, "never acknowledged");
        return 0;
    }
    if (rc < 0) {
        /* Corrupt beyond a torn tail: keep it for a human, serve no one. */
        log_error("recovery: session %.16s is corrupt, left in place: %s",
                  hex, err);
        r->broken++;
        return 0;
    }
    /* A tus final and its partials stay DONE a while after publication
     * (session_concat.c): a client whose 201 was lost repeats the final. */
    bool keep_done = st.complete && st.header.concat != MANIFEST_CONCAT_NONE
                     && st.mtime + SHM_DONE_KEEP_S > r->now;
    if ((st.complete || st.aborted) && !keep_done) {
        drop(r, key, st.complete ? "complete" : "aborted");
        return 0;
    }
    if (st.mtime + r->m->conf.sessiontimeout < r->now) {
        drop(r, key, "expired");
        return 0;
    }
    if (st.bad_chunks && !keep_done)
        log_warn("recovery: session %.16s: %u chunk record(s) did not match "
                 "the data and were dropped", hex, st.bad_chunks);
    struct shm_session ss = {
        .size = st.size == MANIFEST_SIZE_UNKNOWN ? SHM_SIZE_UNKNOWN : st.size,
        .chunk_size = st.header.chunk_size,
        .proto = st.header.proto,
    };
    static struct shm_rebuild rb;
    rb.state = keep_done ? SHM_DONE : SHM_ACTIVE;
    if (keep_done)
        ss.expires = st.mtime + SHM_DONE_KEEP_S;
    rb.size = ss.size;
    rb.held = st.held;
    struct shm_ref ref;
    if (shm_table_restore(r->m->table, key, &ss, &rb, st.mtime, &ref, err,
                          sizeof(err)) != SHM_TABLE_OK) {
        log_error("recovery: session %.16s: %s", hex, err);
        r->broken++;
        return 0;
    }
    r->restored++;
    return 0;
}

/* One-shot staging files (unknown-size and small uploads) cannot be
 * resumed: a previous run's leftovers (pid 0: all of them), or those of a
 * worker that died (its pid is in their names), are only garbage. One
 * readdir of the staging root, which holds only these files and the 256
 * session fan-out directories. */
void
master_sweep_oneshot(struct master *m, pid_t pid)
{
    /* Not dup(): a dup shares the directory offset, left at the end by
     * the previous sweep. */
    int fd = openat(m->staging_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    int n = 0;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "up-", 3) == 0
            && (pid == 0 || store_staging_owner(de->d_name) == pid)
            && unlinkat(m->staging_fd, de->d_name, 0) == 0)
            n++;
    closedir(d);
    if (n > 0 && pid != 0)
        log_info("removed %d unfinished upload file(s) of worker pid %d", n,
                 (int)pid);
}

/* A segment left by a previous run is replaced (the disk is the truth)
 * once none of its processes is left. Workers orphaned by a master that
 * died finish their requests within shutdown_grace: wait that long for
 * them. A segment whose master is alive is another daemon's: a
 * configuration error, refused at once and left untouched. */
static int
create_table(struct master *m, char *err, size_t errlen)
{
    const char *name = m->conf.shm_name;
    int64_t     until = (int64_t)time(NULL) + m->conf.shutdown_grace + 1;
    bool        told = false;
    int         rc;

    while ((rc = shm_table_create(name, (uint32_t)m->conf.session_capacity,
                                  &m->table, err, errlen)) == SHM_TABLE_BUSY) {
        pid_t owner = shm_table_owner(name);
        if ((owner > 0 && owner != getpid()
             && (kill(owner, 0) == 0 || errno == EPERM))
            || (int64_t)time(NULL) >= until)
            return -1;
        if (!told)
            log_warn("uploads.shm_name %s is still used by processes of a "
                     "previous run (master pid %ld is gone); waiting up to "
                     "%d s for them to finish", name, (long)owner,
                     m->conf.shutdown_grace + 1);
        told = true;
        usleep(100000);
    }
    return rc == SHM_TABLE_OK ? 0 : -1;
}

int
master_recover(struct master *m, char *err, size_t errlen)
{
    struct recovery r = { .m = m, .now = (int64_t)time(NULL) };

    if (create_table(m, err, errlen) < 0)
        return -1;
    master_sweep_oneshot(m, 0);
    if (manifest_foreach(m->staging_fd, recover_one, &r, err, errlen) < 0)
        return -1;
    log_info("recovery: %d session(s) resumable, %d removed%s", r.restored,
             r.removed, r.broken ? ", some corrupt (see above)" : "");
    return 0;
}
