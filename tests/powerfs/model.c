/* model.c: powerfs's volatile and durable state (see powerfs.h). Callers
 * hold fs->mu. The backing directory is written only by the sync calls
 * here and by pfs_cut. */
#include "powerfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pfs_node *
pfs_node(struct pfs *fs, uint64_t ino)
{
    return ino < fs->nnodes ? fs->nodes[ino] : NULL;
}

static int
put_node(struct pfs *fs, struct pfs_node *n)
{
    if (n->ino >= fs->nnodes) {
        size_t cap = fs->nnodes ? fs->nnodes : 64;
        while (cap <= n->ino)
            cap *= 2;
        struct pfs_node **p = realloc(fs->nodes, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        memset(p + fs->nnodes, 0, (cap - fs->nnodes) * sizeof(*p));
        fs->nodes = p;
        fs->nnodes = cap;
    }
    fs->nodes[n->ino] = n;
    if (n->ino >= fs->next_ino)
        fs->next_ino = n->ino + 1;
    return 0;
}

static struct pfs_node *
alloc_node(uint64_t ino, mode_t mode)
{
    struct pfs_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->ino = ino;
    n->mode = n->dur_mode = mode;
    clock_gettime(CLOCK_REALTIME, &n->mtime);
    n->ctime = n->mtime;
    n->loaded = true;              /* a new file has no backing bytes */
    return n;
}

struct pfs_node *
pfs_new_node(struct pfs *fs, mode_t mode)
{
    struct pfs_node *n = alloc_node(fs->next_ino, mode);
    if (n == NULL || put_node(fs, n) < 0) {
        free(n);
        return NULL;
    }
    return n;
}

/* ---- backing files ------------------------------------------------------ */

static int
write_meta(struct pfs *fs, struct pfs_node *n)
{
    char name[64], tmp[64];
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    int fd, rc = 0;

    if (buf == NULL)
        return -ENOMEM;
    len = (size_t)snprintf(buf, cap, "%o %lld %ld\n", (unsigned)n->dur_mode,
                           (long long)n->mtime.tv_sec, n->mtime.tv_nsec);
    for (size_t i = 0; S_ISDIR(n->mode) && i < n->ndents; i++) {
        size_t nl = strlen(n->dents[i].name);
        if (len + 2 * nl + 32 > cap) {
            cap = (len + 2 * nl + 32) * 2;
            char *b = realloc(buf, cap);
            if (b == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = b;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%llu ",
                                (unsigned long long)n->dents[i].ino);
        for (size_t k = 0; k < nl; k++)
            len += (size_t)snprintf(buf + len, cap - len, "%02x",
                                    (unsigned char)n->dents[i].name[k]);
        buf[len++] = '\n';
    }
    snprintf(name, sizeof(name), "%llu.m", (unsigned long long)n->ino);
    snprintf(tmp, sizeof(tmp), "%llu.m.tmp", (unsigned long long)n->ino);
    fd = openat(fs->bfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len
        || renameat(fs->bfd, tmp, fs->bfd, name) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static int
data_fd(struct pfs *fs, uint64_t ino, int flags)
{
    char name[64];
    snprintf(name, sizeof(name), "%llu.d", (unsigned long long)ino);
    return openat(fs->bfd, name, flags | O_CLOEXEC, 0600);
}

int
pfs_load_data(struct pfs *fs, struct pfs_node *n)
{
    if (n->loaded)
        return 0;
    n->size = 0;
    if (n->dur_size > 0) {
        int fd = data_fd(fs, n->ino, O_RDONLY);
        if (fd < 0)
            return -errno;
        n->cap = n->dur_size;
        n->data = calloc(1, n->cap);
        ssize_t r = n->data ? pread(fd, n->data, n->dur_size, 0) : -1;
        close(fd);
        if (r != (ssize_t)n->dur_size)
            return -EIO;
        n->size = n->dur_size;
    }
    n->loaded = true;
    return 0;
}

/* ---- files ---------------------------------------------------------------- */

static int
reserve(struct pfs_node *n, size_t size)
{
    if (size > n->cap) {
        size_t cap = n->cap ? n->cap : PFS_PAGE;
        while (cap < size)
            cap *= 2;
        char *d = realloc(n->data, cap);
        if (d == NULL)
            return -ENOMEM;
        memset(d + n->cap, 0, cap - n->cap);
        n->data = d;
        n->cap = cap;
    }
    size_t pages = (size + PFS_PAGE - 1) / PFS_PAGE;
    if (pages > n->dirty_cap) {
        size_t cap = n->dirty_cap ? n->dirty_cap : 16;
        while (cap < pages)
            cap *= 2;
        uint8_t *d = realloc(n->dirty, cap);
        if (d == NULL)
            return -ENOMEM;
        memset(d + n->dirty_cap, 0, cap - n->dirty_cap);
        n->dirty = d;
        n->dirty_cap = cap;
    }
    return 0;
}

static void
mark(struct pfs_node *n, size_t from, size_t to)
{
    for (size_t p = from / PFS_PAGE; p * PFS_PAGE < to; p++)
        n->dirty[p] = 1;
}

int
pfs_file_write(struct pfs_node *n, const char *buf, size_t len, off_t off)
{
    size_t end = (size_t)off + len;
    int rc = reserve(n, end);
    if (rc < 0)
        return rc;
    memcpy(n->data + off, buf, len);
    mark(n, n->size < (size_t)off ? n->size : (size_t)off, end);
    if (end > n->size) {
        n->size = end;
        n->meta_dirty = true;
    }
    clock_gettime(CLOCK_REALTIME, &n->mtime);
    return 0;
}

int
pfs_file_resize(struct pfs_node *n, size_t size)
{
    int rc = reserve(n, size > n->size ? size : n->size);
    if (rc < 0)
        return rc;
    if (size < n->size)
        memset(n->data + size, 0, n->size - size);
    mark(n, size < n->size ? size : n->size, size > n->size ? size : n->size);
    n->size = size;
    n->meta_dirty = true;
    clock_gettime(CLOCK_REALTIME, &n->mtime);
    return 0;
}

static int
write_range(int fd, const struct pfs_node *n, size_t from, size_t to)
{
    while (from < to) {
        ssize_t w = pwrite(fd, n->data + from, to - from, (off_t)from);
        if (w <= 0)
            return -EIO;
        from += (size_t)w;
    }
    return 0;
}

int
pfs_sync_file(struct pfs *fs, struct pfs_node *n, bool datasync)
{
    int fd = data_fd(fs, n->ino, O_RDWR | O_CREAT), rc = 0;
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)n->size) < 0)
        rc = -errno;
    for (size_t p = 0; rc == 0 && p * PFS_PAGE < n->size; p++) {
        if (p >= n->dirty_cap || !n->dirty[p])
            continue;
        size_t end = (p + 1) * PFS_PAGE;
        rc = write_range(fd, n, p * PFS_PAGE, end < n->size ? end : n->size);
    }
    close(fd);
    if (rc < 0)
        return rc;
    pfs_drop_dirty(n);
    n->dur_size = n->size;
    if (!datasync)
        n->dur_mode = n->mode;
    return write_meta(fs, n);
}

void
pfs_drop_dirty(struct pfs_node *n)
{
    if (n->dirty)
        memset(n->dirty, 0, n->dirty_cap);
    n->meta_dirty = false;
}

/* ---- directories ----------------------------------------------------------- */

struct pfs_dent *
pfs_dir_find(struct pfs_node *d, const char *name)
{
    for (size_t i = 0; i < d->nents; i++)
        if (strcmp(d->ents[i].name, name) == 0)
            return &d->ents[i];
    return NULL;
}

static int
log_op(struct pfs_node *d, bool add, const char *name, uint64_t ino)
{
    struct pfs_dlog *l = realloc(d->log, (d->nlog + 1) * sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    d->log = l;
    l[d->nlog].add = add;
    l[d->nlog].ino = ino;
    if ((l[d->nlog].name = strdup(name)) == NULL)
        return -ENOMEM;
    d->nlog++;
    return 0;
}

static int
ents_add(struct pfs_dent **v, size_t *n, const char *name, uint64_t ino)
{
    struct pfs_dent *e = realloc(*v, (*n + 1) * sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    *v = e;
    if ((e[*n].name = strdup(name)) == NULL)
        return -ENOMEM;
    e[*n].ino = ino;
    (*n)++;
    return 0;
}

static void
ents_del(struct pfs_dent *v, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(v[i].name, name) == 0) {
            free(v[i].name);
            v[i] = v[--*n];
            return;
        }
}

int
pfs_dir_add(struct pfs_node *d, const char *name, uint64_t ino)
{
    int rc = ents_add(&d->ents, &d->nents, name, ino);
    if (rc == 0)
        rc = log_op(d, true, name, ino);
    clock_gettime(CLOCK_REALTIME, &d->mtime);
    return rc;
}

int
pfs_dir_del(struct pfs_node *d, const char *name)
{
    ents_del(d->ents, &d->nents, name);
    clock_gettime(CLOCK_REALTIME, &d->mtime);
    return log_op(d, false, name, 0);
}

static void
clear_log(struct pfs_node *d)
{
    for (size_t i = 0; i < d->nlog; i++)
        free(d->log[i].name);
    d->nlog = 0;
}

/* The durable entries changed: write the directory, and make sure every
 * inode it names exists on the backing side (its durable bytes may still
 * be none: a file whose entry was synced but not its data is empty). */
static int
store_dir(struct pfs *fs, struct pfs_node *d)
{
    for (size_t i = 0; i < d->ndents; i++) {
        char name[64];
        struct pfs_node *c = pfs_node(fs, d->dents[i].ino);
        snprintf(name, sizeof(name), "%llu.m",
                 (unsigned long long)d->dents[i].ino);
        if (c != NULL && faccessat(fs->bfd, name, F_OK, 0) < 0) {
            int rc = write_meta(fs, c);
            if (rc < 0)
                return rc;
        }
    }
    return write_meta(fs, d);
}

int
pfs_sync_dir(struct pfs *fs, struct pfs_node *d)
{
    for (size_t i = 0; i < d->ndents; i++)
        free(d->dents[i].name);
    d->ndents = 0;
    for (size_t i = 0; i < d->nents; i++) {
        int rc = ents_add(&d->dents, &d->ndents, d->ents[i].name,
                          d->ents[i].ino);
        if (rc < 0)
            return rc;
    }
    clear_log(d);
    return store_dir(fs, d);
}

void
pfs_path(struct pfs *fs, struct pfs_node *n, char *out, size_t len)
{
    char tmp[1024] = "";
    int depth = 0;

    out[0] = '\0';
    while (n != NULL && n->ino != 1 && depth++ < 64) {
        snprintf(tmp, sizeof(tmp), "/%s%s", n->name, out);
        snprintf(out, len, "%s", tmp);
        n = pfs_node(fs, n->parent);
    }
}

int
pfs_sync_all(struct pfs *fs)
{
    for (size_t i = 0; i < fs->nnodes; i++) {
        struct pfs_node *n = fs->nodes[i];
        int rc = 0;
        if (n == NULL)
            continue;
        if (S_ISDIR(n->mode))
            rc = pfs_sync_dir(fs, n);
        else if (n->loaded)
            rc = pfs_sync_file(fs, n, false);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the power cut ---------------------------------------------------------- */

static double
coin(unsigned *seed)
{
    return (double)rand_r(seed) / ((double)RAND_MAX + 1.0);
}

static int
cut_file(struct pfs *fs, struct pfs_node *n, double p, unsigned *seed,
         long *kept, long *lost)
{
    size_t end = n->dur_size, npages = (n->size + PFS_PAGE - 1) / PFS_PAGE;
    int fd, rc = 0;

    for (size_t pg = 0; pg < npages && pg < n->dirty_cap; pg++)
        if (n->dirty[pg])
            (*lost)++;
    if (p <= 0 || !n->loaded)
        return 0;
    if ((fd = data_fd(fs, n->ino, O_RDWR | O_CREAT)) < 0)
        return -errno;
    /* Overwrites of allocated blocks: any subset of pages. */
    for (size_t pg = 0; rc == 0 && pg < npages && pg < n->dirty_cap; pg++) {
        size_t a = pg * PFS_PAGE, b = a + PFS_PAGE;
        if (!n->dirty[pg] || a >= n->dur_size || coin(seed) >= p)
            continue;
        if (b > n->dur_size)
            b = n->dur_size;
        if (b > n->size)
            b = n->size;
        if (a < b && (rc = write_range(fd, n, a, b)) == 0)
            (*kept)++;
    }
    /* Appends: a whole-page prefix, data before the size that covers it. */
    if (rc == 0 && n->size > n->dur_size) {
        size_t base = n->dur_size / PFS_PAGE * PFS_PAGE;
        size_t more = (n->size - base + PFS_PAGE - 1) / PFS_PAGE;
        size_t k = (size_t)(coin(seed) * (double)(more + 1));
        end = base + k * PFS_PAGE;
        if (end > n->size)
            end = n->size;
        if (end < n->dur_size)
            end = n->dur_size;
        if ((rc = write_range(fd, n, n->dur_size, end)) == 0)
            *kept += (long)((end - n->dur_size + PFS_PAGE - 1) / PFS_PAGE);
    } else if (n->size < n->dur_size && coin(seed) < p) {
        end = n->size;             /* the truncate made it */
    }
    if (rc == 0 && ftruncate(fd, (off_t)end) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int
cut_dir(struct pfs *fs, struct pfs_node *d, double p, unsigned *seed,
        long *kept, long *lost)
{
    if (d->nlog == 0)
        return 0;
    size_t k = p <= 0 ? 0 : (size_t)(coin(seed) * (double)(d->nlog + 1));
    for (size_t i = 0; i < k; i++) {
        struct pfs_dlog *l = &d->log[i];
        ents_del(d->dents, &d->ndents, l->name);
        if (l->add && ents_add(&d->dents, &d->ndents, l->name, l->ino) < 0)
            return -ENOMEM;
    }
    *kept += (long)k;
    *lost += (long)(d->nlog - k);
    return k > 0 ? store_dir(fs, d) : 0;
}

int
pfs_cut(struct pfs *fs, double p, unsigned seed, char *rep, size_t replen)
{
    long pk = 0, pl = 0, nk = 0, nl = 0;
    int rc = 0;

    fs->frozen = true;
    for (size_t i = 0; rc == 0 && i < fs->nnodes; i++) {
        struct pfs_node *n = fs->nodes[i];
        if (n == NULL)
            continue;
        if (S_ISDIR(n->mode))
            rc = cut_dir(fs, n, p, &seed, &nk, &nl);
        else
            rc = cut_file(fs, n, p, &seed, &pk, &pl);
    }
    snprintf(rep, replen, "%s pages_dirty=%ld pages_kept=%ld names_unsynced="
             "%ld names_kept=%ld", rc == 0 ? "ok" : "error", pl, pk, nl, nk);
    return rc;
}

/* ---- mount: load what the backing directory holds ------------------------ */

static int
read_meta(struct pfs *fs, uint64_t ino, struct pfs_node **out)
{
    char name[64], *line = NULL;
    size_t cap = 0;
    unsigned mode;
    long long sec;
    long nsec;
    int fd;
    FILE *f;

    snprintf(name, sizeof(name), "%llu.m", (unsigned long long)ino);
    if ((fd = openat(fs->bfd, name, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if ((f = fdopen(fd, "r")) == NULL) {
        close(fd);
        return -ENOMEM;
    }
    if (fscanf(f, "%o %lld %ld\n", &mode, &sec, &nsec) != 3) {
        fclose(f);
        return -EIO;
    }
    struct pfs_node *n = alloc_node(ino, (mode_t)mode);
    n->mtime.tv_sec = n->ctime.tv_sec = sec;
    n->mtime.tv_nsec = n->ctime.tv_nsec = nsec;
    while (getline(&line, &cap, f) > 0) {
        unsigned long long ci;
        char hex[600], nm[300];
        if (sscanf(line, "%llu %599s", &ci, hex) != 2)
            continue;
        size_t k = 0;
        for (; hex[2 * k] && hex[2 * k + 1] && k < sizeof(nm) - 1; k++) {
            unsigned v;
            sscanf(hex + 2 * k, "%2x", &v);
            nm[k] = (char)v;
        }
        nm[k] = '\0';
        ents_add(&n->dents, &n->ndents, nm, ci);
        ents_add(&n->ents, &n->nents, nm, ci);
    }
    free(line);
    fclose(f);
    if (S_ISREG(n->mode)) {
        struct stat st;
        snprintf(name, sizeof(name), "%llu.d", (unsigned long long)ino);
        n->dur_size = fstatat(fs->bfd, name, &st, 0) == 0 ? (size_t)st.st_size
                                                           : 0;
        n->loaded = n->dur_size == 0;
    }
    n->nlink = S_ISDIR(n->mode) ? 2 : 0;
    *out = n;
    return 0;
}

static int
load_tree(struct pfs *fs, struct pfs_node *d, int depth)
{
    for (size_t i = 0; i < d->ndents; i++) {
        struct pfs_node *c = pfs_node(fs, d->dents[i].ino);
        if (c == NULL) {
            if (depth > 64 || read_meta(fs, d->dents[i].ino, &c) < 0
                || put_node(fs, c) < 0) {
                /* named but never stored: the entry is dangling; drop it */
                char *nm = strdup(d->dents[i].name);
                if (nm == NULL)
                    return -ENOMEM;
                ents_del(d->dents, &d->ndents, nm);
                ents_del(d->ents, &d->nents, nm);
                free(nm);
                i--;
                continue;
            }
            if (S_ISDIR(c->mode) && load_tree(fs, c, depth + 1) < 0)
                return -EIO;
        }
        c->nlink += S_ISDIR(c->mode) ? 0 : 1;
        c->parent = d->ino;
        snprintf(c->name, sizeof(c->name), "%s", d->dents[i].name);
    }
    return 0;
}

/* fsck: backing files of inodes no durable directory reaches. */
static void
collect_orphans(struct pfs *fs)
{
    int fd = dup(fs->bfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;

    if (dir == NULL)
        return;
    while ((de = readdir(dir)) != NULL) {
        char *e;
        unsigned long long ino = strtoull(de->d_name, &e, 10);
        if (e == de->d_name || (*e != '.'))
            continue;
        if (pfs_node(fs, ino) == NULL || strstr(e, ".tmp"))
            unlinkat(fs->bfd, de->d_name, 0);
    }
    closedir(dir);
}

int
pfs_load(struct pfs *fs, const char *backing)
{
    struct pfs_node *root;

    if ((fs->bfd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    fs->next_ino = 2;
    if (read_meta(fs, 1, &root) < 0) {
        root = alloc_node(1, S_IFDIR | 0755);
        if (root == NULL || write_meta(fs, root) < 0)
            return -EIO;
    }
    if (put_node(fs, root) < 0 || load_tree(fs, root, 0) < 0)
        return -EIO;
    root->parent = 1;
    if (fs->next_ino < 2)
        fs->next_ino = 2;
    collect_orphans(fs);
    return 0;
}
