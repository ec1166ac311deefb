/* manifest.c: record codec, crash-safe append, replay and recovery of the
 * per-session chunk manifest. The format and every crash window are in
 * docs/recovery.md; comments here say which window a step closes. */
#define _GNU_SOURCE
#include "lib/store/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util/crc32c.h"

#define REC_MAGIC       0x314d4648u     /* "HFM1" read little-endian */
#define REC_VERSION     1
#define REC_HDR         20              /* magic..seq */
#define REC_TRAILER     4               /* crc32c */
#define REC_PAYLOAD_MAX 8192
#define REC_MAX         (REC_HDR + REC_PAYLOAD_MAX + REC_TRAILER)
#define CHUNK_PAYLOAD   24
#define READ_BUF        (64 * 1024)
#define BATCH_MAX       64              /* CHUNK records per write */

struct manifest {
    int      dfd, fd, datafd;
    uint64_t valid_end;                 /* records up to here were checked */
    uint32_t records;                   /* ... and there are this many */
    int      failed;                    /* a write or sync failed: no more */
    char     hex[MANIFEST_KEY_HEXLEN + 1];
};


static int
fail(char *err, size_t errlen, int e, const char *fmt, ...)
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


/* Little-endian codec. */

static void
put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}


static void
put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}


static void
put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}


static uint16_t
get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}


static uint32_t
get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
         | (uint32_t)p[3] << 24;
}


static uint64_t
get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}


/* Payload builder: a cursor that stops (bad) instead of overflowing. */
struct enc {
    unsigned char *p;
    size_t         len, cap;
    int            bad;
};


static unsigned char *
enc_room(struct enc *e, size_t n)
{
    unsigned char *at;

    if (e->bad || e->cap - e->len < n) {
        e->bad = 1;
        return NULL;
    }
    at = e->p + e->len;
    e->len += n;
    return at;
}


static void
enc_u8(struct enc *e, uint8_t v)
{
    unsigned char *p = enc_room(e, 1);
    if (p != NULL)
        p[0] = v;
}


static void
enc_u64(struct enc *e, uint64_t v)
{
    unsigned char *p = enc_room(e, 8);
    if (p != NULL)
        put64(p, v);
}


static void
enc_str(struct enc *e, const char *s, size_t max)
{
    size_t         n = strnlen(s, max + 1);
    unsigned char *p;

    if (n > max) {
        e->bad = 1;
        return;
    }
    p = enc_room(e, 2 + n);
    if (p != NULL) {
        put16(p, (uint16_t)n);
        memcpy(p + 2, s, n);
    }
}


struct dec {
    const unsigned char *p;
    size_t               len, off;
    int                  bad;
};


static const unsigned char *
dec_take(struct dec *d, size_t n)
{
    const unsigned char *at;

    if (d->bad || d->len - d->off < n) {
        d->bad = 1;
        return NULL;
    }
    at = d->p + d->off;
    d->off += n;
    return at;
}


static uint8_t
dec_u8(struct dec *d)
{
    const unsigned char *p = dec_take(d, 1);
    return p != NULL ? p[0] : 0;
}


static uint64_t
dec_u64(struct dec *d)
{
    const unsigned char *p = dec_take(d, 8);
    return p != NULL ? get64(p) : 0;
}


/* Strings are stored without NUL; an embedded NUL is malformed. */
static void
dec_str(struct dec *d, char *out, size_t max)
{
    const unsigned char *p = dec_take(d, 2);
    size_t               n = p != NULL ? get16(p) : 0;

    out[0] = '\0';
    if (n > max) {
        d->bad = 1;
        return;
    }
    p = dec_take(d, n);
    if (p == NULL || memchr(p, '\0', n) != NULL) {
        d->bad = 1;
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}


static void
enc_header(struct enc *e, const struct manifest_header *h)
{
    enc_u8(e, h->proto);
    enc_u8(e, h->mac_variant);
    enc_u8(e, 0);
    enc_u8(e, 0);
    enc_u64(e, h->size);
    enc_u64(e, h->chunk_size);
    enc_u64(e, h->mac_size);
    enc_u64(e, (uint64_t)h->mac_expiry);
    enc_u64(e, (uint64_t)h->created);
    enc_u64(e, (uint64_t)h->expires);
    enc_str(e, h->id, MANIFEST_ID_MAX);
    enc_str(e, h->path, MANIFEST_PATH_MAX);
    enc_str(e, h->ctype, MANIFEST_CTYPE_MAX);
    enc_str(e, h->meta, MANIFEST_META_MAX);
}


static void
dec_header(struct dec *d, struct manifest_header *h)
{
    h->proto = dec_u8(d);
    h->mac_variant = dec_u8(d);
    if (dec_u8(d) != 0 || dec_u8(d) != 0)
        d->bad = 1;
    h->size = dec_u64(d);
    h->chunk_size = dec_u64(d);
    h->mac_size = dec_u64(d);
    h->mac_expiry = (int64_t)dec_u64(d);
    h->created = (int64_t)dec_u64(d);
    h->expires = (int64_t)dec_u64(d);
    dec_str(d, h->id, MANIFEST_ID_MAX);
    dec_str(d, h->path, MANIFEST_PATH_MAX);
    dec_str(d, h->ctype, MANIFEST_CTYPE_MAX);
    dec_str(d, h->meta, MANIFEST_META_MAX);
    if (h->proto < MANIFEST_PROTO_CHUNKED || h->proto > MANIFEST_PROTO_PUT)
        d->bad = 1;
}


static void
enc_chunk(struct enc *e, const struct manifest_chunk *c)
{
    unsigned char *p = enc_room(e, CHUNK_PAYLOAD);

    if (p == NULL)
        return;
    put64(p, c->offset);
    put64(p + 8, c->length);
    put32(p + 16, c->number);
    put32(p + 20, c->crc);
}


static void
dec_chunk(struct dec *d, struct manifest_chunk *c)
{
    const unsigned char *p = dec_take(d, CHUNK_PAYLOAD);

    if (p == NULL)
        return;
    c->offset = get64(p);
    c->length = get64(p + 8);
    c->number = get32(p + 16);
    c->crc = get32(p + 20);
    if (c->length == 0 || c->offset + c->length < c->offset)
        d->bad = 1;
}


/* Decodes one payload into r; 0, or -1 if malformed. */
static int
dec_payload(int type, const unsigned char *p, size_t len,
            struct manifest_record *r)
{
    struct dec d = { p, len, 0, 0 };

    r->type = (enum manifest_type)type;
    switch (type) {
    case MANIFEST_HEADER:
        memset(&r->u.header, 0, sizeof(r->u.header));
        dec_header(&d, &r->u.header);
        break;
    case MANIFEST_CHUNK:
        dec_chunk(&d, &r->u.chunk);
        break;
    case MANIFEST_SIZE:
        r->u.size = dec_u64(&d);
        break;
    case MANIFEST_COMPLETE:
        p = dec_take(&d, 32);
        if (p != NULL)
            memcpy(r->u.complete.sha256, p, 32);
        dec_str(&d, r->u.complete.path, MANIFEST_PATH_MAX);
        break;
    case MANIFEST_ABORT:
        dec_str(&d, r->u.reason, MANIFEST_REASON_MAX);
        break;
    default:
        return -1;
    }
    return d.bad || d.off != d.len ? -1 : 0;
}


/* Frames payload[plen] (already at buf + REC_HDR) as one record at file
 * offset seq; returns the record's total length. */
static size_t
frame(unsigned char *buf, int type, uint64_t seq, size_t plen)
{
    put32(buf, REC_MAGIC);
    buf[4] = REC_VERSION;
    buf[5] = (unsigned char)type;
    put16(buf + 6, 0);
    put32(buf + 8, (uint32_t)plen);
    put64(buf + 12, seq);
    put32(buf + REC_HDR + plen, crc32c(0, buf, REC_HDR + plen));
    return REC_HDR + plen + REC_TRAILER;
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


/* Result of framing one record at an offset. */
enum frame_rc { FRAME_OK, FRAME_TORN, FRAME_CORRUPT, FRAME_IOERR };


/* The REC_HDR bytes at p: FRAME_OK and the payload length *plen, or
 * FRAME_TORN if they cannot start a record. */
static enum frame_rc
frame_head(const unsigned char *p, uint32_t *plen)
{
    *plen = get32(p + 8);
    /* An unchecked length may be garbage from a torn write: only the CRC
     * can tell, so a bad magic or length is a torn tail, not corruption. */
    if (get32(p) != REC_MAGIC || *plen > REC_PAYLOAD_MAX)
        return FRAME_TORN;
    return FRAME_OK;
}


/* The whole record at p (plen from frame_head), read at file offset off:
 * FRAME_OK, FRAME_TORN (bad CRC) or FRAME_CORRUPT. */
static enum frame_rc
frame_check(const unsigned char *p, uint32_t plen, uint64_t off)
{
    if (crc32c(0, p, REC_HDR + plen) != get32(p + REC_HDR + plen))
        return FRAME_TORN;
    /* From here the bytes are what a writer meant: oddities are real. */
    if (p[4] != REC_VERSION || get16(p + 6) != 0 || get64(p + 12) != off)
        return FRAME_CORRUPT;
    return FRAME_OK;
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
    if ((f = frame_head(p, &plen)) != FRAME_OK)
        return f;
    rc = reader_get(rd, off, REC_HDR + plen + REC_TRAILER, &p);
    if (rc <= 0)
        return rc < 0 ? FRAME_IOERR : FRAME_TORN;
    if ((f = frame_check(p, plen, off)) != FRAME_OK)
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
    const unsigned char    *p;
    size_t                  len;
    int                     rc = 0;

    rd.buf = malloc(READ_BUF);
    r = calloc(1, sizeof(*r));
    if (rd.buf == NULL || r == NULL) {
        rc = fail(err, errlen, ENOMEM, "manifest %.8s: out of memory", m->hex);
        goto done;
    }
    *end = from;
    for (;;) {
        enum frame_rc f = frame_read(&rd, *end, &p, &len);

        if (f == FRAME_TORN)
            break;
        if (f == FRAME_IOERR) {
            rc = fail(err, errlen, errno, "manifest %.8s: read: %s", m->hex,
                      strerror(errno));
            break;
        }
        if (f == FRAME_CORRUPT || *nrec >= MANIFEST_RECORDS_MAX
            || (fn != NULL && dec_payload(p[5], p + REC_HDR,
                                          len - REC_HDR - REC_TRAILER, r) < 0))
        {
            rc = fail(err, errlen, EBADMSG, "manifest %.8s: corrupt record "
                      "at offset %llu", m->hex, (unsigned long long)*end);
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


static int
lock_file(int fd, int how)
{
    while (flock(fd, how) < 0) {
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
        return fail(err, errlen, errno, "manifest %.8s: ftruncate: %s", m->hex,
                    strerror(errno));
    return 0;
}


/* Under the exclusive flock: makes m->valid_end the true end of the log. A
 * writer killed inside pwrite leaves a torn record; it was never
 * acknowledged, and cutting it keeps every later record reachable. */
static int
settle_tail(struct manifest *m, char *err, size_t errlen)
{
    struct stat st;
    uint64_t    end;
    uint32_t    n;

    if (fstat(m->fd, &st) < 0)
        return fail(err, errlen, errno, "manifest %.8s: fstat: %s", m->hex,
                    strerror(errno));
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


static int
pwrite_all(int fd, const unsigned char *p, size_t n, uint64_t off)
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


/* One record to append: type and an encoder callback for its payload. */
struct rec_src {
    int                          type;
    const struct manifest_chunk *chunk;     /* CHUNK */
    uint64_t                     size;      /* SIZE */
    const uint8_t               *sha256;    /* COMPLETE */
    const char                  *text;      /* COMPLETE path, ABORT reason */
    const struct manifest_header *header;   /* HEADER */
};


static size_t
encode_one(unsigned char *buf, size_t cap, const struct rec_src *s,
           uint64_t seq)
{
    struct enc e = { buf + REC_HDR, 0, 0, 0 };

    if (cap < REC_HDR + REC_TRAILER)
        return 0;
    e.cap = cap - REC_HDR - REC_TRAILER;
    switch (s->type) {
    case MANIFEST_HEADER:
        enc_header(&e, s->header);
        break;
    case MANIFEST_CHUNK:
        enc_chunk(&e, s->chunk);
        break;
    case MANIFEST_SIZE:
        enc_u64(&e, s->size);
        break;
    case MANIFEST_COMPLETE:
        if (enc_room(&e, 32) != NULL)
            memcpy(buf + REC_HDR, s->sha256, 32);
        enc_str(&e, s->text, MANIFEST_PATH_MAX);
        break;
    case MANIFEST_ABORT:
        enc_str(&e, s->text, MANIFEST_REASON_MAX);
        break;
    }
    return e.bad ? 0 : frame(buf, s->type, seq, e.len);
}


/* Appends n records with one write under the flock, then fdatasyncs. The
 * seq of each record is its offset, so it is assigned under the lock. */
static int
append(struct manifest *m, const struct rec_src *s, size_t n,
       char *err, size_t errlen)
{
    unsigned char *buf;
    size_t         len = 0, cap;
    int            rc = -1;

    if (m->failed)
        return fail(err, errlen, EIO, "manifest %.8s: an earlier write or "
                    "sync failed; session must be aborted", m->hex);
    cap = REC_MAX + n * (REC_HDR + CHUNK_PAYLOAD + REC_TRAILER);
    buf = malloc(cap);
    if (buf == NULL)
        return fail(err, errlen, ENOMEM, "manifest %.8s: out of memory",
                    m->hex);
    if (lock_file(m->fd, LOCK_EX) < 0) {
        fail(err, errlen, errno, "manifest %.8s: flock: %s", m->hex,
             strerror(errno));
        free(buf);
        return -1;
    }
    if (settle_tail(m, err, errlen) < 0)
        goto unlock;
    if (m->records + n > MANIFEST_RECORDS_MAX) {
        fail(err, errlen, E2BIG, "manifest %.8s: record limit %d reached",
             m->hex, MANIFEST_RECORDS_MAX);
        goto unlock;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = encode_one(buf + len, cap - len, &s[i],
                              m->valid_end + len);
        if (k == 0) {
            fail(err, errlen, EINVAL, "manifest %.8s: record field too long",
                 m->hex);
            goto unlock;
        }
        len += k;
    }
    if (pwrite_all(m->fd, buf, len, m->valid_end) < 0) {
        fail(err, errlen, errno, "manifest %.8s: write: %s", m->hex,
             strerror(errno));
        m->failed = 1;
        /* Leave no torn record behind; if even that fails, the next
         * appender's settle_tail cuts it. */
        if (ftruncate(m->fd, (off_t)m->valid_end) < 0) {
        }
        goto unlock;
    }
    m->valid_end += len;
    m->records += (uint32_t)n;
    rc = 0;
unlock:
    (void)flock(m->fd, LOCK_UN);
    free(buf);
    /* Synced outside the flock so concurrent appenders share the flush. */
    if (rc == 0 && fdatasync(m->fd) < 0) {
        m->failed = 1;
        rc = fail(err, errlen, errno, "manifest %.8s: fdatasync: %s", m->hex,
                  strerror(errno));
    }
    return rc;
}


int
manifest_append_chunks(struct manifest *m, const struct manifest_chunk *c,
                       size_t n, char *err, size_t errlen)
{
    struct rec_src s[BATCH_MAX];

    if (n == 0 || n > BATCH_MAX)
        return fail(err, errlen, EINVAL, "manifest: %zu chunks in one batch "
                    "(1..%d)", n, BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        if (c[i].length == 0 || c[i].offset + c[i].length < c[i].offset)
            return fail(err, errlen, EINVAL, "manifest %.8s: bad chunk range",
                        m->hex);
        memset(&s[i], 0, sizeof(s[i]));
        s[i].type = MANIFEST_CHUNK;
        s[i].chunk = &c[i];
    }
    if (m->failed)
        return fail(err, errlen, EIO, "manifest %.8s: an earlier write or "
                    "sync failed", m->hex);
    /* The bytes must be durable before the record that vouches for them. */
    if (fdatasync(m->datafd) < 0) {
        m->failed = 1;
        return fail(err, errlen, errno, "manifest %.8s: fdatasync data: %s",
                    m->hex, strerror(errno));
    }
    return append(m, s, n, err, errlen);
}


int
manifest_append_size(struct manifest *m, uint64_t size, char *err,
                     size_t errlen)
{
    struct rec_src s = { .type = MANIFEST_SIZE, .size = size };

    if (size == MANIFEST_SIZE_UNKNOWN)
        return fail(err, errlen, EINVAL, "manifest %.8s: size is unknown",
                    m->hex);
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

    if (lock_file(m->fd, flags & MANIFEST_TRUNCATE ? LOCK_EX : LOCK_SH) < 0)
        return fail(err, errlen, errno, "manifest %.8s: flock: %s", m->hex,
                    strerror(errno));
    rc = scan(m, 0, fn, arg, &end, &n, err, errlen);
    if (rc == 0 && fstat(m->fd, &st) < 0)
        rc = fail(err, errlen, errno, "manifest %.8s: fstat: %s", m->hex,
                  strerror(errno));
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
            else if (fdatasync(m->fd) < 0)
                rc = fail(err, errlen, errno, "manifest %.8s: fdatasync: %s",
                          m->hex, strerror(errno));
        }
        if (rc == 0 && (flags & MANIFEST_TRUNCATE)) {
            m->valid_end = end;
            m->records = n;
        }
    }
    (void)flock(m->fd, LOCK_UN);
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
        return fail(c->err, c->errlen, E2BIG, "manifest %.8s: more than %d "
                    "disjoint ranges", c->m->hex, RANGES_MAX);
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
        return fail(c->err, c->errlen, EBADMSG, "manifest %.8s: offset "
                    "%llu: %s", c->m->hex, (unsigned long long)r->seq, why);
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
        return fail(err, errlen, errno, "manifest %.8s: fstat data: %s",
                    m->hex, strerror(errno));
    c.data_size = (uint64_t)sb.st_size;
    if ((flags & MANIFEST_VERIFY) && (c.buf = malloc(READ_BUF)) == NULL)
        return fail(err, errlen, ENOMEM, "manifest %.8s: out of memory",
                    m->hex);
    rc = manifest_replay(m, flags, load_record, &c, &res, err, errlen);
    free(c.buf);
    if (rc != 0)
        return -1;
    st->torn = res.torn;
    if (st->records == 0)
        return fail(err, errlen, ENODATA, "manifest %.8s: no durable HEADER",
                    m->hex);
    if (fstat(m->fd, &sb) < 0)
        return fail(err, errlen, errno, "manifest %.8s: fstat: %s", m->hex,
                    strerror(errno));
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
        return fail(err, errlen, ENOENT, "manifest %.8s: no chunk at %llu+%llu",
                    m->hex, (unsigned long long)offset,
                    (unsigned long long)length);
    return -1;
}


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

    put64(len, idlen);
    /* Length prefixes: ("ab", "c") and ("a", "bc") must not collide. */
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(ctx, dom, sizeof(dom)) != 1
        || EVP_DigestUpdate(ctx, len, 8) != 1
        || EVP_DigestUpdate(ctx, id, idlen) != 1
        || (put64(len, pathlen), EVP_DigestUpdate(ctx, len, 8)) != 1
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


int
manifest_open(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
              struct manifest **m_r, char *err, size_t errlen)
{
    char             fan[3], hex[MANIFEST_KEY_HEXLEN + 1];
    struct manifest *m;
    int              fanfd;

    key_names(key, fan, hex);
    if ((m = handle_new(hex)) == NULL)
        return fail(err, errlen, ENOMEM, "manifest: out of memory");
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
        fail(err, errlen, errno, "manifest %.8s: open: %s", hex,
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
        return fail(err, errlen, errno, "staging/%s: mkdir: %s", fan,
                    strerror(errno));
    }
    if ((fd = open_dir(staging_fd, fan)) < 0)
        return fail(err, errlen, errno, "staging/%s: open: %s", fan,
                    strerror(errno));
    return fd;
}


/* Files of a fresh session; the caller syncs the directories. */
static int
create_files(struct manifest *m, const struct manifest_header *h,
             char *err, size_t errlen)
{
    struct rec_src s = { .type = MANIFEST_HEADER, .header = h };
    unsigned char  buf[REC_MAX];
    size_t         len;
    int            flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;

    if ((len = encode_one(buf, sizeof(buf), &s, 0)) == 0)
        return fail(err, errlen, EINVAL, "manifest %.8s: header field too "
                    "long", m->hex);
    m->datafd = openat(m->dfd, "data", flags, 0600);
    if (m->datafd < 0)
        return fail(err, errlen, errno, "manifest %.8s: create data: %s",
                    m->hex, strerror(errno));
    /* Reserve the space now so a full disk is a 507 at creation rather
     * than a failure halfway through; fine to lack on some filesystems. */
    if (h->size != MANIFEST_SIZE_UNKNOWN && h->size > 0
        && fallocate(m->datafd, 0, 0, (off_t)h->size) < 0
        && errno != EOPNOTSUPP)
        return fail(err, errlen, errno, "manifest %.8s: fallocate %llu: %s",
                    m->hex, (unsigned long long)h->size, strerror(errno));
    m->fd = openat(m->dfd, "manifest", flags, 0600);
    if (m->fd < 0)
        return fail(err, errlen, errno, "manifest %.8s: create: %s", m->hex,
                    strerror(errno));
    if (pwrite_all(m->fd, buf, len, 0) < 0 || fdatasync(m->fd) < 0)
        return fail(err, errlen, errno, "manifest %.8s: write header: %s",
                    m->hex, strerror(errno));
    m->valid_end = len;
    m->records = 1;
    return 0;
}


int
manifest_create(int staging_fd, const uint8_t key[MANIFEST_KEY_LEN],
                const struct manifest_header *h, struct manifest **m_r,
                char *err, size_t errlen)
{
    char             fan[3], hex[MANIFEST_KEY_HEXLEN + 1];
    struct manifest *m;
    int              fanfd, saved;

    key_names(key, fan, hex);
    if (h->proto < MANIFEST_PROTO_CHUNKED || h->proto > MANIFEST_PROTO_PUT)
        return fail(err, errlen, EINVAL, "manifest %.8s: bad protocol %d",
                    hex, h->proto);
    if ((m = handle_new(hex)) == NULL)
        return fail(err, errlen, ENOMEM, "manifest: out of memory");
    if ((fanfd = open_fan(staging_fd, fan, err, errlen)) < 0) {
        manifest_close(m);
        return -1;
    }
    if (mkdirat(fanfd, hex, 0700) < 0) {
        fail(err, errlen, errno, "manifest %.8s: mkdir: %s", hex,
             strerror(errno));
        goto fail_fan;
    }
    if ((m->dfd = open_dir(fanfd, hex)) < 0) {
        fail(err, errlen, errno, "manifest %.8s: open dir: %s", hex,
             strerror(errno));
        goto fail_dir;
    }
    if (create_files(m, h, err, errlen) < 0)
        goto fail_dir;
    /* Directory entries for data and manifest, the session directory and
     * the fan-out directory (another creator may have made it and not yet
     * synced staging): without these a synced HEADER can vanish. */
    if (fsync(m->dfd) < 0 || fsync(fanfd) < 0 || fsync(staging_fd) < 0) {
        fail(err, errlen, errno, "manifest %.8s: fsync dir: %s", hex,
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
             : fail(err, errlen, errno, "staging/%s: open: %s", fan,
                    strerror(errno));
    if ((dfd = open_dir(fanfd, hex)) >= 0) {
        if (empty_dir(dfd) < 0)
            rc = fail(err, errlen, errno, "manifest %.8s: unlink: %s", hex,
                      strerror(errno));
        close(dfd);
        if (rc == 0 && unlinkat(fanfd, hex, AT_REMOVEDIR) < 0)
            rc = fail(err, errlen, errno, "manifest %.8s: rmdir: %s", hex,
                      strerror(errno));
    } else if (errno != ENOENT) {
        rc = fail(err, errlen, errno, "manifest %.8s: open dir: %s", hex,
                  strerror(errno));
    }
    /* Make the removal durable, or a crash resurrects the session. */
    if (rc == 0 && fsync(fanfd) < 0)
        rc = fail(err, errlen, errno, "staging/%s: fsync: %s", fan,
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
        return fail(err, errlen, errno, "staging/%s: open: %s", fan,
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
        return fail(err, errlen, errno, "staging: open: %s", strerror(errno));
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
