/* manifest_dir.c: session keys and directories under staging: naming,
 * open, create (durable HEADER), remove, and the walk over every session.
 * Crash windows: docs/recovery.md. */
#define _GNU_SOURCE
#include "lib/store/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/store/manifest_internal.h"
#include "lib/store/manifest_record.h"
#include "lib/util/syncsite.h"


void
manifest_key_hex(const uint8_t key[MANIFEST_KEY_LEN],
                 char hex[MANIFEST_KEY_HEXLEN + 1])
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < MANIFEST_KEY_LEN; i++) {
        hex[2 * i] = digits[key[i] >> 4];
        hex[2 * i + 1] = digits[key[i] & 15];
    }
    hex[MANIFEST_KEY_HEXLEN] = '\0';
}


static int
key_parse(const char *hex, uint8_t key[MANIFEST_KEY_LEN])
{
    for (int i = 0; i < MANIFEST_KEY_HEXLEN; i++) {
        int c = hex[i], v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else
            return -1;
        if (i % 2 == 0)
            key[i / 2] = (uint8_t)(v << 4);
        else
            key[i / 2] |= (uint8_t)v;
    }
    return hex[MANIFEST_KEY_HEXLEN] == '\0' ? 0 : -1;
}


void
manifest_key(const char *id, size_t idlen, const char *path, size_t pathlen,
             uint8_t key[MANIFEST_KEY_LEN])
{
    static const char dom[] = "hmac-file-server session v1";
    unsigned char     len[8];
    EVP_MD_CTX       *ctx = EVP_MD_CTX_new();
    unsigned int      n = 0;

    manifest_record_put64(len, idlen);
    /* Length prefixes: ("ab", "c") and ("a", "bc") must not collide. */
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(ctx, dom, sizeof(dom)) != 1
        || EVP_DigestUpdate(ctx, len, 8) != 1
        || EVP_DigestUpdate(ctx, id, idlen) != 1
        || (manifest_record_put64(len,
                                  pathlen), EVP_DigestUpdate(ctx, len, 8)) != 1
        || EVP_DigestUpdate(ctx, path, pathlen) != 1
        || EVP_DigestFinal_ex(ctx, key, &n) != 1 || n != MANIFEST_KEY_LEN)
        abort();                /* only on allocation failure in libcrypto */
    EVP_MD_CTX_free(ctx);
}


/* "<aa>" and "<key-hex>" for a key. */
static void
key_names(const uint8_t key[MANIFEST_KEY_LEN], char fan[3],
          char hex[MANIFEST_KEY_HEXLEN + 1])
{
    manifest_key_hex(key, hex);
    fan[0] = hex[0];
    fan[1] = hex[1];
    fan[2] = '\0';
}


static int
open_dir(int at, const char *name)
{
    return openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}


static struct manifest *
handle_new(const char *hex)
{
    struct manifest *m = calloc(1, sizeof(*m));

    if (m != NULL) {
        m->dfd = m->fd = m->datafd = -1;
        memcpy(m->hex, hex, sizeof(m->hex));
    }
    return m;
}


void
manifest_close(struct manifest *m)
{
    if (m == NULL)
        return;
    if (m->datafd >= 0)
        close(m->datafd);
    if (m->fd >= 0)
        close(m->fd);
    if (m->dfd >= 0)
        close(m->dfd);
    free(m);
}


int
manifest_data_fd(const struct manifest *m)
{
    return m->datafd;
}


uint32_t
manifest_syncs(const struct manifest *m)
{
    return m->syncs;
}


int
manifest_open(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
              struct manifest **m_r, char *err, size_t errlen)
{
    char             fan[3], hex[MANIFEST_KEY_HEXLEN + 1];
    struct manifest *m;
    int              fanfd;

    key_names(key, fan, hex);
    if ((m = handle_new(hex)) == NULL)
        return manifest_fail(err, errlen, ENOMEM, "manifest: out of memory");
    fanfd = open_dir(staging_fd, fan);
    if (fanfd >= 0) {
        m->dfd = open_dir(fanfd, hex);
        close(fanfd);
    }
    if (m->dfd >= 0)
        m->fd = openat(m->dfd, "manifest", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (m->fd >= 0)
        m->datafd = openat(m->dfd, "data", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (m->datafd < 0) {
        manifest_fail(err, errlen, errno, "manifest %.8s: open: %s", hex,
                      strerror(errno));
        manifest_close(m);
        return -1;
    }
    *m_r = m;
    return 0;
}


/* The fan-out directory, created on first use (synced by the caller). */
static int
open_fan(int staging_fd, const char *fan, char *err, size_t errlen)
{
    int fd;

    if (mkdirat(staging_fd, fan, 0700) < 0 && errno != EEXIST) {
        return manifest_fail(err, errlen, errno, "staging/%s: mkdir: %s", fan,
                             strerror(errno));
    }
    if ((fd = open_dir(staging_fd, fan)) < 0)
        return manifest_fail(err, errlen, errno, "staging/%s: open: %s", fan,
                             strerror(errno));
    return fd;
}


/* What manifest_adopt hands over: a staging file and its descriptor. */
struct adopt {
    const char *name;
    int         fd;
};

/* Files of a fresh session; the caller syncs the directories. `adopt`:
 * its staging file becomes `data` (a second name, linked), else a new
 * file is made. */
static int
create_files(struct manifest *m, const struct manifest_header *h,
             int staging_fd, const struct adopt *adopt, char *err,
             size_t errlen)
{
    struct rec_src s = { .type = MANIFEST_HEADER, .header = h };
    unsigned char  buf[REC_MAX];
    size_t         len;
    int            flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;

    if ((len = manifest_record_encode(buf, sizeof(buf), &s, 0)) == 0)
        return manifest_fail(err, errlen, EINVAL, "manifest %.8s: header "
                             "field too long", m->hex);
    if (adopt != NULL
        && linkat(staging_fd, adopt->name, m->dfd, "data", 0) < 0)
        return manifest_fail(err, errlen, errno, "manifest %.8s: link %s as "
                             "data: %s", m->hex, adopt->name, strerror(errno));
    /* An adopted file keeps its open file description: a write-back error
     * already reported to it must not be missed by our fdatasync, and one
     * not yet reported still will be. */
    m->datafd = adopt ? fcntl(adopt->fd, F_DUPFD_CLOEXEC, 0)
                      : openat(m->dfd, "data", flags, 0600);
    if (m->datafd < 0)
        return manifest_fail(err, errlen, errno, "manifest %.8s: create data: "
                             "%s", m->hex, strerror(errno));
    /* Reserve the space now so a full disk is a 507 at creation rather
     * than a failure halfway through; fine to lack on some filesystems.
     * (An adopted file had its space reserved when it was made.) */
    if (adopt == NULL && h->size != MANIFEST_SIZE_UNKNOWN && h->size > 0
        && fallocate(m->datafd, 0, 0, (off_t)h->size) < 0
        && errno != EOPNOTSUPP)
        return manifest_fail(err, errlen, errno, "manifest %.8s: fallocate "
                             "%llu: %s", m->hex, (unsigned long long)h->size,
                             strerror(errno));
    m->fd = openat(m->dfd, "manifest", flags, 0600);
    if (m->fd < 0)
        return manifest_fail(err, errlen, errno, "manifest %.8s: create: %s",
                             m->hex, strerror(errno));
    manifest_count_syncs(m, 1);
    if (manifest_pwrite_all(m->fd, buf, len, 0) < 0
        || SYNC_AT("manifest_header", fdatasync(m->fd)) < 0)
        return manifest_fail(err, errlen, errno, "manifest %.8s: write "
                             "header: %s", m->hex, strerror(errno));
    m->valid_end = len;
    m->records = 1;
    return 0;
}


static int
create(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
       const struct manifest_header *h, const struct adopt *adopt,
       struct manifest **m_r, char *err, size_t errlen)
{
    char             fan[3], hex[MANIFEST_KEY_HEXLEN + 1];
    struct manifest *m;
    int              fanfd, saved;

    key_names(key, fan, hex);
    if (h->proto < MANIFEST_PROTO_CHUNKED || h->proto > MANIFEST_PROTO_LAST)
        return manifest_fail(err, errlen, EINVAL, "manifest %.8s: bad "
                             "protocol %d", hex, h->proto);
    if ((m = handle_new(hex)) == NULL)
        return manifest_fail(err, errlen, ENOMEM, "manifest: out of memory");
    if ((fanfd = open_fan(staging_fd, fan, err, errlen)) < 0) {
        manifest_close(m);
        return -1;
    }
    if (mkdirat(fanfd, hex, 0700) < 0) {
        manifest_fail(err, errlen, errno, "manifest %.8s: mkdir: %s", hex,
                      strerror(errno));
        goto fail_fan;
    }
    if ((m->dfd = open_dir(fanfd, hex)) < 0) {
        manifest_fail(err, errlen, errno, "manifest %.8s: open dir: %s", hex,
                      strerror(errno));
        goto fail_dir;
    }
    if (create_files(m, h, staging_fd, adopt, err, errlen) < 0)
        goto fail_dir;
    /* Directory entries for data and manifest, the session directory and
     * the fan-out directory (another creator may have made it and not yet
     * synced staging): without these a synced HEADER can vanish. */
    manifest_count_syncs(m, 3);
    if (SYNC_AT("manifest_session_dir", fsync(m->dfd)) < 0
        || SYNC_AT("manifest_fan_dir", fsync(fanfd)) < 0
        || SYNC_AT("manifest_staging_dir", fsync(staging_fd)) < 0) {
        manifest_fail(err, errlen, errno, "manifest %.8s: fsync dir: %s", hex,
                      strerror(errno));
        goto fail_dir;
    }
    close(fanfd);
    *m_r = m;
    return 0;
fail_dir:
    saved = errno;
    manifest_close(m);
    m = NULL;
    (void)manifest_remove(staging_fd, key, NULL, 0);
    errno = saved;
fail_fan:
    saved = errno;
    close(fanfd);
    manifest_close(m);
    errno = saved;
    return -1;
}


int
manifest_create(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                const struct manifest_header *h, struct manifest **m_r,
                char *err, size_t errlen)
{
    return create(staging_fd, key, h, NULL, m_r, err, errlen);
}


int
manifest_adopt(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
               const struct manifest_header *h, const char *staging_name,
               int fd, struct manifest **m_r, char *err, size_t errlen)
{
    struct adopt a = { staging_name, fd };
    if (create(staging_fd, key, h, &a, m_r, err, errlen) < 0)
        return -1;
    /* Not synced: a staging name that comes back after a crash is removed
     * at the next start (master/recover.c), which leaves `data` alone. */
    (void)unlinkat(staging_fd, staging_name, 0);
    return 0;
}


/* Unlinks every file of a session directory, the manifest first: a crash
 * midway leaves a directory without manifest, which recovery discards,
 * never a manifest whose data is gone. */
static int
empty_dir(int dfd)
{
    DIR           *d;
    struct dirent *de;
    int            fd, rc = 0;

    if (unlinkat(dfd, "manifest", 0) < 0 && errno != ENOENT)
        return -1;
    if ((fd = dup(dfd)) < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT)
            rc = -1;
    }
    closedir(d);
    return rc;
}


int
manifest_remove(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                char *err, size_t errlen)
{
    char fan[3], hex[MANIFEST_KEY_HEXLEN + 1];
    int  fanfd, dfd, rc = 0;

    key_names(key, fan, hex);
    if ((fanfd = open_dir(staging_fd, fan)) < 0)
        return errno == ENOENT ? 0
             : manifest_fail(err, errlen, errno, "staging/%s: open: %s", fan,
                             strerror(errno));
    if ((dfd = open_dir(fanfd, hex)) >= 0) {
        if (empty_dir(dfd) < 0)
            rc = manifest_fail(err, errlen, errno, "manifest %.8s: unlink: %s",
                               hex, strerror(errno));
        close(dfd);
        if (rc == 0 && unlinkat(fanfd, hex, AT_REMOVEDIR) < 0)
            rc = manifest_fail(err, errlen, errno, "manifest %.8s: rmdir: %s",
                               hex, strerror(errno));
    } else if (errno != ENOENT) {
        rc = manifest_fail(err, errlen, errno, "manifest %.8s: open dir: %s",
                           hex, strerror(errno));
    }
    /* Make the removal durable, or a crash resurrects the session. */
    if (rc == 0 && SYNC_AT("manifest_remove_dir", fsync(fanfd)) < 0)
        rc = manifest_fail(err, errlen, errno, "staging/%s: fsync: %s", fan,
                           strerror(errno));
    close(fanfd);
    return rc;
}


static int
walk_fan(int staging_fd, const char *fan,
         int (*fn)(const uint8_t key[MANIFEST_KEY_LEN], void *arg),
         void *arg, char *err, size_t errlen)
{
    uint8_t        key[MANIFEST_KEY_LEN];
    DIR           *d;
    struct dirent *de;
    int            fd, rc = 0;

    if ((fd = open_dir(staging_fd, fan)) < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return manifest_fail(err, errlen, errno, "staging/%s: open: %s", fan,
                             strerror(errno));
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (key_parse(de->d_name, key) < 0 || memcmp(de->d_name, fan, 2) != 0)
            continue;
        rc = fn(key, arg);
    }
    closedir(d);
    return rc;
}


int
manifest_foreach(int staging_fd,
                 int (*fn)(const uint8_t key[MANIFEST_KEY_LEN], void *arg),
                 void *arg, char *err, size_t errlen)
{
    DIR           *d;
    struct dirent *de;
    int            fd, rc = 0;

    if ((fd = dup(staging_fd)) < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return manifest_fail(err, errlen, errno, "staging: open: %s",
                             strerror(errno));
    }
    rewinddir(d);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strlen(n) != 2 || !strchr("0123456789abcdef", n[0])
            || !strchr("0123456789abcdef", n[1]))
            continue;
        rc = walk_fan(staging_fd, n, fn, arg, err, errlen);
    }
    closedir(d);
    return rc;
}
