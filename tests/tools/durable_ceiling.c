/* durable_ceiling: how many durable small uploads per second this
 * filesystem allows, whatever the server: `make bench`'s ceiling for the
 * daemon's 4 KiB PUT row with storage.sync = "always".
 *
 *   durable_ceiling --dir D [--threads 16] [--count N] [--seconds S]
 *                   [--size 4096]
 *
 * Makes D/storage and D/staging (D must not hold them yet), then T threads
 * each store files until N in all are stored or S seconds have passed, by
 * exactly the file-system calls the daemon makes to publish a one-piece
 * upload (below resumable_min_size), and no others: no HTTP, no statvfs
 * or storage checks, no session table. Prints
 *   DURABLERESULT uploads=N seconds=S per_s=R p50_us=.. p99_us=.. syncs=3
 *
 * The sequence mirrors main at 5964036 (5 Dec 2026; last changed by
 * 43046e6, no sync of the staging directory, and a488f49, no fallocate for
 * bodies up to 64 KiB), storage.sync = "always":
 *   worker/upload_place.c open_staging -> lib/store/publish.c
 *   store_staging_create: openat(staging, "up-<pid>-<32 hex>",
 *   O_CREAT|O_EXCL|O_RDWR, 0644); fallocate(size) only above PREALLOC_MIN
 *   (64 KiB); the body by pwrite (worker/upload.c); then store_publish:
 *   fstat (+ fchmod if the mode differs), fsync(data)     [publish_data]
 *   lib/store/path.c store_open_parent/open_dir for "<dir>/b.bin":
 *   openat(dir) -> ENOENT, mkdirat, openat, fchmod, fsync(root)
 *                                                  [publish_parent_dir]
 *   linkat(staging name -> dir/b.bin), fsync(dir)         [publish_dir]
 *   drop_staging: unlinkat(staging name), not synced.
 * Three syncs in series per upload, as docs/recovery.md lists them. When
 * the daemon's sequence changes, change this with it and name the commit.
 * (storage.sync = "batch" shares the directory syncs of uploads finishing
 * together: this is the ceiling without that.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SYNCS_PER_UPLOAD 3
#define FILE_MODE        0644
#define DIR_MODE         0755
#define PREALLOC_MIN     (64 * 1024)   /* worker/upload_place.c */

struct opts {
    const char *dir;
    int         threads;
    long        count;
    double      seconds;
    size_t      size;
};

struct shared {
    const struct opts *o;
    int                root_fd, staging_fd;
    char              *body;
    atomic_long        next;
    pthread_barrier_t  ready;
};

struct thread {
    pthread_t      id;
    struct shared *s;
    long           done;
    uint32_t      *lat_us;
    double         last;
    char           err[256];
};

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
fail(struct thread *t, const char *what)
{
    snprintf(t->err, sizeof(t->err), "%s: %s", what, strerror(errno));
    return -1;
}

/* store_staging_create + open_staging + the body's pwrite. */
static int
stage(struct thread *t, char *name, size_t len, int *fd_r)
{
    static const char hex[] = "0123456789abcdef";
    struct shared    *s = t->s;
    unsigned char     rnd[16];
    int               n, fd;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return fail(t, "getrandom");
    n = snprintf(name, len, "up-%ld-", (long)getpid());
    for (size_t i = 0; i < sizeof(rnd); i++) {
        name[n + 2 * i] = hex[rnd[i] >> 4];
        name[n + 2 * i + 1] = hex[rnd[i] & 0xf];
    }
    name[n + 2 * sizeof(rnd)] = '\0';
    fd = openat(s->staging_fd, name,
                O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, FILE_MODE);
    if (fd < 0)
        return fail(t, "create staging file");
    *fd_r = fd;
    if (s->o->size > PREALLOC_MIN
        && fallocate(fd, 0, 0, (off_t)s->o->size) < 0 && errno != EOPNOTSUPP)
        return fail(t, "fallocate");
    if (pwrite(fd, s->body, s->o->size, 0) != (ssize_t)s->o->size)
        return fail(t, "pwrite");
    return 0;
}

/* store_open_parent for a one-directory path: the directory made, then
 * its parent (the root) synced. */
static int
open_parent(struct thread *t, const char *dir, int *dfd_r)
{
    int cur = fcntl(t->s->root_fd, F_DUPFD_CLOEXEC, 0), fd;

    if (cur < 0)
        return fail(t, "dup of root");
    fd = openat(cur, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat(cur, dir, DIR_MODE) < 0) {
            close(cur);
            return fail(t, "mkdirat");
        }
        fd = openat(cur, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && fchmod(fd, DIR_MODE) < 0) {
            close(cur);
            close(fd);
            return fail(t, "fchmod of new directory");
        }
    }
    if (fd < 0 || fsync(cur) < 0) {
        fail(t, fd < 0 ? "openat dir" : "fsync of parent directory");
        close(cur);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(cur);
    *dfd_r = fd;
    return 0;
}

/* store_publish, after the data is staged. */
static int
publish(struct thread *t, const char *name, int fd, const char *dir)
{
    struct stat st;
    int         dfd, rc = 0;

    if (fstat(fd, &st) < 0)
        return fail(t, "fstat");
    if ((st.st_mode & 07777) != FILE_MODE && fchmod(fd, FILE_MODE) < 0)
        return fail(t, "fchmod");
    if (fsync(fd) < 0)
        return fail(t, "fsync of data");
    if (open_parent(t, dir, &dfd) < 0)
        return -1;
    if (linkat(t->s->staging_fd, name, dfd, "b.bin", 0) < 0)
        rc = fail(t, "linkat");
    else if (fsync(dfd) < 0)
        rc = fail(t, "fsync of target directory");
    close(dfd);
    if (rc == 0 && unlinkat(t->s->staging_fd, name, 0) < 0)
        rc = fail(t, "unlink of staging name");
    return rc;
}

static int
one_upload(struct thread *t, long i)
{
    char name[64], dir[32];
    int  fd = -1, rc;

    snprintf(dir, sizeof(dir), "u%ld", i);
    rc = stage(t, name, sizeof(name), &fd);
    if (rc == 0)
        rc = publish(t, name, fd, dir);
    if (fd >= 0)
        close(fd);
    return rc;
}

static void *
worker(void *arg)
{
    struct thread *t = arg;
    double         deadline = 0, t_start;
    long           i;

    pthread_barrier_wait(&t->s->ready);
    if (t->s->o->seconds > 0)
        deadline = now() + t->s->o->seconds;
    while ((i = atomic_fetch_add(&t->s->next, 1)) < t->s->o->count) {
        if (deadline > 0 && now() >= deadline)
            break;
        t_start = now();
        if (one_upload(t, i) < 0)
            break;
        t->last = now();
        t->lat_us[t->done++] = (uint32_t)((t->last - t_start) * 1e6);
    }
    return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static void
usage(void)
{
    fprintf(stderr, "usage: durable_ceiling --dir D [--threads T] "
            "[--count N] [--seconds S] [--size BYTES]\n");
    exit(2);
}

static void
parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        { "dir", 1, 0, 'd' }, { "threads", 1, 0, 't' },
        { "count", 1, 0, 'n' }, { "seconds", 1, 0, 's' },
        { "size", 1, 0, 'z' }, { 0, 0, 0, 0 } };
    int ch;

    *o = (struct opts){ .threads = 16, .count = 2000, .size = 4096 };
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': o->dir = optarg; break;
        case 't': o->threads = atoi(optarg); break;
        case 'n': o->count = atol(optarg); break;
        case 's': o->seconds = atof(optarg); break;
        case 'z': o->size = (size_t)atol(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || o->dir == NULL || o->threads < 1
        || o->threads > 1024 || o->count < 1 || o->count > 10000000
        || o->seconds < 0 || o->size < 1 || o->size > (64u << 20))
        usage();
}

static int
make_dirs(const char *dir, struct shared *s)
{
    char p[4096];

    snprintf(p, sizeof(p), "%s/storage", dir);
    if (mkdir(p, DIR_MODE) < 0
        || (s->root_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        perror(p);
        return -1;
    }
    snprintf(p, sizeof(p), "%s/staging", dir);
    if (mkdir(p, 0700) < 0
        || (s->staging_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        perror(p);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct opts    o;
    struct shared  s = { 0 };
    struct thread *th;
    uint32_t      *all;
    long           k = 0;
    double         t0, last;
    int            i, bad = 0;

    parse(argc, argv, &o);
    s.o = &o;
    if (make_dirs(o.dir, &s) < 0)
        return 1;
    if ((s.body = malloc(o.size)) == NULL
        || (th = calloc((size_t)o.threads, sizeof(*th))) == NULL
        || (all = calloc((size_t)o.count, sizeof(*all))) == NULL
        || pthread_barrier_init(&s.ready, NULL, (unsigned)o.threads + 1))
        abort();
    memset(s.body, 'x', o.size);
    for (i = 0; i < o.threads; i++) {
        th[i].s = &s;
        if ((th[i].lat_us = calloc((size_t)o.count, sizeof(uint32_t))) == NULL
            || pthread_create(&th[i].id, NULL, worker, &th[i]) != 0)
            abort();
    }
    pthread_barrier_wait(&s.ready);
    last = t0 = now();
    for (i = 0; i < o.threads; i++) {
        pthread_join(th[i].id, NULL);
        if (th[i].err[0]) {
            fprintf(stderr, "durable_ceiling: %s\n", th[i].err);
            bad = 1;
        }
        memcpy(all + k, th[i].lat_us, (size_t)th[i].done * sizeof(*all));
        k += th[i].done;
        if (th[i].last > last)
            last = th[i].last;
        free(th[i].lat_us);
    }
    qsort(all, (size_t)k, sizeof(*all), cmp_u32);
    printf("DURABLERESULT uploads=%ld seconds=%.6f per_s=%.1f p50_us=%u "
           "p99_us=%u threads=%d size=%zu syncs=%d\n", k, last - t0,
           last > t0 ? (double)k / (last - t0) : 0.0,
           k ? all[(k - 1) * 50 / 100] : 0, k ? all[(k - 1) * 99 / 100] : 0,
           o.threads, o.size, SYNCS_PER_UPLOAD);
    free(all);
    free(th);
    free(s.body);
    return bad || k == 0;
}
