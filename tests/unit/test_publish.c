/* test_publish.c: staging and publication against the real filesystem,
 * including a tiny tmpfs for ENOSPC and EXDEV when mounting is allowed. */
#include "tests/unit/unit.h"
#include "lib/store/publish.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct store_modes MODES = { 0644, 0755 };

struct env {
    char *tmp;
    char  root[512], stage[512], out[512];
    int   rfd, sfd;
};

static void
env_open(struct env *e, const char *root, const char *stage)
{
    snprintf(e->root, sizeof(e->root), "%s", root);
    snprintf(e->stage, sizeof(e->stage), "%s", stage);
    CU_ASSERT_FATAL(mkdir(e->root, 0755) == 0 && mkdir(e->stage, 0755) == 0);
    e->rfd = open(e->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    e->sfd = open(e->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CU_ASSERT_FATAL(e->rfd >= 0 && e->sfd >= 0);
}

static void
env_init(struct env *e)
{
    char r[600], s[600];

    e->tmp = unit_mkdtemp();
    snprintf(r, sizeof(r), "%s/root", e->tmp);
    snprintf(s, sizeof(s), "%s/staging", e->tmp);
    snprintf(e->out, sizeof(e->out), "%s/outside", e->tmp);
    CU_ASSERT_FATAL(mkdir(e->out, 0755) == 0);
    env_open(e, r, s);
}

static void
env_fini(struct env *e)
{
    close(e->rfd);
    close(e->sfd);
    unit_rmtree(e->tmp);
    free(e->tmp);
}

/* A staging file holding n bytes of pattern seed (byte i = seed + i*7). */
static int
stage(struct env *e, char *name, size_t n, unsigned seed)
{
    char   buf[4096], err[256];
    size_t i, k, done = 0;
    int    fd = -1;

    CU_ASSERT_FATAL(store_staging_create(e->sfd, name, STORE_STAGING_NAME_LEN,
                                         &fd, err, sizeof(err)) == 0);
    while (done < n) {
        k = n - done < sizeof(buf) ? n - done : sizeof(buf);
        for (i = 0; i < k; i++)
            buf[i] = (char)(seed + (done + i) * 7);
        CU_ASSERT_FATAL(write(fd, buf, k) == (ssize_t)k);
        done += k;
    }
    return fd;
}

static int
count_entries(const char *dir)
{
    DIR           *d = opendir(dir);
    struct dirent *de;
    int            n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* 1 if the file at dir/rel holds exactly n bytes of pattern seed. */
static int
holds(const char *dir, const char *rel, size_t n, unsigned seed)
{
    char        p[1200], buf[4096];
    size_t      off = 0, i;
    ssize_t     r;
    int         fd, ok = 1;

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    if ((fd = open(p, O_RDONLY)) < 0)
        return 0;
    while (ok && (r = read(fd, buf, sizeof(buf))) > 0) {
        for (i = 0; i < (size_t)r; i++)
            if (buf[i] != (char)(seed + (off + i) * 7))
                ok = 0;
        off += (size_t)r;
    }
    close(fd);
    return ok && off == n;
}

static ino_t
inode_of(const char *dir, const char *rel)
{
    char        p[1200];
    struct stat st;

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    return lstat(p, &st) == 0 ? st.st_ino : 0;
}

static void
test_staging_create(void)
{
    struct env  e;
    struct stat st;
    char        a[STORE_STAGING_NAME_LEN], b[STORE_STAGING_NAME_LEN], err[256];
    char        small[8];
    int         fa, fb, fc;
    mode_t      mask = umask(0);

    umask(mask);
    env_init(&e);
    CU_ASSERT_EQUAL_FATAL(store_staging_create(e.sfd, a, sizeof(a), &fa, err,
                                               sizeof(err)), 0);
    CU_ASSERT_EQUAL_FATAL(store_staging_create(e.sfd, b, sizeof(b), &fb, err,
                                               sizeof(err)), 0);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    /* up-<pid>-<32 hex>: the master finds a dead worker's files by pid. */
    snprintf(small, sizeof(small), "%d", (int)getpid());
    CU_ASSERT_EQUAL(strlen(a), 3 + strlen(small) + 1 + 32);
    CU_ASSERT_EQUAL(strncmp(a, "up-", 3), 0);
    CU_ASSERT_EQUAL(strncmp(a + 3, small, strlen(small)), 0);
    CU_ASSERT_EQUAL(a[3 + strlen(small)], '-');
    CU_ASSERT_EQUAL(strspn(a + 4 + strlen(small), "0123456789abcdef"), 32);
    CU_ASSERT_EQUAL(store_staging_owner(a), getpid());
    CU_ASSERT_EQUAL(store_staging_owner(b), getpid());
    CU_ASSERT_EQUAL(count_entries(e.stage), 2);
    CU_ASSERT(fstatat(e.sfd, a, &st, 0) == 0 && S_ISREG(st.st_mode));
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0644 & ~mask);
    /* Read-write, and the fd is the named file. */
    CU_ASSERT_EQUAL(write(fa, "xy", 2), 2);
    CU_ASSERT(fstatat(e.sfd, a, &st, 0) == 0 && st.st_size == 2);
    CU_ASSERT_EQUAL(pread(fa, small, 2, 0), 2);
    CU_ASSERT_EQUAL(fcntl(fa, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    /* A buffer too small for the name is refused before anything exists. */
    CU_ASSERT_EQUAL(store_staging_create(e.sfd, small, sizeof(small), &fc,
                                         err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(count_entries(e.stage), 2);
    /* Discard removes, and a second discard of the same name is fine. */
    CU_ASSERT_EQUAL(store_staging_discard(e.sfd, a), 0);
    CU_ASSERT_EQUAL(store_staging_discard(e.sfd, a), 0);
    CU_ASSERT_EQUAL(count_entries(e.stage), 1);
    close(fa);
    close(fb);
    env_fini(&e);
}

static void
test_publish_new(void)
{
    struct env e;
    char       name[STORE_STAGING_NAME_LEN], err[256];
    int        fd;

    env_init(&e);
    fd = stage(&e, name, 10000, 1);
    /* Written but unpublished: nothing at the final path yet. */
    CU_ASSERT_EQUAL(count_entries(e.root), 0);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "a/b/c/file.bin",
                                  &MODES, err, sizeof(err)), STORE_PUBLISHED);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT(holds(e.root, "a/b/c/file.bin", 10000, 1));
    CU_ASSERT_EQUAL(count_entries(e.stage), 0);
    /* The published file is the staged inode, not a copy. */
    struct stat a;
    CU_ASSERT(fstat(fd, &a) == 0 && a.st_nlink == 1);
    CU_ASSERT_EQUAL(a.st_ino, inode_of(e.root, "a/b/c/file.bin"));
    close(fd);
    /* A sibling reuses the directories; an empty file publishes too. */
    fd = stage(&e, name, 0, 0);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "a/b/c/empty",
                                  &MODES, err, sizeof(err)), STORE_PUBLISHED);
    CU_ASSERT(holds(e.root, "a/b/c/empty", 0, 0));
    CU_ASSERT_EQUAL(count_entries(e.stage), 0);
    close(fd);
    env_fini(&e);
}

static void
test_publish_identical(void)
{
    struct env e;
    char       name[STORE_STAGING_NAME_LEN], err[256];
    ino_t      ino;
    int        fd;
    /* Larger than the compare chunk, and not a multiple of it. */
    const size_t big = 3 * 128 * 1024 + 4321;

    env_init(&e);
    fd = stage(&e, name, big, 9);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "x/f", &MODES, err,
                                  sizeof(err)), STORE_PUBLISHED);
    close(fd);
    ino = inode_of(e.root, "x/f");
    fd = stage(&e, name, big, 9);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "x/f", &MODES, err,
                                  sizeof(err)), STORE_IDENTICAL_EXISTS);
    CU_ASSERT_STRING_EQUAL(err, "");
    /* The existing file was kept, not replaced, and staging is empty. */
    CU_ASSERT_EQUAL(inode_of(e.root, "x/f"), ino);
    CU_ASSERT(holds(e.root, "x/f", big, 9));
    CU_ASSERT_EQUAL(count_entries(e.stage), 0);
    close(fd);
    env_fini(&e);
}

static mode_t
mode_of(const char *dir, const char *rel)
{
    char        p[1200];
    struct stat st;

    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    return lstat(p, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

/* storage.file_mode and dir_mode, whatever the umask and whatever mode the
 * staged file was made with (a session's data file is 0600). */
static void
test_publish_modes(void)
{
    static const struct store_modes custom = { 0640, 0750 };
    struct env e;
    char       name[STORE_STAGING_NAME_LEN], err[256];
    mode_t     mask = umask(077);
    int        fd;

    env_init(&e);
    fd = stage(&e, name, 100, 3);
    CU_ASSERT_EQUAL(fchmod(fd, 0600), 0);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "d1/d2/f", &MODES,
                                  err, sizeof(err)), STORE_PUBLISHED);
    close(fd);
    CU_ASSERT_EQUAL(mode_of(e.root, "d1/d2/f"), 0644);
    CU_ASSERT_EQUAL(mode_of(e.root, "d1"), 0755);
    CU_ASSERT_EQUAL(mode_of(e.root, "d1/d2"), 0755);
    /* Custom modes: new directories get dir_mode, existing ones stay. */
    fd = stage(&e, name, 100, 4);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "d1/d3/d4/g",
                                  &custom, err, sizeof(err)),
                    STORE_PUBLISHED);
    close(fd);
    CU_ASSERT_EQUAL(mode_of(e.root, "d1/d3/d4/g"), 0640);
    CU_ASSERT_EQUAL(mode_of(e.root, "d1/d3"), 0750);
    CU_ASSERT_EQUAL(mode_of(e.root, "d1/d3/d4"), 0750);
    CU_ASSERT_EQUAL(mode_of(e.root, "d1"), 0755);
    /* A file already there with the same bytes keeps its mode. */
    fd = stage(&e, name, 100, 3);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "d1/d2/f",
                                  &custom, err, sizeof(err)),
                    STORE_IDENTICAL_EXISTS);
    close(fd);
    CU_ASSERT_EQUAL(mode_of(e.root, "d1/d2/f"), 0644);
    umask(mask);
    env_fini(&e);
}

/* Stages n bytes of seed, with byte at flip (if < n) changed. */
static int
stage_flipped(struct env *e, char *name, size_t n, unsigned seed, size_t flip)
{
    int  fd = stage(e, name, n, seed);
    char c;

    if (flip < n) {
        CU_ASSERT_FATAL(pread(fd, &c, 1, (off_t)flip) == 1);
        c ^= 0x55;
        CU_ASSERT_FATAL(pwrite(fd, &c, 1, (off_t)flip) == 1);
    }
    return fd;
}

static void
test_publish_conflict(void)
{
    struct env e;
    char       name[STORE_STAGING_NAME_LEN], err[256];
    ino_t      ino;
    int        fd, i;
    const size_t big = 3 * 128 * 1024 + 4321;
    /* Same size differing at the start, at a chunk boundary, at the very
     * end; then a different size. */
    const size_t flips[] = { 0, 128 * 1024, 128 * 1024 - 1, big - 1 };

    env_init(&e);
    fd = stage(&e, name, big, 3);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "d/f", &MODES, err,
                                  sizeof(err)), STORE_PUBLISHED);
    close(fd);
    ino = inode_of(e.root, "d/f");
    for (i = 0; i < 5; i++) {
        fd = i < 4 ? stage_flipped(&e, name, big, 3, flips[i])
                   : stage(&e, name, big - 1, 3);
        CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "d/f", &MODES,
                                      err, sizeof(err)), STORE_CONFLICT);
        /* Existing file untouched; staging left for the caller. */
        CU_ASSERT_EQUAL(inode_of(e.root, "d/f"), ino);
        CU_ASSERT(holds(e.root, "d/f", big, 3));
        CU_ASSERT_EQUAL(count_entries(e.stage), 1);
        CU_ASSERT_EQUAL(store_staging_discard(e.sfd, name), 0);
        CU_ASSERT_EQUAL(count_entries(e.stage), 0);
        close(fd);
    }
    CU_ASSERT_EQUAL(count_entries(e.root), 1);
    env_fini(&e);
}

static void
test_publish_not_a_file(void)
{
    struct env e;
    char       name[STORE_STAGING_NAME_LEN], err[256], p[1200], q[600];
    int        fd;

    env_init(&e);
    /* A directory where the file would go. */
    snprintf(p, sizeof(p), "%s/dir", e.root);
    CU_ASSERT_FATAL(mkdir(p, 0755) == 0);
    fd = stage(&e, name, 100, 1);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "dir", &MODES, err,
                                  sizeof(err)), STORE_CONFLICT);
    CU_ASSERT_EQUAL(count_entries(p), 0);
    /* A symlink at the final name, pointing at a file outside with the
     * very same bytes: still a conflict, and the outside file untouched. */
    snprintf(q, sizeof(q), "%s/same", e.out);
    snprintf(p, sizeof(p), "%s/%s", e.stage, name);
    CU_ASSERT_FATAL(link(p, q) == 0);
    snprintf(p, sizeof(p), "%s/lnk", e.root);
    CU_ASSERT_FATAL(symlink(q, p) == 0);
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "lnk", &MODES, err,
                                  sizeof(err)), STORE_CONFLICT);
    CU_ASSERT(holds(e.out, "same", 100, 1));
    /* A symlinked directory on the way: error, nothing made outside. */
    snprintf(p, sizeof(p), "%s/evil", e.root);
    CU_ASSERT_FATAL(symlink(e.out, p) == 0);
    errno = 0;
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "evil/x", &MODES,
                                  err, sizeof(err)), STORE_PUBLISH_ERROR);
    CU_ASSERT_EQUAL(errno, ELOOP);
    CU_ASSERT_EQUAL(count_entries(e.out), 1);
    /* A path that never went through store_path_decode. */
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "../outside/y",
                                  &MODES, err, sizeof(err)),
                    STORE_PUBLISH_ERROR);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(count_entries(e.out), 1);
    /* Staging survives every refusal. */
    CU_ASSERT_EQUAL(count_entries(e.stage), 1);
    close(fd);
    env_fini(&e);
}

static void
test_free_bytes(void)
{
    struct env e;
    uint64_t   n = 0;

    env_init(&e);
    CU_ASSERT_EQUAL(store_free_bytes(e.rfd, &n), 0);
    CU_ASSERT(n > 0);
    CU_ASSERT_EQUAL(store_free_bytes(-1, &n), -1);
    CU_ASSERT_EQUAL(errno, EBADF);
    env_fini(&e);
}

/* Mounts a tmpfs of 64 KiB and few inodes at dir; 0, or -1 to skip. */
static int
tiny_tmpfs(const char *dir, int inodes)
{
    char opts[64];

    snprintf(opts, sizeof(opts), "size=64k,nr_inodes=%d,mode=0755", inodes);
    CU_ASSERT_FATAL(mkdir(dir, 0755) == 0);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) == 0)
        return 0;
    printf("    note: cannot mount tmpfs (%s): ENOSPC/EXDEV test skipped\n",
           strerror(errno));
    return -1;
}

static void
test_enospc(void)
{
    struct env e;
    char       mnt[600], r[700], s[700], name[STORE_STAGING_NAME_LEN];
    char       name2[STORE_STAGING_NAME_LEN], err[256], buf[4096];
    uint64_t   before = 0, after = 1;
    ssize_t    w;
    int        fd, fd2, rc;

    e.tmp = unit_mkdtemp();
    snprintf(mnt, sizeof(mnt), "%s/mnt", e.tmp);
    /* Inodes: root dir, root, staging, the data file, one more file. */
    if (tiny_tmpfs(mnt, 6) < 0) {
        unit_rmtree(e.tmp);
        free(e.tmp);
        return;
    }
    snprintf(r, sizeof(r), "%s/root", mnt);
    snprintf(s, sizeof(s), "%s/staging", mnt);
    env_open(&e, r, s);
    CU_ASSERT_EQUAL(store_free_bytes(e.rfd, &before), 0);
    CU_ASSERT(before > 0 && before <= 64 * 1024);

    /* The caller's writes fill the filesystem and see ENOSPC. */
    CU_ASSERT_FATAL(store_staging_create(e.sfd, name, sizeof(name), &fd, err,
                                         sizeof(err)) == 0);
    memset(buf, 'z', sizeof(buf));
    while ((w = write(fd, buf, sizeof(buf))) > 0)
        ;
    CU_ASSERT_EQUAL(w, -1);
    CU_ASSERT_EQUAL(errno, ENOSPC);
    CU_ASSERT_EQUAL(store_free_bytes(e.sfd, &after), 0);
    CU_ASSERT_EQUAL(after, 0);

    /* Use up the inodes: staging_create reports ENOSPC, not a bare -1. */
    while ((rc = store_staging_create(e.sfd, name2, sizeof(name2), &fd2, err,
                                      sizeof(err))) == 0)
        close(fd2);
    CU_ASSERT_EQUAL(errno, ENOSPC);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No space"));

    /* mkdirat needs an inode: ENOSPC, nothing visible at the final path. */
    errno = 0;
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "newdir/f", &MODES,
                                  err, sizeof(err)), STORE_PUBLISH_ERROR);
    CU_ASSERT_EQUAL(errno, ENOSPC);
    CU_ASSERT_EQUAL(count_entries(e.root), 0);
    /* tmpfs charges a hard link to the inode budget too: linkat's ENOSPC
     * comes back the same way. */
    errno = 0;
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "f", &MODES, err,
                                  sizeof(err)), STORE_PUBLISH_ERROR);
    CU_ASSERT_EQUAL(errno, ENOSPC);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "linkat"));
    CU_ASSERT_EQUAL(count_entries(e.root), 0);
    /* The staged data is still there for the caller to discard. */
    CU_ASSERT(faccessat(e.sfd, name, F_OK, 0) == 0);
    CU_ASSERT_EQUAL(store_staging_discard(e.sfd, name), 0);
    close(fd);
    close(e.rfd);
    close(e.sfd);
    CU_ASSERT(umount2(mnt, MNT_DETACH) == 0);
    unit_rmtree(e.tmp);
    free(e.tmp);
}

static void
test_exdev(void)
{
    struct env e;
    char       mnt[600], r[700], s[700], name[STORE_STAGING_NAME_LEN];
    char       err[256];
    int        fd;

    e.tmp = unit_mkdtemp();
    snprintf(mnt, sizeof(mnt), "%s/mnt", e.tmp);
    if (tiny_tmpfs(mnt, 64) < 0) {
        unit_rmtree(e.tmp);
        free(e.tmp);
        return;
    }
    /* Root on the tmpfs, staging on the filesystem of $TMPDIR. */
    snprintf(r, sizeof(r), "%s/root", mnt);
    snprintf(s, sizeof(s), "%s/staging", e.tmp);
    env_open(&e, r, s);
    fd = stage(&e, name, 10, 1);
    errno = 0;
    CU_ASSERT_EQUAL(store_publish(e.sfd, name, fd, e.rfd, "d/f", &MODES, err,
                                  sizeof(err)), STORE_PUBLISH_ERROR);
    CU_ASSERT_EQUAL(errno, EXDEV);
    CU_ASSERT_FALSE(holds(e.root, "d/f", 10, 1));
    CU_ASSERT_EQUAL(count_entries(e.stage), 1);
    close(fd);
    close(e.rfd);
    close(e.sfd);
    CU_ASSERT(umount2(mnt, MNT_DETACH) == 0);
    unit_rmtree(e.tmp);
    free(e.tmp);
}

static void
test_staging_owner(void)
{
    CU_ASSERT_EQUAL(store_staging_owner("up-1234-0123abcd"), 1234);
    CU_ASSERT_EQUAL(store_staging_owner("up-7-"), 7);
    /* Names of older versions, sessions and anything else: no owner. */
    CU_ASSERT_EQUAL(store_staging_owner("up-0123456789abcdef0123456789abcdef"),
                    -1);
    CU_ASSERT_EQUAL(store_staging_owner("up-"), -1);
    CU_ASSERT_EQUAL(store_staging_owner("up--1-ab"), -1);
    CU_ASSERT_EQUAL(store_staging_owner("up-0-ab"), -1);
    CU_ASSERT_EQUAL(store_staging_owner("up-99999999999999999999-ab"), -1);
    CU_ASSERT_EQUAL(store_staging_owner("ab"), -1);
    CU_ASSERT_EQUAL(store_staging_owner("xup-12-ab"), -1);
}

/* The group commit's half (storage.sync = "batch"): same visible result,
 * the directories left to store_sync_dir; store_unpublish takes back only
 * our own file. */
static void
test_publish_unsynced_dirs(void)
{
    struct env e;
    char       name[STORE_STAGING_NAME_LEN], err[256];
    int        fd, other;

    env_init(&e);
    fd = stage(&e, name, 5000, 3);
    CU_ASSERT_EQUAL(store_publish_unsynced_dirs(e.sfd, name, fd, e.rfd,
                                                "g/h/f.bin", &MODES, err,
                                                sizeof(err)), STORE_PUBLISHED);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT(holds(e.root, "g/h/f.bin", 5000, 3));
    CU_ASSERT_EQUAL(count_entries(e.stage), 0);
    CU_ASSERT_EQUAL(store_sync_dir(e.rfd, "", false, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(store_sync_dir(e.rfd, "g", false, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(store_sync_dir(e.rfd, "g/h", true, err, sizeof(err)), 0);
    /* A directory that is not there, or escapes: an error naming it. */
    CU_ASSERT_EQUAL(store_sync_dir(e.rfd, "g/nope", true, err, sizeof(err)),
                    -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_EQUAL(store_sync_dir(e.rfd, "..", false, err, sizeof(err)), -1);
    /* Identical bytes elsewhere: "already there", still unsynced. */
    other = stage(&e, name, 5000, 3);
    CU_ASSERT_EQUAL(store_publish_unsynced_dirs(e.sfd, name, other, e.rfd,
                                                "g/h/f.bin", &MODES, err,
                                                sizeof(err)),
                    STORE_IDENTICAL_EXISTS);
    /* Taking back a name that is someone else's file does nothing... */
    store_unpublish(e.rfd, "g/h/f.bin", other);
    CU_ASSERT(holds(e.root, "g/h/f.bin", 5000, 3));
    /* ...ours goes, and a second time (or a missing path) is harmless. */
    store_unpublish(e.rfd, "g/h/f.bin", fd);
    CU_ASSERT_EQUAL(inode_of(e.root, "g/h/f.bin"), 0);
    store_unpublish(e.rfd, "g/h/f.bin", fd);
    store_unpublish(e.rfd, "no/such/f", fd);
    close(other);
    close(fd);
    env_fini(&e);
}

static CU_TestInfo tests[] = {
    { "staging_owner parses the creator's pid", test_staging_owner },
    { "staging_create names and modes", test_staging_create },
    { "publish new file", test_publish_new },
    { "publish identical exists", test_publish_identical },
    { "publish applies file and dir modes", test_publish_modes },
    { "publish conflict", test_publish_conflict },
    { "publish without directory syncs, unpublish",
      test_publish_unsynced_dirs },
    { "publish over non-files and links", test_publish_not_a_file },
    { "free bytes", test_free_bytes },
    { "ENOSPC on a full tmpfs", test_enospc },
    { "EXDEV across filesystems", test_exdev },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("publish", NULL, NULL, tests);
