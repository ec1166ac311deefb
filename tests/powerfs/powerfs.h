/* powerfs.h: a FUSE filesystem that forgets what was not synced.
 *
 * powerfs BACKING MOUNTPOINT CTLSOCK  (tests/powerfs/README in
 * docs/recovery.md, "Power-cut simulation").
 *
 * Model (POSIX-strict, stricter than ext4 data=ordered):
 *   - The backing directory holds only the durable state: per inode
 *     BACKING/<ino>.d (file bytes) and BACKING/<ino>.m (type, mode, and for a
 *     directory its entries). Nothing else is ever written there.
 *   - Every write, truncate, fallocate, create, mkdir, link, rename, unlink
 *     and rmdir changes only the in-memory "page cache" of this process.
 *   - fsync/fdatasync of a file makes its bytes and size durable (fsync also
 *     its mode); fsyncdir of a directory makes its entries durable. No other
 *     call persists anything: not close, not flush, not fsync of another file
 *     (ext4's journal would often persist names too; we do not rely on it).
 *   - "cut P SEED" on the control socket: a power cut. With P = 0 every
 *     unsynced change is lost; with P > 0 each dirty 4 KiB page of an
 *     overwrite survives with probability P (so multi-page writes tear at
 *     4 KiB boundaries), an append survives as a random whole-page prefix
 *     (ordered mode: size never covers unwritten blocks), and each directory
 *     keeps a random prefix of its unsynced name changes. Then the process
 *     exits: its memory was the page cache. Mounting again loads only what
 *     the backing directory holds; unreachable inodes are removed (fsck).
 *   - "fault OP ERR SKIP COUNT MATCH": after SKIP matching calls, the next
 *     COUNT (-1 = all) calls of OP on an inode whose path contains MATCH
 *     fail with errno ERR ("short" for a short write). OP: fsync (either
 *     kind), fdatasync, fsyncfull (fsync proper), fsyncdir, write, link,
 *     create, mkdir, rename, fallocate. A failed fsync marks the file's
 *     pages clean without writing them, as Linux does ("fsyncgate"): a
 *     second fsync then succeeds though the bytes were never stored.
 *   - "clear", "stats", "ping", "syncall" (everything durable; for setup).
 */
#ifndef POWERFS_H
#define POWERFS_H

#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#define PFS_PAGE 4096

struct pfs_dent {
    char     *name;
    uint64_t  ino;
};

struct pfs_dlog {                  /* one unsynced change of a directory */
    bool      add;                 /* add name -> ino, else remove name */
    char     *name;
    uint64_t  ino;
};

struct pfs_node {
    uint64_t         ino;
    mode_t           mode;         /* type and permissions, volatile */
    mode_t           dur_mode;
    uint32_t         nlink;
    uint64_t         parent;       /* last parent and name: fault matching */
    char             name[256];
    struct timespec  mtime, ctime;
    /* regular file */
    bool             loaded;
    char            *data;
    size_t           size, cap, dur_size;
    uint8_t         *dirty;        /* one byte per page */
    size_t           dirty_cap;
    bool             meta_dirty;
    /* directory */
    struct pfs_dent *ents;         /* volatile */
    size_t           nents;
    struct pfs_dent *dents;        /* durable */
    size_t           ndents;
    struct pfs_dlog *log;
    size_t           nlog;
};

struct pfs_rule {
    char  op[16];
    int   err;                     /* 0: short write */
    long  skip, count;
    char  match[128];
};

#define PFS_RULES 16

struct pfs {
    pthread_mutex_t   mu;
    int               bfd;         /* backing directory */
    struct pfs_node **nodes;       /* by ino; NULL = none */
    size_t            nnodes;
    uint64_t          next_ino;
    bool              frozen;      /* after a cut: every call fails EIO */
    struct pfs_rule   rules[PFS_RULES];
    int               nrules;
    uint64_t          n_fsync, n_fsyncdir, n_faults;
};

/* model.c */
int   pfs_load(struct pfs *fs, const char *backing);
struct pfs_node *pfs_node(struct pfs *fs, uint64_t ino);
struct pfs_node *pfs_new_node(struct pfs *fs, mode_t mode);
int   pfs_load_data(struct pfs *fs, struct pfs_node *n);
int   pfs_file_write(struct pfs_node *n, const char *buf, size_t len,
                     off_t off);
int   pfs_file_resize(struct pfs_node *n, size_t size);
int   pfs_sync_file(struct pfs *fs, struct pfs_node *n, bool datasync);
void  pfs_drop_dirty(struct pfs_node *n);
int   pfs_sync_dir(struct pfs *fs, struct pfs_node *d);
struct pfs_dent *pfs_dir_find(struct pfs_node *d, const char *name);
int   pfs_dir_add(struct pfs_node *d, const char *name, uint64_t ino);
int   pfs_dir_del(struct pfs_node *d, const char *name);
void  pfs_path(struct pfs *fs, struct pfs_node *n, char *out, size_t len);
int   pfs_cut(struct pfs *fs, double p, unsigned seed, char *rep,
              size_t replen);
int   pfs_sync_all(struct pfs *fs);

/* ctl.c */
int   pfs_ctl_start(struct pfs *fs, const char *sockpath);
/* 0, or the errno to fail with (-1: short write) for op on node. */
int   pfs_fault(struct pfs *fs, const char *op, struct pfs_node *n);

#endif
