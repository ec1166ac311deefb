/* manifest.c: crash-safe append, replay and recovery of the per-session
 * chunk manifest file (records are encoded in manifest_record.c; session
 * directories are made and removed in manifest_dir.c). The format and every
 * crash window are in docs/recovery.md; comments here say which window a
 * step closes. */
#define _GNU_SOURCE
#include "lib/store/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/store/manifest_internal.h"
#include "lib/store/manifest_record.h"
#include "lib/util/crc32c.h"
#include "lib/util/syncsite.h"

#define READ_BUF        (64 * 1024)
#define BATCH_MAX       64              /* CHUNK records per write */


int
manifest_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    errno = e;
    return -1;
}


/* Buffered positional reader over the manifest. */
struct reader {
    int            fd;
    unsigned char *buf;
    uint64_t       base;                /* file offset of buf[0] */
    size_t         len;
};


/* Points *p at bytes [off, off + n): 1, 0 if the file ends first, -1 error. */
static int
reader_get(struct reader *rd, uint64_t off, size_t n, const unsigned char **p)
{
    if (off < rd->base || off + n > rd->base + rd->len) {
        rd->base = off;
        rd->len = 0;
        while (rd->len < READ_BUF) {
            ssize_t k = pread(rd->fd, rd->buf + rd->len, READ_BUF - rd->len,
                              (off_t)(off + rd->len));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return -1;
            if (k == 0)
                break;
            rd->len += (size_t)k;
        }
        if (n > rd->len)
            return 0;
    }
    *p = rd->buf + (off - rd->base);
    return 1;
}


static enum frame_rc
frame_read(struct reader *rd, uint64_t off, const unsigned char **rec,
           size_t *reclen)
{
    const unsigned char *p;
    uint32_t             plen;
    enum frame_rc        f;
    int                  rc;

    rc = reader_get(rd, off, REC_HDR, &p);
    if (rc <= 0)
        return rc < 0 ? FRAME_IOERR : FRAME_TORN;
    if ((f = manifest_record_head(p, &plen)) != FRAME_OK)
        return f;
    rc = reader_get(rd, off, REC_HDR + plen + REC_TRAILER, &p);
    if (rc <= 0)
        return rc < 0 ? FRAME_IOERR : FRAME_TORN;
    if ((f = manifest_record_check(p, plen, off)) != FRAME_OK)
        return f;
    *rec = p;
    *reclen = REC_HDR + plen + REC_TRAILER;
    return FRAME_OK;
}


/* Walks records from `from`, calling fn (if any) with each decoded record.
 * Leaves *end after the last good record and *nrec counting them. */
static int
scan(struct manifest *m, uint64_t from, manifest_record_fn fn, void *arg,
     uint64_t *end, uint32_t *nrec, char *err, size_t errlen)
{
    struct reader           rd = { m->fd, NULL, 0, 0 };
    struct manifest_record *r = NULL;
    const unsigned char    *p = NULL;   /* set when frame_read says OK */
    size_t                  len = 0;
    int                     rc = 0;

    rd.buf = malloc(READ_BUF);
    r = calloc(1, sizeof(*r));
    if (rd.buf == NULL || r == NULL) {
        rc = manifest_fail(err, errlen, ENOMEM, "manifest %.8s: out of memory",
                           m->hex);
        goto done;
    }
    *end = from;
    for (;;) {
        enum frame_rc f = frame_read(&rd, *end, &p, &len);

        if (f == FRAME_TORN)
            break;
        if (f == FRAME_IOERR) {
            rc = manifest_fail(err, errlen, errno, "manifest %.8s: read: %s",
                               m->hex, strerror(errno));
            break;
        }
        if (f == FRAME_CORRUPT || *nrec >= MANIFEST_RECORDS_MAX
            || (fn != NULL
                && manifest_record_decode(p[5], p + REC_HDR,
                                          len - REC_HDR - REC_TRAILER, r) < 0))
        {
            rc = manifest_fail(err, errlen, EBADMSG, "manifest %.8s: corrupt "
                               "record at offset %llu", m->hex,
                               (unsigned long long)*end);
            break;
        }
        r->seq = *end;
        if (fn != NULL && (rc = fn(r, arg)) != 0)
            break;
        *end += len;
        (*nrec)++;
    }
done:
    free(r);
    free(rd.buf);
    return rc;
}


/* The append lock: an OFD lock on the whole manifest (F_WRLCK, F_RDLCK,
 * F_UNLCK), waited for. OFD rather than flock because on GlusterFS the two
 * kinds conflict with each other, and the cluster's owner locks
 * (lib/store/owner.c) are OFD locks: one kind on every shared file. Like
 * flock, it belongs to the open file description, so two handles of one
 * process exclude each other too. */
static int
lock_file(int fd, short type)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
    while (fcntl(fd, F_OFD_SETLKW, &fl) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}


/* Cuts the manifest back to `end`. */
static int
cut(struct manifest *m, uint64_t end, char *err, size_t errlen)
{
    if (ftruncate(m->fd, (off_t)end) < 0)
        return manifest_fail(err, errlen, errno,
                             "manifest %.8s: ftruncate: %s", m->hex,
                             strerror(errno));
    return 0;
}


/* Under the exclusive append lock: makes m->valid_end the true end of the log. A
 * writer killed inside pwrite leaves a torn record; it was never
 * acknowledged, and cutting it keeps every later record reachable. */
static int
settle_tail(struct manifest *m, char *err, size_t errlen)
{
    struct stat st;
    uint64_t    end;
    uint32_t    n;

    if (fstat(m->fd, &st) < 0)
        return manifest_fail(err, errlen, errno, "manifest %.8s: fstat: %s",
                             m->hex, strerror(errno));
    if ((uint64_t)st.st_size == m->valid_end)
        return 0;
    if ((uint64_t)st.st_size < m->valid_end) {
        m->valid_end = 0;
        m->records = 0;
    }
    n = m->records;
    if (scan(m, m->valid_end, NULL, NULL, &end, &n, err, errlen) < 0)
        return -1;
    if (end < (uint64_t)st.st_size && cut(m, end, err, errlen) < 0)
        return -1;
    m->valid_end = end;
    m->records = n;
    return 0;
}


int
manifest_pwrite_all(int fd, const unsigned char *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}


/* The fdatasync of records written at [start, valid_end) failed. Linux has
 * marked their pages clean without writing them; if the next records went
 * into a later page and were synced, the disk would hold a hole where
 * replay stops, and every record after it, acknowledged or not, would be
 * lost at the next power cut. So the records are cut off (if nobody
 * appended after them: then that appender's sync failed too), and the next
 * append writes their page again. Nothing here is reported: the append has
 * failed either way, and settle_tail cuts whatever stays behind. */
static void
take_back(struct manifest *m, uint64_t start)
{
    struct stat st;

    if (lock_file(m->fd, F_WRLCK) < 0)
        return;
    if (fstat(m->fd, &st) == 0 && (uint64_t)st.st_size == m->valid_end
        && ftruncate(m->fd, (off_t)start) == 0)
        m->valid_end = start;
    (void)lock_file(m->fd, F_UNLCK);
}

/* Appends n records with one write under the append lock, then fdatasyncs. The
 * seq of each record is its offset, so it is assigned under the lock. */
static int
append(struct manifest *m, const struct rec_src *s, size_t n,
       char *err, size_t errlen)
{
    unsigned char *buf;
    size_t         len = 0, cap;
    uint64_t       start = 0;
    int            rc = -1;

    if (m->failed)
        return manifest_fail(err, errlen, EIO, "manifest %.8s: an earlier "
                             "write or sync failed; session must be aborted",
                             m->hex);
    cap = REC_MAX + n * (REC_HDR + CHUNK_PAYLOAD + REC_TRAILER);
    buf = malloc(cap);
    if (buf == NULL)
        return manifest_fail(err, errlen, ENOMEM, "manifest %.8s: out of "
                             "memory", m->hex);
    if (lock_file(m->fd, F_WRLCK) < 0) {
        manifest_fail(err, errlen, errno, "manifest %.8s: lock: %s", m->hex,
                      strerror(errno));
        free(buf);
        return -1;
    }
    if (settle_tail(m, err, errlen) < 0)
        goto unlock;
    if (m->records + n > MANIFEST_RECORDS_MAX) {
        manifest_fail(err, errlen, E2BIG, "manifest %.8s: record limit %d "
                      "reached", m->hex, MANIFEST_RECORDS_MAX);
        goto unlock;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = manifest_record_encode(buf + len, cap - len, &s[i],
                                          m->valid_end + len);
        if (k == 0) {
            manifest_fail(err, errlen, EINVAL, "manifest %.8s: record field "
                          "too long", m->hex);
            goto unlock;
        }
        len += k;
    }
    if (manifest_pwrite_all(m->fd, buf, len, m->valid_end) < 0) {
        manifest_fail(err, errlen, errno, "manifest %.8s: write: %s", m->hex,
                      strerror(errno));
        m->failed = 1;
        /* Leave no torn record behind; if even that fails, the next
         * appender's settle_tail cuts it. */
        if (ftruncate(m->fd, (off_t)m->valid_end) < 0) {
        }
        goto unlock;
    }
    start = m->valid_end;
    m->valid_end += len;
    m->records += (uint32_t)n;
    rc = 0;
unlock:
    (void)lock_file(m->fd, F_UNLCK);
    free(buf);
    /* Synced outside the lock so concurrent appenders share the flush. */
    if (rc == 0)
        manifest_count_syncs(m, 1);
    if (rc == 0 && SYNC_AT("manifest_record", fdatasync(m->fd)) < 0) {
        m->failed = 1;
        rc = manifest_fail(err, errlen, errno, "manifest %.8s: fdatasync: %s",
                           m->hex, strerror(errno));
        take_back(m, start);
    }
    return rc;
}


int
manifest_append_chunks(struct manifest *m, const struct manifest_chunk *c,
                       size_t n, char *err, size_t errlen)
{
    struct rec_src s[BATCH_MAX];

    if (n == 0 || n > BATCH_MAX)
        return manifest_fail(err, errlen, EINVAL, "manifest: %zu chunks in "
                             "one batch (1..%d)", n, BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        if (c[i].length == 0 || c[i].offset + c[i].length < c[i].offset)
            return manifest_fail(err, errlen, EINVAL, "manifest %.8s: bad "
                                 "chunk range", m->hex);
        memset(&s[i], 0, sizeof(s[i]));
        s[i].type = MANIFEST_CHUNK;
        s[i].chunk = &c[i];
    }
    if (m->failed)
        return manifest_fail(err, errlen, EIO, "manifest %.8s: an earlier "
                             "write or sync failed", m->hex);
    /* The bytes must be durable before the record that vouches for them. */
    manifest_count_syncs(m, 1);
    if (SYNC_AT("manifest_chunk_data", fdatasync(m->datafd)) < 0) {
        m->failed = 1;
        return manifest_fail(err, errlen, errno, "manifest %.8s: fdatasync "
                             "data: %s", m->hex, strerror(errno));
    }
    return append(m, s, n, err, errlen);
}


int
manifest_append_size(struct manifest *m, uint64_t size, char *err,
                     size_t errlen)
{
    struct rec_src s = { .type = MANIFEST_SIZE, .size = size };

    if (size == MANIFEST_SIZE_UNKNOWN)
        return manifest_fail(err, errlen, EINVAL, "manifest %.8s: size is "
                             "unknown", m->hex);
    return append(m, &s, 1, err, errlen);
}


int
manifest_append_complete(struct manifest *m, const uint8_t sha256[32],
                         const char *final_path, char *err, size_t errlen)
{
    struct rec_src s = { .type = MANIFEST_COMPLETE, .sha256 = sha256,
                         .text = final_path };

    return append(m, &s, 1, err, errlen);
}


int
manifest_append_abort(struct manifest *m, const char *reason, char *err,
                      size_t errlen)
{
    struct rec_src s = { .type = MANIFEST_ABORT, .text = reason };

    return append(m, &s, 1, err, errlen);
}


int
manifest_replay(struct manifest *m, int flags, manifest_record_fn fn,
                void *arg, struct manifest_replay *res, char *err,
                size_t errlen)
{
    struct stat st;
    uint64_t    end = 0;
    uint32_t    n = 0;
    int         rc;

    if (lock_file(m->fd, flags & MANIFEST_TRUNCATE ? F_WRLCK : F_RDLCK) < 0)
        return manifest_fail(err, errlen, errno, "manifest %.8s: lock: %s",
                             m->hex, strerror(errno));
    rc = scan(m, 0, fn, arg, &end, &n, err, errlen);
    if (rc == 0 && fstat(m->fd, &st) < 0)
        rc = manifest_fail(err, errlen, errno, "manifest %.8s: fstat: %s",
                           m->hex, strerror(errno));
    if (rc == 0) {
        if (res != NULL) {
            res->records = n;
            res->end = end;
            res->torn = (uint64_t)st.st_size - end;
        }
        /* A cut must be durable before anything is appended past it, or a
         * crash could bring the torn bytes back in front of new records. */
        if ((flags & MANIFEST_TRUNCATE) && (uint64_t)st.st_size > end) {
            if (cut(m, end, err, errlen) < 0)
                rc = -1;
            else if (manifest_count_syncs(m, 1),
                     SYNC_AT("manifest_truncate", fdatasync(m->fd)) < 0)
                rc = manifest_fail(err, errlen, errno, "manifest %.8s: "
                                   "fdatasync: %s", m->hex, strerror(errno));
        }
        if (rc == 0 && (flags & MANIFEST_TRUNCATE)) {
            m->valid_end = end;
            m->records = n;
        }
    }
    (void)lock_file(m->fd, F_UNLCK);
    return rc;
}


/* manifest_load: folds records into a manifest_state. */
struct load_ctx {
    struct manifest_state *st;
    struct manifest       *m;
    int                    flags;
    uint64_t               data_size;
    unsigned char         *buf;         /* VERIFY reads */
    char                  *err;
    size_t                 errlen;
};


static int
chunk_bytes_ok(struct load_ctx *c, const struct manifest_chunk *k)
{
    uint64_t off = k->offset, left = k->length;
    uint32_t crc = 0;

    while (left > 0) {
        size_t  want = left < READ_BUF ? (size_t)left : READ_BUF;
        ssize_t got = pread(c->m->datafd, c->buf, want, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        crc = crc32c(crc, c->buf, (size_t)got);
        off += (uint64_t)got;
        left -= (uint64_t)got;
    }
    return crc == k->crc;
}


static int
load_chunk(struct load_ctx *c, const struct manifest_chunk *k)
{
    struct manifest_state *st = c->st;
    uint64_t               end = k->offset + k->length;

    /* Data was synced before its record, so a record past the data's end
     * or with a wrong CRC means a lying disk or a bug: drop the range. */
    if ((st->size != MANIFEST_SIZE_UNKNOWN && end > st->size)
        || end > c->data_size
        || ((c->flags & MANIFEST_VERIFY) && !chunk_bytes_ok(c, k)))
    {
        st->bad_chunks++;
        return 0;
    }
    if (ranges_add(&st->held, k->offset, end) < 0)
        return manifest_fail(c->err, c->errlen, E2BIG, "manifest %.8s: more "
                             "than %d disjoint ranges", c->m->hex, RANGES_MAX);
    return 0;
}


static int
load_record(const struct manifest_record *r, void *arg)
{
    struct load_ctx       *c = arg;
    struct manifest_state *st = c->st;
    const char            *why = NULL;

    if ((st->records == 0) != (r->type == MANIFEST_HEADER))
        why = "HEADER must come first and only once";
    else if (st->complete || st->aborted)
        why = "record after COMPLETE or ABORT";
    else if (r->type == MANIFEST_HEADER) {
        st->header = r->u.header;
        st->size = r->u.header.size;
    } else if (r->type == MANIFEST_CHUNK) {
        if (load_chunk(c, &r->u.chunk) < 0)
            return -1;
    } else if (r->type == MANIFEST_SIZE) {
        if (st->size != MANIFEST_SIZE_UNKNOWN
            || r->u.size == MANIFEST_SIZE_UNKNOWN
            || (st->held.n > 0 && st->held.r[st->held.n - 1].end > r->u.size))
            why = "SIZE contradicts the session";
        st->size = r->u.size;
    } else if (r->type == MANIFEST_COMPLETE) {
        st->complete = 1;
        memcpy(st->sha256, r->u.complete.sha256, 32);
        memcpy(st->final_path, r->u.complete.path, sizeof(st->final_path));
    } else {
        st->aborted = 1;
        memcpy(st->reason, r->u.reason, sizeof(st->reason));
    }
    if (why != NULL)
        return manifest_fail(c->err, c->errlen, EBADMSG, "manifest %.8s: "
                             "offset %llu: %s", c->m->hex,
                             (unsigned long long)r->seq, why);
    st->records++;
    return 0;
}


int
manifest_load(struct manifest *m, int flags, struct manifest_state *st,
              char *err, size_t errlen)
{
    struct load_ctx        c = { st, m, flags, 0, NULL, err, errlen };
    struct manifest_replay res;
    struct stat            sb;
    int                    rc;

    memset(st, 0, sizeof(*st));
    ranges_init(&st->held);
    st->size = MANIFEST_SIZE_UNKNOWN;
    if (fstat(m->datafd, &sb) < 0)
        return manifest_fail(err, errlen, errno, "manifest %.8s: fstat data: "
                             "%s", m->hex, strerror(errno));
    c.data_size = (uint64_t)sb.st_size;
    if ((flags & MANIFEST_VERIFY) && (c.buf = malloc(READ_BUF)) == NULL)
        return manifest_fail(err, errlen, ENOMEM, "manifest %.8s: out of "
                             "memory", m->hex);
    rc = manifest_replay(m, flags, load_record, &c, &res, err, errlen);
    free(c.buf);
    if (rc != 0)
        return -1;
    st->torn = res.torn;
    if (st->records == 0)
        return manifest_fail(err, errlen, ENODATA, "manifest %.8s: no durable "
                             "HEADER", m->hex);
    if (fstat(m->fd, &sb) < 0)
        return manifest_fail(err, errlen, errno, "manifest %.8s: fstat: %s",
                             m->hex, strerror(errno));
    st->mtime = (int64_t)sb.st_mtime;
    return 0;
}


struct find_ctx {
    uint64_t               offset, length;
    struct manifest_chunk *out;
};


static int
find_record(const struct manifest_record *r, void *arg)
{
    struct find_ctx *f = arg;

    if (r->type != MANIFEST_CHUNK || r->u.chunk.offset != f->offset
        || r->u.chunk.length != f->length)
        return 0;
    *f->out = r->u.chunk;
    return 1;
}


int
manifest_find_chunk(struct manifest *m, uint64_t offset, uint64_t length,
                    struct manifest_chunk *c, char *err, size_t errlen)
{
    struct find_ctx f = { offset, length, c };
    int             rc = manifest_replay(m, 0, find_record, &f, NULL, err,
                                         errlen);

    if (rc == 1)
        return 0;
    if (rc == 0)
        return manifest_fail(err, errlen, ENOENT, "manifest %.8s: no chunk at "
                             "%llu+%llu", m->hex, (unsigned long long)offset,
                             (unsigned long long)length);
    return -1;
}
