/* owner.c: a session's cluster ownership as OFD byte-range locks on
 * staging/<aa>/<key>.owner (the scheme is in owner.h and docs/cluster.md).
 *
 * Only fcntl-type OFD locks touch this file, so GlusterFS's cross-kind
 * conflicts (flock vs fcntl) cannot bite; OFD rather than classic POSIX
 * locks because those belong to the process and would be dropped by any
 * close of the file in it, and would not conflict between the threads of a
 * worker's sync pool. */
#define _GNU_SOURCE
#include "lib/store/owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define GATE_TRIES    500          /* x 1 ms: a gate is held for a rebuild */
#define OPEN_TRIES    4            /* the name replaced under us: again */
#define TOKEN_MAX     (16 + 1 + OWNER_NODE_ID_MAX + 2)
/* try_acquire's "the name was replaced under us: open it again". Not 1:
 * that is OWNER_JOINED, and a lock on an unlinked file taken for a join
 * is a hold nobody else can see (issue 14: a status HEAD's cleanup under
 * a starting PUT left the PUT's worker holding the dead file). */
#define OWNER_AGAIN   (-2)

struct owner {
    int      fd, staging_fd;
    uint64_t slot;
    bool     gate;
    uint8_t  key[MANIFEST_KEY_LEN];
    char     rel[MANIFEST_KEY_HEXLEN + 16];    /* "aa/<hex>.owner" */
    char     token[TOKEN_MAX + 1];
};

static int
fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    errno = e;
    return OWNER_ERROR;
}

uint64_t
owner_slot(const char *node_id)
{
    uint64_t h = 0xcbf29ce484222325ULL;              /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)node_id; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return 1 + (h & ((1ULL << 46) - 1));
}

int
owner_node_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > OWNER_NODE_ID_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!(id[i] >= 'a' && id[i] <= 'z') && !(id[i] >= 'A' && id[i] <= 'Z')
            && !(id[i] >= '0' && id[i] <= '9') && !strchr("._-", id[i]))
            return -1;
    return 0;
}

/* F_OFD_SETLK of [start, start + len) (len 0: to the end, however far). */
static int
lock(int fd, short type, uint64_t start, uint64_t len)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
                        .l_start = (off_t)start, .l_len = (off_t)len };
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* Would a write lock on the range conflict? 1 yes, 0 no, -1 error. */
static int
locked_by_other(int fd, uint64_t start, uint64_t len)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                        .l_start = (off_t)start, .l_len = (off_t)len };
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return -1;
    return fl.l_type != F_UNLCK;
}

static void
read_token(int fd, char out[TOKEN_MAX + 1])
{
    ssize_t n = pread(fd, out, TOKEN_MAX, 0);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* The node named in a token, for messages. */
static const char *
token_node(const char *token)
{
    const char *sp = strchr(token, ' ');
    return sp && sp[1] ? sp + 1 : "(unknown)";
}

static bool
same_inode(const struct owner *o)
{
    struct stat a, b;
    return fstat(o->fd, &a) == 0
           && fstatat(o->staging_fd, o->rel, &b, AT_SYMLINK_NOFOLLOW) == 0
           && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static int
take_gate(struct owner *o)
{
    for (int i = 0; i < GATE_TRIES; i++) {
        if (lock(o->fd, F_WRLCK, 0, 1) == 0) {
            o->gate = true;
            return 0;
        }
        if (errno != EAGAIN && errno != EACCES)
            return -1;
        usleep(1000);
    }
    errno = EAGAIN;
    return -1;
}

static int
open_file(struct owner *o, char *err, size_t errlen)
{
    char fan[3] = { o->rel[0], o->rel[1], '\0' };
    if (mkdirat(o->staging_fd, fan, 0700) < 0 && errno != EEXIST)
        return fail(err, errlen, errno, "owner %.8s: mkdir: %s", o->rel + 3,
                    strerror(errno));
    o->fd = openat(o->staging_fd, o->rel,
                   O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (o->fd < 0)
        return fail(err, errlen, errno, "owner %.8s: open: %s", o->rel + 3,
                    strerror(errno));
    return 0;
}

/* New ownership: a token nobody else holds, written under the gate. */
static int
write_token(struct owner *o, const char *node_id)
{
    uint64_t r;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    char line[TOKEN_MAX + 2];
    int n = snprintf(line, sizeof(line), "%016llx %s\n",
                     (unsigned long long)r, node_id);
    if (pwrite(o->fd, line, (size_t)n, 0) != n || ftruncate(o->fd, n) < 0)
        return -1;
    snprintf(o->token, sizeof(o->token), "%016llx %s",
             (unsigned long long)r, node_id);
    return 0;
}

/* One try on the file now at the name: OWNER_*, or OWNER_AGAIN. */
static int
try_acquire(struct owner *o, const char *node_id, char *err, size_t errlen)
{
    const char *hex = o->rel + 3;
    if (open_file(o, err, errlen) < 0)
        return OWNER_ERROR;
    if (take_gate(o) < 0)
        return errno == EAGAIN
               ? (snprintf(err, errlen, "session %.8s is being taken over "
                           "right now", hex), OWNER_OTHER)
               : fail(err, errlen, errno, "owner %.8s: lock: %s", hex,
                      strerror(errno));
    int before = locked_by_other(o->fd, 1, o->slot - 1);
    int after = before == 0 ? locked_by_other(o->fd, o->slot + 1, 0) : before;
    if (before < 0 || after < 0)
        return fail(err, errlen, errno, "owner %.8s: lock test: %s", hex,
                    strerror(errno));
    if (before || after) {
        read_token(o->fd, o->token);
        snprintf(err, errlen, "session is owned by cluster node %.64s",
                 token_node(o->token));
        return OWNER_OTHER;
    }
    int sibling = locked_by_other(o->fd, o->slot, 1);
    if (sibling < 0 || lock(o->fd, F_RDLCK, o->slot, 1) < 0)
        return fail(err, errlen, errno, "owner %.8s: lock: %s", hex,
                    strerror(errno));
    if (!same_inode(o))
        return OWNER_AGAIN;        /* unlinked by a finishing owner */
    if (sibling) {
        read_token(o->fd, o->token);
        owner_ready(o);
        return OWNER_JOINED;
    }
    if (write_token(o, node_id) < 0)
        return fail(err, errlen, errno, "owner %.8s: token: %s", hex,
                    strerror(errno));
    return OWNER_NEW;
}

int
owner_acquire(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
              const char *node_id, struct owner **o_r, char *err,
              size_t errlen)
{
    char hex[MANIFEST_KEY_HEXLEN + 1];
    struct owner *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return fail(err, errlen, ENOMEM, "out of memory");
    manifest_key_hex(key, hex);
    memcpy(o->key, key, MANIFEST_KEY_LEN);
    snprintf(o->rel, sizeof(o->rel), "%.2s/%s.owner", hex, hex);
    o->staging_fd = staging_fd;
    o->slot = owner_slot(node_id);
    int rc = OWNER_AGAIN;
    for (int i = 0; i < OPEN_TRIES && rc == OWNER_AGAIN; i++) {
        o->fd = -1;
        o->gate = false;
        rc = try_acquire(o, node_id, err, errlen);
        if (rc == OWNER_NEW || rc == OWNER_JOINED) {
            *o_r = o;
            return rc;
        }
        int e = errno;
        if (o->fd >= 0)
            close(o->fd);              /* drops every lock we took */
        errno = e;
    }
    free(o);
    if (rc == OWNER_AGAIN)
        return fail(err, errlen, EAGAIN, "owner %.8s: the lock file keeps "
                    "being replaced", hex);
    return rc;
}

void
owner_ready(struct owner *o)
{
    if (o->gate)
        (void)lock(o->fd, F_UNLCK, 0, 1);
    o->gate = false;
}

int
owner_check(struct owner *o, char *err, size_t errlen)
{
    char now[TOKEN_MAX + 1];
    /* Re-asserting a read lock we hold is a no-op; it fails when the
     * filesystem invalidated the descriptor (a dropped client). */
    if (lock(o->fd, F_RDLCK, o->slot, 1) < 0)
        return errno == EAGAIN || errno == EACCES
               ? fail(err, errlen, ESTALE, "session is being taken over by "
                      "another cluster node")
               : fail(err, errlen, errno, "session owner lock lost: %s",
                      strerror(errno));
    read_token(o->fd, now);
    if (strcmp(now, o->token) != 0)
        return fail(err, errlen, ESTALE, "session moved to cluster node "
                    "%.64s", token_node(now));
    if (!same_inode(o))
        return fail(err, errlen, ESTALE, "session was finished or removed "
                    "by another cluster node");
    return 0;
}

void
owner_release(struct owner *o)
{
    if (o == NULL)
        return;
    close(o->fd);
    free(o);
}

void
owner_remove(struct owner *o)
{
    if (o == NULL)
        return;
    /* Under the gate, like every acquisition's inode check: one that
     * opened this file and waits for the gate then finds the name gone
     * and opens the new file, instead of joining a file about to be
     * unlinked. Gate busy for longer than GATE_TRIES: the file stays, an
     * orphan for the next start's sweep. */
    if ((o->gate || take_gate(o) == 0) && same_inode(o))
        (void)unlinkat(o->staging_fd, o->rel, 0);
    owner_release(o);
}

const uint8_t *
owner_key(const struct owner *o)
{
    return o->key;
}

static bool
is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i]) || s[i] == '\0')
            return false;
    return true;
}

/* One fan-out directory's orphans. */
static int
sweep_fan(int staging_fd, const char *fan, const char *node_id)
{
    int fd = openat(staging_fd, fan, O_RDONLY | O_DIRECTORY | O_NOFOLLOW
                                     | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    int n = 0;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        uint8_t key[MANIFEST_KEY_LEN];
        char session[MANIFEST_KEY_HEXLEN + 1], err[256];
        struct owner *o;
        if (strlen(name) != MANIFEST_KEY_HEXLEN + 6
            || strcmp(name + MANIFEST_KEY_HEXLEN, ".owner") != 0
            || !is_hex(name, MANIFEST_KEY_HEXLEN))
            continue;
        memcpy(session, name, MANIFEST_KEY_HEXLEN);
        session[MANIFEST_KEY_HEXLEN] = '\0';
        for (int i = 0; i < MANIFEST_KEY_LEN; i++) {
            unsigned v;
            sscanf(session + 2 * i, "%2x", &v);
            key[i] = (uint8_t)v;
        }
        if (faccessat(dirfd(d), session, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            continue;                          /* a session goes with it */
        int rc = owner_acquire(staging_fd, key, node_id, &o, err,
                               sizeof(err));
        if (rc != OWNER_NEW && rc != OWNER_JOINED)
            continue;                          /* someone holds it */
        if (faccessat(dirfd(d), session, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
            owner_release(o);                  /* created meanwhile */
            continue;
        }
        owner_remove(o);
        n++;
    }
    closedir(d);
    return n;
}

int
owner_sweep_orphans(int staging_fd, const char *node_id, char *err,
                    size_t errlen)
{
    int fd = openat(staging_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    int n = 0;
    if (d == NULL) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(err, errlen, e, "staging: open: %s", strerror(e));
    }
    while ((de = readdir(d)) != NULL)
        if (strlen(de->d_name) == 2 && is_hex(de->d_name, 2))
            n += sweep_fan(staging_fd, de->d_name, node_id);
    closedir(d);
    return n;
}
