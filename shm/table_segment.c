/* table_segment.c: the session table's shared memory segment as a whole:
 * its layout, creating and attaching it (refusing a segment built by
 * another layout or libc), detaching and unlinking it, the per-process
 * settings and the counters. Nothing here takes a table lock.
 * The layout itself is in shm/table_internal.h. */
#define _GNU_SOURCE
#include "shm/table_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm/lock.h"
#include "shm/table_repair.h"

#define TABLE_MAGIC    0x3154484d53534648ull    /* "HFSSMHT1" */
#define TABLE_LAYOUT   2
#define CAPACITY_MAX   (1u << 20)
#define TIMEOUT_MS     1000


/* Offsets of a segment for `capacity` entries. */
static void
layout(uint32_t capacity, uint32_t *nbuckets, uint64_t *buckets_off,
       uint64_t *entries_off, uint64_t *total)
{
    uint32_t n = NSTRIPES;
    long     page = sysconf(_SC_PAGESIZE);

    while (n < capacity)
        n <<= 1;
    *nbuckets = n;
    *buckets_off = (sizeof(struct hdr) + 63) & ~(uint64_t)63;
    *entries_off = (*buckets_off + (uint64_t)n * 4 + 63) & ~(uint64_t)63;
    *total = *entries_off + (uint64_t)capacity * sizeof(struct entry);
    *total = (*total + (uint64_t)page - 1) & ~((uint64_t)page - 1);
}


static struct shm_table *
handle(void *base, size_t len)
{
    struct shm_table *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->h = base;
    t->buckets = (uint32_t *)((char *)base + t->h->buckets_off);
    t->e = (struct entry *)((char *)base + t->h->entries_off);
    t->len = len;
    t->lock_fd = -1;
    t->timeout_ms = TIMEOUT_MS;
    return t;
}


static int
init_locks(struct shm_table *t, char *err, size_t errlen)
{
    if (shm_mutex_init(&t->h->free_lock, err, errlen) < 0)
        return -1;
    for (int s = 0; s < NSTRIPES; s++)
        if (shm_mutex_init(&t->h->stripe[s], err, errlen) < 0)
            return -1;
    for (uint32_t i = 0; i < t->h->capacity; i++)
        if (shm_mutex_init(&t->e[i].lock, err, errlen) < 0)
            return -1;
    return 0;
}


static void
init_header(struct hdr *h, uint32_t capacity)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    h->layout = TABLE_LAYOUT;
    h->mutex_size = sizeof(pthread_mutex_t);
    h->entry_size = sizeof(struct entry);
    h->capacity = capacity;
    layout(capacity, &h->nbuckets, &h->buckets_off, &h->entries_off,
           &h->total);
    h->nstripes = NSTRIPES;
    h->creator_pid = getpid();
    h->creator_start = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}


/* The master pid a live segment's header names, or 0. */
static pid_t
owner_of(int fd)
{
    struct stat st;
    pid_t       pid = 0;
    void       *p;

    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(struct hdr)
        && (p = mmap(NULL, sizeof(struct hdr), PROT_READ, MAP_SHARED, fd, 0))
           != MAP_FAILED) {
        const struct hdr *h = p;
        if (h->magic == TABLE_MAGIC)
            pid = h->creator_pid;
        munmap(p, sizeof(struct hdr));
    }
    return pid;
}

pid_t
shm_table_owner(const char *name)
{
    int   fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    pid_t pid = fd >= 0 ? owner_of(fd) : 0;

    if (fd >= 0)
        close(fd);
    return pid;
}

static int
in_use(const char *name, int fd, char *err, size_t errlen)
{
    char  who[48] = "";
    pid_t pid = owner_of(fd);

    if (pid > 0)
        snprintf(who, sizeof(who), " (master pid %ld)", (long)pid);
    return tfail(err, errlen, SHM_TABLE_BUSY, "%s is in use by another "
                 "running hmac-file-server%s; give each daemon its own "
                 "uploads.shm_name", name, who);
}

/* Removes a segment left under `name` by a daemon that is gone: all its
 * processes shared one flock on it, and the kernel dropped it when the
 * last of them exited. If the lock cannot be taken, one still runs. */
static int
remove_stale(const char *name, char *err, size_t errlen)
{
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);

    if (fd < 0)
        return errno == ENOENT ? 0 : tfail(err, errlen, SHM_TABLE_ERROR,
                                           "shm_open %s: %s", name,
                                           strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int rc = errno == EWOULDBLOCK ? in_use(name, fd, err, errlen)
               : tfail(err, errlen, SHM_TABLE_ERROR, "flock %s: %s", name,
                       strerror(errno));
        close(fd);
        return rc;
    }
    shm_unlink(name);
    close(fd);           /* drops the lock on the now nameless object */
    return 0;
}

/* A new name for an exclusively locked fd: if a racing daemon's
 * remove_stale unlinked it between our create and our flock, the name now
 * points elsewhere and the segment is not ours to use. */
static int
still_named(const char *name, int fd)
{
    struct stat a, b;
    int         fd2 = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    bool        same;

    if (fd2 < 0)
        return 0;
    same = fstat(fd, &a) == 0 && fstat(fd2, &b) == 0 && a.st_ino == b.st_ino
           && a.st_dev == b.st_dev;
    close(fd2);
    return same;
}

int
shm_table_create(const char *name, uint32_t capacity, struct shm_table **t_r,
                 char *err, size_t errlen)
{
    struct shm_table *t;
    uint64_t          total, boff, eoff;
    uint32_t          nb;
    void             *p;
    int               fd, rc;

    if (capacity == 0 || capacity > CAPACITY_MAX)
        return tfail(err, errlen, SHM_TABLE_ERROR, "session capacity %u out "
                     "of range 1..%u", capacity, CAPACITY_MAX);
    layout(capacity, &nb, &boff, &eoff, &total);
    if ((rc = remove_stale(name, err, errlen)) != 0)
        return rc;
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {      /* another daemon, just now */
        if ((fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0)) >= 0) {
            rc = in_use(name, fd, err, errlen);
            close(fd);
            return rc;
        }
    }
    if (fd < 0)
        return tfail(err, errlen, SHM_TABLE_ERROR, "shm_open %s: %s", name,
                     strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || !still_named(name, fd)) {
        close(fd);
        return tfail(err, errlen, SHM_TABLE_BUSY, "%s is in use by another "
                     "hmac-file-server starting at the same time; give each "
                     "daemon its own uploads.shm_name", name);
    }
    /* ftruncate zero-fills: every entry starts FREE with tag 0. */
    if (ftruncate(fd, (off_t)total) < 0
        || (p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
           == MAP_FAILED)
    {
        tfail(err, errlen, SHM_TABLE_ERROR, "shm %s: %s", name,
              strerror(errno));
        shm_unlink(name);
        close(fd);
        return SHM_TABLE_ERROR;
    }
    init_header(p, capacity);
    if ((t = handle(p, total)) == NULL || init_locks(t, err, errlen) < 0) {
        if (t == NULL)
            tfail(err, errlen, SHM_TABLE_ERROR, "out of memory");
        free(t);
        munmap(p, total);
        shm_unlink(name);
        close(fd);
        return SHM_TABLE_ERROR;
    }
    t->lock_fd = fd;
    table_rebuild_freelist(t);
    /* Last: an attacher that sees the magic sees a finished segment. */
    atomic_thread_fence(memory_order_release);
    t->h->magic = TABLE_MAGIC;
    *t_r = t;
    return SHM_TABLE_OK;
}


/* Why a mapped segment of `len` bytes is not ours to use, or NULL. */
static const char *
header_mismatch(const struct hdr *h, size_t len, pid_t creator)
{
    uint64_t total, boff, eoff;
    uint32_t nb;

    if (len < sizeof(*h) || h->magic != TABLE_MAGIC)
        return "not a session table";
    if (h->layout != TABLE_LAYOUT || h->entry_size != sizeof(struct entry)
        || h->nstripes != NSTRIPES)
        return "built by another version";
    if (h->mutex_size != sizeof(pthread_mutex_t))
        return "built with another pthread_mutex_t";
    if (h->capacity == 0 || h->capacity > CAPACITY_MAX)
        return "bad capacity";
    layout(h->capacity, &nb, &boff, &eoff, &total);
    if (nb != h->nbuckets || boff != h->buckets_off
        || eoff != h->entries_off || total != h->total || total > len)
        return "inconsistent layout";
    if (creator != 0 && h->creator_pid != creator)
        return "created by another master";
    return NULL;
}


int
shm_table_attach(const char *name, pid_t creator, struct shm_table **t_r,
                 char *err, size_t errlen)
{
    struct stat  st;
    const char  *why;
    void        *p;
    int          fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);

    if (fd < 0)
        return tfail(err, errlen, SHM_TABLE_ERROR, "shm_open %s: %s", name,
                     strerror(errno));
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct hdr)
        || (p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
                     MAP_SHARED, fd, 0)) == MAP_FAILED)
    {
        close(fd);
        return tfail(err, errlen, SHM_TABLE_ERROR, "shm %s: too small or "
                     "unmappable", name);
    }
    close(fd);
    atomic_thread_fence(memory_order_acquire);
    if ((why = header_mismatch(p, (size_t)st.st_size, creator)) != NULL
        || (*t_r = handle(p, (size_t)st.st_size)) == NULL)
    {
        munmap(p, (size_t)st.st_size);
        return tfail(err, errlen, SHM_TABLE_ERROR, "shm %s: %s", name,
                     why != NULL ? why : "out of memory");
    }
    return SHM_TABLE_OK;
}


void
shm_table_detach(struct shm_table *t)
{
    if (t == NULL)
        return;
    munmap(t->h, t->len);
    if (t->lock_fd >= 0)
        close(t->lock_fd);
    free(t);
}


int
shm_table_unlink(const char *name)
{
    return shm_unlink(name) < 0 && errno != ENOENT ? -1 : 0;
}


void
shm_table_set_repair(struct shm_table *t, shm_table_repair_fn fn, void *arg)
{
    t->repair = fn;
    t->repair_arg = arg;
}


void
shm_table_set_timeout(struct shm_table *t, int timeout_ms)
{
    t->timeout_ms = timeout_ms;
}


void
shm_table_stats(struct shm_table *t, struct shm_table_stats *st)
{
    struct hdr *h = t->h;

    st->capacity = h->capacity;
    st->active = h->capacity
                 - atomic_load_explicit(&h->nfree, memory_order_relaxed);
    st->created = atomic_load_explicit(&h->created, memory_order_relaxed);
    st->completed = atomic_load_explicit(&h->completed, memory_order_relaxed);
    st->expired = atomic_load_explicit(&h->expired, memory_order_relaxed);
    st->aborted = atomic_load_explicit(&h->aborted, memory_order_relaxed);
    st->repairs = atomic_load_explicit(&h->repairs, memory_order_relaxed);
    st->timeouts = atomic_load_explicit(&h->timeouts, memory_order_relaxed);
}
