/* session_owner.c: a worker's side of cluster ownership (docs/cluster.md).
 *
 * With a `cluster` section, every request on a session first makes sure
 * this worker holds the session's owner lock (lib/store/owner.h): held
 * already and still valid, joined (another worker of this node holds it),
 * or newly acquired — a takeover, after which the node's shm entry is
 * rebuilt from the manifest by the same code a restart runs
 * (lib/store/resume.h). Another node's session is answered 503. Before a
 * commit or a publication the hold is checked again, so a node that lost
 * the session behind its back (a partition) acknowledges nothing.
 *
 * The holds live in a small set per worker (w->owners), used from the
 * pool's threads under its mutex. Without a cluster section w->owners is
 * NULL and nothing here runs. */
#define _GNU_SOURCE
#include "worker/session_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/conf/conf.h"
#include "lib/store/owner.h"
#include "lib/store/resume.h"
#include "lib/util/log.h"
#include "worker/conn.h"

struct sess_owners {
    pthread_mutex_t mu;
    struct owner  **held;
    size_t          n, cap;
};

void
sess_owners_init(struct worker *w)
{
    if (w->conf->node_id[0] == '\0' || w->owners != NULL)
        return;
    struct sess_owners *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return;            /* sess_open then refuses: see sess_own_needed */
    pthread_mutex_init(&o->mu, NULL);
    w->owners = o;
}

void
sess_owners_fini(struct worker *w)
{
    struct sess_owners *set = w->owners;
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        owner_release(set->held[i]);
    free(set->held);
    pthread_mutex_destroy(&set->mu);
    free(set);
    w->owners = NULL;
}

bool
sess_own_needed(const struct sess *s)
{
    return s->w->conf->node_id[0] != '\0';
}

bool
sess_open_needed(const struct sess *s)
{
    return sess_own_needed(s);
}

bool
sess_elsewhere(const struct sess *s)
{
    return s->elsewhere;
}

/* Index of key's hold in the set, or -1. Under set->mu. */
static ssize_t
find(struct sess_owners *set, const uint8_t key[MANIFEST_KEY_LEN])
{
    for (size_t i = 0; i < set->n; i++)
        if (memcmp(owner_key(set->held[i]), key, MANIFEST_KEY_LEN) == 0)
            return (ssize_t)i;
    return -1;
}

/* Is this worker's hold on key still valid? 1 yes, 0 it holds none, -1 it
 * held one that is no longer valid (dropped; err says why). The check runs
 * under the set's mutex so two requests of one session in this worker
 * never see each other's hold half-gone; it costs a few calls. */
static int
check_held(struct sess_owners *set, const uint8_t key[MANIFEST_KEY_LEN],
           char *err, size_t errlen)
{
    pthread_mutex_lock(&set->mu);
    ssize_t i = find(set, key);
    int rc = i < 0 ? 0 : 1;
    if (i >= 0 && owner_check(set->held[i], err, errlen) < 0) {
        int e = errno;
        owner_release(set->held[i]);
        set->held[i] = set->held[--set->n];
        errno = e;
        rc = -1;
    }
    pthread_mutex_unlock(&set->mu);
    return rc;
}

/* Takes the hold for key out of the set; NULL if this worker holds none. */
static struct owner *
take(struct sess_owners *set, const uint8_t key[MANIFEST_KEY_LEN])
{
    struct owner *o = NULL;
    pthread_mutex_lock(&set->mu);
    ssize_t i = find(set, key);
    if (i >= 0) {
        o = set->held[i];
        set->held[i] = set->held[--set->n];
    }
    pthread_mutex_unlock(&set->mu);
    return o;
}

/* Puts a hold (back) in the set; a second hold of the same session (two
 * requests took it at once) is released. */
static void
put(struct sess_owners *set, struct owner *o)
{
    pthread_mutex_lock(&set->mu);
    if (find(set, owner_key(o)) >= 0) {
        pthread_mutex_unlock(&set->mu);
        owner_release(o);
        return;
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        struct owner **h = realloc(set->held, cap * sizeof(*h));
        if (h == NULL) {
            pthread_mutex_unlock(&set->mu);
            owner_release(o);          /* the next request acquires again */
            return;
        }
        set->held = h;
        set->cap = cap;
    }
    set->held[set->n++] = o;
    pthread_mutex_unlock(&set->mu);
}

/* The node's shm entry for a session it just took over, replaced by what
 * the manifest says (a stale entry from an earlier ownership says less, or
 * more: the session may have been finished elsewhere). 0 or a status. */
static int
rebuild(struct sess *s, bool *none)
{
    static __thread struct resume rs;                /* large */
    static __thread struct shm_rebuild rb;
    struct shm_table *t = s->w->table;
    struct shm_ref ref;
    struct shm_view v;
    char err[256], hex[MANIFEST_KEY_HEXLEN + 1];
    struct resume_limits lim = {
        .now = sess_now(), .idle_timeout = s->w->conf->sessiontimeout,
        .done_keep = SHM_DONE_KEEP_S, .flags = MANIFEST_TRUNCATE,
    };

    manifest_key_hex(s->key, hex);
    if (resume_session(s->w->staging_fd, s->key, &lim, &rs, s->err,
                       sizeof(s->err)) < 0)
        return 500;
    if (rs.verdict == RESUME_CORRUPT) {
        log_error("session %.16s is corrupt, left in place: %s", hex, s->err);
        return 500;
    }
    if (shm_table_find(t, s->key, &ref, &v, err, sizeof(err)) == SHM_TABLE_OK)
        shm_table_remove(t, ref, err, sizeof(err));
    if (rs.verdict == RESUME_REMOVED) {
        *none = true;            /* the request finds no session, as it is */
        return 0;
    }
    struct shm_session ss = {
        .size = rs.st.size == MANIFEST_SIZE_UNKNOWN ? SHM_SIZE_UNKNOWN
                                                    : rs.st.size,
        .chunk_size = rs.st.header.chunk_size,
        .proto = rs.st.header.proto,
        .expires = rs.expires,
    };
    rb.state = rs.verdict == RESUME_DONE ? SHM_DONE : SHM_ACTIVE;
    rb.size = ss.size;
    rb.held = rs.st.held;
    int rc = shm_table_restore(t, s->key, &ss, &rb, rs.st.mtime, &ref, err,
                               sizeof(err));
    if (rc == SHM_TABLE_FULL)
        return 503;
    if (rc != SHM_TABLE_OK && rc != SHM_TABLE_CONFLICT) {
        snprintf(s->err, sizeof(s->err), "%s", err);
        return 500;
    }
    log_info("took over session %s from its manifest (%llu bytes held)",
             rs.st.header.path, (unsigned long long)ranges_total(&rs.st.held));
    return 0;
}

int
sess_own_work(struct sess *s)
{
    struct sess_owners *set = s->w->owners;
    struct owner *o;

    s->err[0] = '\0';
    if (set == NULL) {
        snprintf(s->err, sizeof(s->err), "out of memory");
        return 503;
    }
    int held = check_held(set, s->key, s->err, sizeof(s->err));
    if (held > 0)
        return 0;
    if (held < 0)
        log_info("cluster: %s; taking it again", s->err);
    switch (owner_acquire(s->w->staging_fd, s->key, s->w->conf->node_id, &o,
                          s->err, sizeof(s->err))) {
    case OWNER_OTHER:
        s->elsewhere = true;
        return 503;
    case OWNER_ERROR:
        return errno == ENOSPC || errno == EDQUOT ? 507 : 500;
    case OWNER_JOINED:
        break;
    case OWNER_NEW: {
        bool none = false;
        int rc = rebuild(s, &none);
        if (rc == 0 && none && !s->create) {
            /* Nothing to own (a status request for an unknown or finished
             * session): leave no owner file behind. Removed with the gate
             * still held: a PUT creating this session right now and
             * waiting for the gate must find a new file, not join this
             * one (issue 14). */
            owner_remove(o);
            return 404;
        }
        owner_ready(o);
        if (rc != 0) {
            owner_release(o);
            return rc;
        }
        break;
    }
    }
    put(set, o);
    return 0;
}

int
sess_owner_check(struct sess *s)
{
    struct sess_owners *set = s->w->owners;
    if (!sess_own_needed(s))
        return 0;
    int held = set ? check_held(set, s->key, s->err, sizeof(s->err)) : 0;
    if (held > 0)
        return 0;
    if (held == 0)
        snprintf(s->err, sizeof(s->err), "session moved to another cluster "
                 "node");
    s->elsewhere = true;
    log_warn("cluster: session %s: %s; nothing acknowledged", s->hdr.path,
             s->err);
    errno = ESTALE;
    return -1;
}

/* The janitor found this worker's table entry for key doomed or idle past
 * the timeout. On one node that is the end of it; in a cluster the entry
 * may be stale (another node took the session over and works on it), so
 * the directory goes only if this node owns the session and, when it did
 * not before, its manifest agrees it is over. 0: the entry may be freed. */
int
sess_owner_expire(struct worker *w, const uint8_t key[MANIFEST_KEY_LEN])
{
    static __thread struct resume rs;                /* large */
    char err[256];
    struct owner *o = w->owners ? take(w->owners, key) : NULL;
    if (o != NULL && owner_check(o, err, sizeof(err)) < 0) {
        owner_release(o);             /* lost behind our back */
        o = NULL;
    }
    int rc = o ? OWNER_JOINED
               : owner_acquire(w->staging_fd, key, w->conf->node_id, &o, err,
                               sizeof(err));
    if (rc == OWNER_OTHER)
        return 0;                  /* someone else's now: forget it here */
    if (rc == OWNER_ERROR)
        return -1;
    if (rc == OWNER_NEW) {
        /* Not ours until now: the manifest decides (it removes what is
         * over, keeps what another node touched recently). */
        struct resume_limits lim = {
            .now = sess_now(), .idle_timeout = w->conf->sessiontimeout,
            .done_keep = SHM_DONE_KEEP_S, .flags = 0,
        };
        rc = resume_session(w->staging_fd, key, &lim, &rs, err, sizeof(err));
        if (rc == 0 && rs.verdict == RESUME_REMOVED)
            owner_remove(o);          /* gate held: nobody joins it */
        else
            owner_release(o);
        return 0;
    }
    rc = manifest_remove(w->staging_fd, key, err, sizeof(err));
    if (rc == 0)
        owner_remove(o);
    else
        owner_release(o);
    return rc < 0 ? -1 : 0;
}

void
sess_owner_drop(struct worker *w, const uint8_t key[MANIFEST_KEY_LEN],
                bool gone)
{
    struct owner *o = w->owners ? take(w->owners, key) : NULL;
    if (o == NULL)
        return;
    if (gone)
        owner_remove(o);
    else
        owner_release(o);
}
