/* ops.c: powerfs's FUSE low-level operations and main (see powerfs.h).
 * One big lock: this is a test tool, and serialising the calls is a legal
 * schedule of the kernel's concurrent ones. */
#define FUSE_USE_VERSION 31
#include "powerfs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static struct pfs FS = { .mu = PTHREAD_MUTEX_INITIALIZER };

#define LOCK()   pthread_mutex_lock(&FS.mu)
#define UNLOCK() pthread_mutex_unlock(&FS.mu)

static size_t
fsize(const struct pfs_node *n)
{
    return n->loaded ? n->size : n->dur_size;
}

static void
fill_attr(const struct pfs_node *n, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = n->ino;
    st->st_mode = n->mode;
    st->st_nlink = S_ISDIR(n->mode) ? 2 : n->nlink;
    st->st_size = S_ISDIR(n->mode) ? 4096 : (off_t)fsize(n);
    st->st_blksize = PFS_PAGE;
    st->st_blocks = (st->st_size + 511) / 512;
    st->st_mtim = st->st_atim = n->mtime;
    st->st_ctim = n->ctime;
}

static void
reply_entry(fuse_req_t req, const struct pfs_node *n)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = n->ino;
    e.generation = 1;
    fill_attr(n, &e.attr);
    UNLOCK();
    fuse_reply_entry(req, &e);
}

/* Looks up the directory and fails the request if the fs is frozen. */
static struct pfs_node *
begin(fuse_req_t req, fuse_ino_t ino, bool want_dir)
{
    LOCK();
    struct pfs_node *n = FS.frozen ? NULL : pfs_node(&FS, ino);
    int e = FS.frozen ? EIO : n == NULL ? ENOENT
          : want_dir && !S_ISDIR(n->mode) ? ENOTDIR : 0;
    if (e) {
        UNLOCK();
        fuse_reply_err(req, e);
        return NULL;
    }
    return n;
}

static void
fail(fuse_req_t req, int e)
{
    UNLOCK();
    fuse_reply_err(req, e);
}

static void
pfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct pfs_node *d = begin(req, parent, true);
    if (d == NULL)
        return;
    struct pfs_dent *de = pfs_dir_find(d, name);
    struct pfs_node *n = de ? pfs_node(&FS, de->ino) : NULL;
    if (n == NULL)
        return fail(req, ENOENT);
    reply_entry(req, n);
}

static void
pfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    struct pfs_node *n = begin(req, ino, false);
    if (n == NULL)
        return;
    fill_attr(n, &st);
    UNLOCK();
    fuse_reply_attr(req, &st, 0);
}

static void
pfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int set,
            struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    struct pfs_node *n = begin(req, ino, false);
    if (n == NULL)
        return;
    if (set & FUSE_SET_ATTR_MODE)
        n->mode = (n->mode & S_IFMT) | (a->st_mode & 07777);
    if (set & FUSE_SET_ATTR_SIZE) {
        int rc = S_ISDIR(n->mode) ? -EISDIR : pfs_load_data(&FS, n);
        if (rc == 0)
            rc = pfs_file_resize(n, (size_t)a->st_size);
        if (rc < 0)
            return fail(req, -rc);
    }
    if (set & FUSE_SET_ATTR_MTIME)
        n->mtime = a->st_mtim;
    if (set & FUSE_SET_ATTR_MTIME_NOW)
        clock_gettime(CLOCK_REALTIME, &n->mtime);
    clock_gettime(CLOCK_REALTIME, &n->ctime);
    fill_attr(n, &st);
    UNLOCK();
    fuse_reply_attr(req, &st, 0);
}

static struct pfs_node *
make(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
     const char *op)
{
    struct pfs_node *d = begin(req, parent, true);
    if (d == NULL)
        return NULL;
    int e = pfs_fault(&FS, op, d);
    if (e == 0 && pfs_dir_find(d, name))
        e = EEXIST;
    struct pfs_node *n = e ? NULL : pfs_new_node(&FS, mode);
    if (e == 0 && n == NULL)
        e = ENOMEM;
    if (e == 0 && pfs_dir_add(d, name, n->ino) < 0)
        e = ENOMEM;
    if (e) {
        fail(req, e < 0 ? EIO : e);
        return NULL;
    }
    n->nlink = 1;
    n->parent = d->ino;
    snprintf(n->name, sizeof(n->name), "%s", name);
    return n;
}

static void
pfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct pfs_node *n = make(req, parent, name, S_IFDIR | (mode & 07777),
                              "mkdir");
    if (n != NULL)
        reply_entry(req, n);
}

static void
pfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
           struct fuse_file_info *fi)
{
    struct pfs_node *n = make(req, parent, name, S_IFREG | (mode & 07777),
                              "create");
    if (n == NULL)
        return;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = n->ino;
    e.generation = 1;
    fill_attr(n, &e.attr);
    UNLOCK();
    fuse_reply_create(req, &e, fi);
}

static void
pfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
          dev_t rdev)
{
    (void)rdev;
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    struct pfs_node *n = make(req, parent, name, mode, "create");
    if (n != NULL)
        reply_entry(req, n);
}

static void
remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
    struct pfs_node *d = begin(req, parent, true);
    if (d == NULL)
        return;
    struct pfs_dent *de = pfs_dir_find(d, name);
    struct pfs_node *n = de ? pfs_node(&FS, de->ino) : NULL;
    if (n == NULL)
        return fail(req, ENOENT);
    if (dir && !S_ISDIR(n->mode))
        return fail(req, ENOTDIR);
    if (!dir && S_ISDIR(n->mode))
        return fail(req, EISDIR);
    if (dir && n->nents > 0)
        return fail(req, ENOTEMPTY);
    if (pfs_dir_del(d, name) < 0)
        return fail(req, ENOMEM);
    if (n->nlink > 0)
        n->nlink--;
    fail(req, 0);
}

static void
pfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_name(req, parent, name, false);
}

static void
pfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_name(req, parent, name, true);
}

static void
pfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
           fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    struct pfs_node *d = begin(req, parent, true);
    if (d == NULL)
        return;
    struct pfs_node *nd = pfs_node(&FS, newparent);
    struct pfs_dent *de = pfs_dir_find(d, name);
    uint64_t ino = de ? de->ino : 0;
    if (nd == NULL || !S_ISDIR(nd->mode) || de == NULL)
        return fail(req, ENOENT);
    if (flags & ~(unsigned)RENAME_NOREPLACE)
        return fail(req, EINVAL);
    int e = pfs_fault(&FS, "rename", pfs_node(&FS, ino));
    if (e)
        return fail(req, e < 0 ? EIO : e);
    struct pfs_dent *old = pfs_dir_find(nd, newname);
    if (old && (flags & RENAME_NOREPLACE))
        return fail(req, EEXIST);
    if (old && old->ino == ino)
        return fail(req, 0);
    if (old) {
        struct pfs_node *o = pfs_node(&FS, old->ino);
        if (o && S_ISDIR(o->mode) && o->nents > 0)
            return fail(req, ENOTEMPTY);
        if (o && o->nlink > 0)
            o->nlink--;
        pfs_dir_del(nd, newname);
    }
    pfs_dir_del(d, name);
    pfs_dir_add(nd, newname, ino);
    struct pfs_node *n = pfs_node(&FS, ino);
    n->parent = nd->ino;
    snprintf(n->name, sizeof(n->name), "%s", newname);
    fail(req, 0);
}

static void
pfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
         const char *newname)
{
    struct pfs_node *n = begin(req, ino, false);
    if (n == NULL)
        return;
    struct pfs_node *d = pfs_node(&FS, newparent);
    if (d == NULL || !S_ISDIR(d->mode))
        return fail(req, ENOENT);
    int e = pfs_fault(&FS, "link", n);
    if (e)
        return fail(req, e < 0 ? EIO : e);
    if (pfs_dir_find(d, newname))
        return fail(req, EEXIST);
    if (pfs_dir_add(d, newname, n->ino) < 0)
        return fail(req, ENOMEM);
    n->nlink++;
    n->parent = d->ino;
    snprintf(n->name, sizeof(n->name), "%s", newname);
    reply_entry(req, n);
}

static void
pfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct pfs_node *n = begin(req, ino, false);
    if (n == NULL)
        return;
    int rc = pfs_load_data(&FS, n);
    if (rc == 0 && (fi->flags & O_TRUNC))
        rc = pfs_file_resize(n, 0);
    if (rc < 0)
        return fail(req, -rc);
    UNLOCK();
    fuse_reply_open(req, fi);
}

static void
pfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
         struct fuse_file_info *fi)
{
    (void)fi;
    struct pfs_node *n = begin(req, ino, false);
    if (n == NULL)
        return;
    int rc = pfs_load_data(&FS, n);
    if (rc < 0)
        return fail(req, -rc);
    size_t have = (size_t)off >= n->size ? 0 : n->size - (size_t)off;
    size_t len = size < have ? size : have;
    char *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return fail(req, ENOMEM);
    if (len)
        memcpy(buf, n->data + off, len);
    UNLOCK();
    fuse_reply_buf(req, buf, len);
    free(buf);
}

static void
pfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
          off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    struct pfs_node *n = begin(req, ino, false);
    if (n == NULL)
        return;
    int e = pfs_fault(&FS, "write", n);
    if (e > 0)
        return fail(req, e);
    if (e < 0 && size > 1)
        size /= 2;                 /* a short write */
    int rc = pfs_load_data(&FS, n);
    if (rc == 0)
        rc = pfs_file_write(n, buf, size, off);
    if (rc < 0)
        return fail(req, -rc);
    UNLOCK();
    fuse_reply_write(req, size);
}

static void
pfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
              off_t len, struct fuse_file_info *fi)
{
    (void)fi;
    struct pfs_node *n = begin(req, ino, false);
    if (n == NULL)
        return;
    int e = pfs_fault(&FS, "fallocate", n);
    if (e)
        return fail(req, e < 0 ? EIO : e);
    if (mode & ~FALLOC_FL_KEEP_SIZE)
        return fail(req, EOPNOTSUPP);
    int rc = pfs_load_data(&FS, n);
    if (rc == 0 && !(mode & FALLOC_FL_KEEP_SIZE)
        && (size_t)(off + len) > n->size)
        rc = pfs_file_resize(n, (size_t)(off + len));
    fail(req, -rc);
}

static void
pfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
          struct fuse_file_info *fi)
{
    (void)fi;
    struct pfs_node *n = begin(req, ino, false);
    if (n == NULL)
        return;
    int e = pfs_fault(&FS, "fsync", n);
    if (e == 0)
        e = pfs_fault(&FS, datasync ? "fdatasync" : "fsyncfull", n);
    if (e) {
        /* Linux after a failed writeback: the pages are clean now, their
         * bytes never reached the disk, and the next fsync says 0. */
        pfs_drop_dirty(n);
        return fail(req, e < 0 ? EIO : e);
    }
    FS.n_fsync++;
    int rc = n->loaded ? pfs_sync_file(&FS, n, datasync) : 0;
    fail(req, -rc);
}

struct dirsnap {
    size_t n;
    struct pfs_dent e[];
};

static void
pfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct pfs_node *d = begin(req, ino, true);
    if (d == NULL)
        return;
    /* A snapshot: entries unlinked while the caller walks the directory
     * must not make it skip others. */
    struct dirsnap *s = malloc(sizeof(*s) + d->nents * sizeof(s->e[0]));
    if (s == NULL)
        return fail(req, ENOMEM);
    s->n = d->nents;
    for (size_t i = 0; i < d->nents; i++) {
        s->e[i].ino = d->ents[i].ino;
        s->e[i].name = strdup(d->ents[i].name);
    }
    fi->fh = (uintptr_t)s;
    UNLOCK();
    fuse_reply_open(req, fi);
}

static void
pfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
            struct fuse_file_info *fi)
{
    struct dirsnap *s = (struct dirsnap *)(uintptr_t)fi->fh;
    char *buf = calloc(1, size);
    size_t used = 0;
    (void)ino;

    if (buf == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    for (size_t i = (size_t)off; i < s->n + 2; i++) {
        struct stat st = { .st_ino = i < 2 ? 1 : s->e[i - 2].ino };
        const char *name = i == 0 ? "." : i == 1 ? ".." : s->e[i - 2].name;
        size_t k = fuse_add_direntry(req, buf + used, size - used, name, &st,
                                     (off_t)(i + 1));
        if (k > size - used)
            break;
        used += k;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void
pfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dirsnap *s = (struct dirsnap *)(uintptr_t)fi->fh;
    (void)ino;
    for (size_t i = 0; i < s->n; i++)
        free(s->e[i].name);
    free(s);
    fuse_reply_err(req, 0);
}

static void
pfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
             struct fuse_file_info *fi)
{
    (void)fi;
    (void)datasync;
    struct pfs_node *d = begin(req, ino, true);
    if (d == NULL)
        return;
    int e = pfs_fault(&FS, "fsyncdir", d);
    if (e)
        return fail(req, e < 0 ? EIO : e);
    FS.n_fsyncdir++;
    fail(req, -pfs_sync_dir(&FS, d));
}

static void
pfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    (void)ino;
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = sv.f_frsize = PFS_PAGE;
    sv.f_blocks = sv.f_bfree = sv.f_bavail = 1u << 24;
    sv.f_files = sv.f_ffree = sv.f_favail = 1u << 20;
    sv.f_namemax = 255;
    fuse_reply_statfs(req, &sv);
}

static void
pfs_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void
pfs_init(void *u, struct fuse_conn_info *conn)
{
    (void)u;
    /* Every write must reach us: no kernel-side write-back cache. */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static const struct fuse_lowlevel_ops OPS = {
    .init = pfs_init,       .lookup = pfs_lookup,     .getattr = pfs_getattr,
    .setattr = pfs_setattr, .mkdir = pfs_mkdir,       .mknod = pfs_mknod,
    .create = pfs_create,   .unlink = pfs_unlink,     .rmdir = pfs_rmdir,
    .rename = pfs_rename,   .link = pfs_link,         .open = pfs_open,
    .read = pfs_read,       .write = pfs_write,       .flush = pfs_ok,
    .release = pfs_ok,      .fsync = pfs_fsync,       .opendir = pfs_opendir,
    .readdir = pfs_readdir, .releasedir = pfs_releasedir,
    .fsyncdir = pfs_fsyncdir, .statfs = pfs_statfs,
    .fallocate = pfs_fallocate,
};

int
main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: powerfs BACKING MOUNTPOINT CTLSOCK\n");
        return 2;
    }
    int rc = pfs_load(&FS, argv[1]);
    if (rc < 0) {
        fprintf(stderr, "powerfs: loading %s: %s\n", argv[1], strerror(-rc));
        return 1;
    }
    char *fargv[] = { argv[0], "-o", "default_permissions,fsname=powerfs",
                      NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse_session *se = fuse_session_new(&args, &OPS, sizeof(OPS),
                                               NULL);
    if (se == NULL || fuse_set_signal_handlers(se) < 0
        || fuse_session_mount(se, argv[2]) < 0)
        return 1;
    if (pfs_ctl_start(&FS, argv[3]) < 0) {
        fprintf(stderr, "powerfs: control socket %s: %s\n", argv[3],
                strerror(errno));
        fuse_session_unmount(se);
        return 1;
    }
    rc = fuse_session_loop_mt(se, 0);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return rc ? 1 : 0;
}
