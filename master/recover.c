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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/store/manifest.h"
#include "lib/store/owner.h"
#include "lib/store/publish.h"
#include "lib/store/resume.h"
#include "lib/util/log.h"
#include "shm/table.h"

struct recovery {
    struct master *m;
    int64_t        now;
    int            restored, removed, broken, elsewhere;
};

/* Puts a session the manifest says is resumable back into the table. */
static void
restore(struct recovery *r, const uint8_t key[MANIFEST_KEY_LEN],
        const struct resume *rs, const char *hex)
{
    static struct shm_rebuild rb;        /* large */
    char err[256];
    const struct manifest_state *st = &rs->st;
    struct shm_session ss = {
        .size = st->size == MANIFEST_SIZE_UNKNOWN ? SHM_SIZE_UNKNOWN
                                                  : st->size,
        .chunk_size = st->header.chunk_size,
        .proto = st->header.proto,
        .expires = rs->expires,
    };
    rb.state = rs->verdict == RESUME_DONE ? SHM_DONE : SHM_ACTIVE;
    rb.size = ss.size;
    rb.held = st->held;
    struct shm_ref ref;
    if (shm_table_restore(r->m->table, key, &ss, &rb, st->mtime, &ref, err,
                          sizeof(err)) != SHM_TABLE_OK) {
        log_error("recovery: session %.16s: %s", hex, err);
        r->broken++;
        return;
    }
    r->restored++;
}

static int recover_owned(const uint8_t key[MANIFEST_KEY_LEN], void *arg);

/* In a cluster (docs/cluster.md) a session another node owns is not ours
 * to replay, cut, restore or remove: a node restarted after its sessions
 * were taken over must not resurrect them. The lock is let go afterwards;
 * the first request on a restored session takes it again. */
static int
recover_one(const uint8_t key[MANIFEST_KEY_LEN], void *arg)
{
    struct recovery *r = arg;
    struct owner *o;
    char err[256], hex[MANIFEST_KEY_HEXLEN + 1];

    if (r->m->conf.node_id[0] == '\0')
        return recover_owned(key, arg);
    manifest_key_hex(key, hex);
    switch (owner_acquire(r->m->staging_fd, key, r->m->conf.node_id, &o, err,
                          sizeof(err))) {
    case OWNER_OTHER:
        log_debug("recovery: session %.16s: %s; left to it", hex, err);
        r->elsewhere++;
        return 0;
    case OWNER_ERROR:
        log_warn("recovery: session %.16s: %s; left alone", hex, err);
        r->broken++;
        return 0;
    default:
        break;
    }
    int removed = r->removed;
    recover_owned(key, arg);
    if (r->removed > removed)
        owner_remove(o);         /* gate still held: nobody joins it */
    else
        owner_release(o);
    return 0;
}

static int
recover_owned(const uint8_t key[MANIFEST_KEY_LEN], void *arg)
{
    struct recovery *r = arg;
    static struct resume rs;             /* large */
    char err[256], hex[MANIFEST_KEY_HEXLEN + 1];
    struct resume_limits lim = {
        .now = r->now, .idle_timeout = r->m->conf.sessiontimeout,
        .done_keep = SHM_DONE_KEEP_S, .flags = MANIFEST_TRUNCATE,
    };

    /* Under storage.sync = "off" a record may have reached the disk
     * without the bytes it describes: re-read every chunk, so a held
     * range is never zeros (the client re-sends a dropped one). */
    if (r->m->conf.sync_mode == CONF_SYNC_OFF)
        lim.flags |= MANIFEST_VERIFY;

    manifest_key_hex(key, hex);
    if (resume_session(r->m->staging_fd, key, &lim, &rs, err,
                       sizeof(err)) < 0) {
        log_warn("recovery: removing session %.16s: %s", hex, err);
        r->removed++;
        return 0;
    }
    switch (rs.verdict) {
    case RESUME_REMOVED:
        log_debug("recovery: removed session %.16s (%s)", hex, rs.why);
        r->removed++;
        break;
    case RESUME_CORRUPT:
        /* Corrupt beyond a torn tail: keep it for a human, serve no one. */
        log_error("recovery: session %.16s is corrupt, left in place: %s",
                  hex, err);
        r->broken++;
        break;
    case RESUME_ACTIVE:
    case RESUME_DONE:
        if (err[0])
            log_warn("recovery: session %.16s: %s", hex, err);
        restore(r, key, &rs, hex);
        break;
    }
    return 0;
}

/* Is the one-shot file `name` garbage for this sweep? On one node: all of
 * them at start (pid 0), or those of the dead worker pid. In a cluster
 * (docs/cluster.md) the staging root is shared: another node's uploads are
 * there too, and its workers' pids may equal ours. Then only a file nobody
 * has written for longer than any request may last is garbage (at start);
 * a dead worker's are left for a later start. */
static bool
oneshot_garbage(struct master *m, const char *name, pid_t pid, time_t now)
{
    if (m->conf.node_id[0] == '\0')
        return pid == 0 || store_staging_owner(name) == pid;
    struct stat st;
    int64_t quiet = (int64_t)m->conf.uploadtimeout + m->conf.readtimeout
                    + m->conf.writetimeout;
    return pid == 0
           && fstatat(m->staging_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
           && (int64_t)st.st_mtime + quiet < (int64_t)now;
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
    time_t now = time(NULL);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "up-", 3) == 0
            && oneshot_garbage(m, de->d_name, pid, now)
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
    if (r.elsewhere > 0)
        log_info("recovery: %d session(s) owned by other cluster nodes, "
                 "left to them", r.elsewhere);
    if (m->conf.node_id[0] != '\0') {
        int n = owner_sweep_orphans(m->staging_fd, m->conf.node_id, err,
                                    errlen);
        if (n < 0)
            log_warn("recovery: owner files: %s", err);
        else if (n > 0)
            log_info("recovery: removed %d owner file(s) no session goes "
                     "with", n);
    }
    return 0;
}
