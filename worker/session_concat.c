/* session_concat.c: tus concatenation on the session side. A final upload's
 * session is filled from its partial uploads' data files (copy_file_range:
 * the kernel copies, or shares the blocks where the filesystem can), each
 * partial checked against the final's binding first (same signed path and
 * the same signed URL's size and expiry). After the final is published its
 * partials are spent (sess_concat_spend_parts), then their table entries
 * follow on the loop (sess_concat_end_parts). Partials are keyed like every tus upload,
 * by their id alone (manifest_key(id, "")). */
#define _GNU_SOURCE
#include "worker/session_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util/crc32c.h"
#include "lib/util/log.h"
#include "worker/conn.h"

/* The i-th partial id of a final's HEADER into id; false past the end. */
static bool
part_id(const struct sess *s, size_t i, char *id, size_t idlen)
{
    const char *p = s->hdr.parts;
    for (;;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        if (n == 0)
            return false;
        if (i-- == 0) {
            if (n >= idlen)
                return false;
            memcpy(id, p, n);
            id[n] = '\0';
            return true;
        }
        p += n;
    }
}

static void
part_key(const char *id, uint8_t key[MANIFEST_KEY_LEN])
{
    manifest_key(id, strlen(id), "", 0, key);
}

static int
fail(struct sess *s, int status, const char *id, const char *why)
{
    snprintf(s->err, sizeof(s->err), "partial upload %.8s...: %s", id, why);
    s->job_rc = status;
    return -1;
}

/* Is this partial one of the final's, complete and alive? */
static int
check_part(struct sess *s, const char *id, const struct manifest_state *st)
{
    const struct manifest_header *h = &st->header;
    if (h->proto != s->hdr.proto || h->concat != MANIFEST_CONCAT_PARTIAL)
        return fail(s, 400, id, "not a partial upload (Upload-Concat: "
                    "partial)");
    if (strcmp(h->path, s->hdr.path) != 0)
        return fail(s, 403, id, "belongs to another file");
    if (h->mac_variant != s->hdr.mac_variant || h->mac_size != s->hdr.mac_size
        || h->mac_expiry != s->hdr.mac_expiry)
        return fail(s, 403, id, "was created with another signed URL");
    if (st->aborted || st->complete)
        return fail(s, 410, id, "expired or terminated");
    if (st->size == MANIFEST_SIZE_UNKNOWN
        || !ranges_covers(&st->held, 0, st->size))
        return fail(s, 400, id, "is not complete");
    return 0;
}

/* [0, len) of src to dst at off: copy_file_range, or read and write where
 * the kernel cannot (another filesystem, an old kernel). */
static int
copy_range(struct sess *s, int src, int dst, uint64_t off, uint64_t len)
{
    static __thread char buf[128 * 1024];
    loff_t in = 0, out = (loff_t)off;
    bool plain = false;

    while ((uint64_t)in < len) {
        size_t want = len - (uint64_t)in > (1 << 30) ? (1 << 30)
                                                     : (size_t)(len - in);
        ssize_t n;
        if (!plain) {
            n = copy_file_range(src, &in, dst, &out, want, 0);
            if (n < 0 && (errno == EXDEV || errno == ENOSYS
                          || errno == EINVAL || errno == EOPNOTSUPP)) {
                plain = true;
                continue;
            }
        } else {
            n = pread(src, buf, want < sizeof(buf) ? want : sizeof(buf), in);
            if (n > 0 && pwrite(dst, buf, (size_t)n, out) != n)
                n = -1;
            if (n > 0) {
                in += n;
                out += n;
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s->job_errno = n == 0 ? EIO : errno;
            snprintf(s->err, sizeof(s->err), "copying a partial upload: %s",
                     strerror(s->job_errno));
            s->job_rc = s->job_errno == ENOSPC || s->job_errno == EDQUOT
                        ? 507 : 500;
            return -1;
        }
    }
    return 0;
}

/* CRC-32C of what was copied, for the CHUNK record the commit writes:
 * recovery's VERIFY re-reads it like any written range. */
static int
crc_range(struct sess *s, int fd, uint64_t off, uint64_t len)
{
    static __thread char buf[128 * 1024];
    while (len > 0) {
        ssize_t n = pread(fd, buf, len < sizeof(buf) ? (size_t)len
                                                     : sizeof(buf), (off_t)off);
        if (n <= 0) {
            snprintf(s->err, sizeof(s->err), "reading the final upload");
            s->job_rc = 500;
            return -1;
        }
        s->crc = crc32c(s->crc, buf, (size_t)n);
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

/* Pool side of J_CONCAT. */
void
sess_concat_work(struct sess *s)
{
    struct manifest_state *st = calloc(1, sizeof(*st));
    uint64_t off = 0, total = s->b - s->a;
    char id[MANIFEST_ID_MAX + 1];

    s->job_rc = 0;
    if (st == NULL) {
        s->job_rc = 500;
        snprintf(s->err, sizeof(s->err), "out of memory");
        return;
    }
    for (size_t i = 0; s->job_rc == 0 && part_id(s, i, id, sizeof(id));
         i++) {
        uint8_t key[MANIFEST_KEY_LEN];
        struct manifest *m = NULL;
        char err[256];
        part_key(id, key);
        if (manifest_open(s->w->staging_fd, key, &m, err, sizeof(err)) < 0) {
            fail(s, errno == ENOENT ? 400 : 500, id, errno == ENOENT
                 ? "no such upload" : "cannot open it");
            break;
        }
        if (manifest_load(m, 0, st, err, sizeof(err)) < 0)
            fail(s, 500, id, "cannot read it");
        else if (check_part(s, id, st) == 0) {
            if (st->size > total - off)
                fail(s, 400, id, "the partials are longer than the final");
            else if (copy_range(s, manifest_data_fd(m),
                                manifest_data_fd(s->m), s->a + off,
                                st->size) == 0)
                off += st->size;
        }
        manifest_close(m);
    }
    free(st);
    if (s->job_rc == 0 && off != total) {
        s->job_rc = 400;
        snprintf(s->err, sizeof(s->err), "the partial uploads' sizes "
                 "changed since the final was created");
    }
    if (s->job_rc == 0 && crc_range(s, manifest_data_fd(s->m), s->a, total)
        == 0)
        s->written = total;
}

void
sess_concat(struct sess *s, sess_cb *cb, void *arg)
{
    s->cb = cb;
    s->cb_arg = arg;
    if (!s->leased || s->written != 0 || s->m == NULL) {
        snprintf(s->err, sizeof(s->err), "nothing leased to fill");
        sess_answer(s, 500);
        return;
    }
    s->crc = 0;
    sess_submit(s, J_CONCAT);
}

const char *
sess_error(const struct sess *s)
{
    return s->err;
}

/* Pool side, once the final is published (or can never be): its partials
 * are spent. Published: each gets COMPLETE (the final's digest and path)
 * and its bytes are freed, but the session stays until the table lets it
 * go (SHM_DONE_KEEP_S), so that a client whose 201 was lost, even across
 * a restart (master/recover.c keeps them DONE), finds them complete and
 * repeats the final. Not published: ABORT, and the session is removed. */
void
sess_concat_spend_parts(struct sess *s, const uint8_t *sha)
{
    char id[MANIFEST_ID_MAX + 1], err[256];
    for (size_t i = 0; part_id(s, i, id, sizeof(id)); i++) {
        uint8_t key[MANIFEST_KEY_LEN];
        struct manifest *m = NULL;
        part_key(id, key);
        if (manifest_open(s->w->staging_fd, key, &m, err, sizeof(err)) < 0)
            continue;
        if (sha != NULL
            && manifest_append_complete(m, sha, s->hdr.path, err,
                                        sizeof(err)) == 0) {
            if (ftruncate(manifest_data_fd(m), 0) < 0)
                log_warn("%s: freeing a partial upload: %s", s->hdr.path,
                         strerror(errno));
            manifest_close(m);
            continue;
        }
        manifest_append_abort(m, "its final upload failed", err,
                              sizeof(err));
        manifest_close(m);
        if (manifest_remove(s->w->staging_fd, key, err, sizeof(err)) < 0)
            log_warn("%s: removing a partial upload: %s", s->hdr.path, err);
    }
}

/* Loop side: their table entries follow. After a publication they are
 * DONE (kept SHM_DONE_KEEP_S like a finished upload): a client whose 201
 * was lost asks them again, finds them complete and repeats the final,
 * which answers from its own DONE entry. Otherwise they are doomed. */
void
sess_concat_end_parts(struct sess *s, bool published)
{
    char id[MANIFEST_ID_MAX + 1], err[256];
    int64_t now = sess_now();
    for (size_t i = 0; part_id(s, i, id, sizeof(id)); i++) {
        uint8_t key[MANIFEST_KEY_LEN];
        struct shm_ref ref;
        struct shm_view v;
        part_key(id, key);
        if (shm_table_find(s->w->table, key, &ref, &v, err, sizeof(err))
            != SHM_TABLE_OK)
            continue;
        if (published
            && shm_table_complete_begin(s->w->table, ref, now, now + LEASE_S,
                                        &v, err, sizeof(err)) == SHM_TABLE_OK
            && shm_table_complete_end(s->w->table, ref, SHM_DONE, now, err,
                                      sizeof(err)) == SHM_TABLE_OK)
            continue;
        shm_table_abort(s->w->table, ref, err, sizeof(err));
    }
}
