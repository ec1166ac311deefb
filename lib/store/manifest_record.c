/* manifest_record.c: the record codec of the session manifest: framing,
 * CRC-32C, payload encode/decode. Pure functions over bytes in memory; the
 * file side is manifest.c. Layout: docs/recovery.md. */
#include "lib/store/manifest_record.h"

#include <string.h>

#include "lib/util/crc32c.h"


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


void
manifest_record_put64(unsigned char *p, uint64_t v)
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
        manifest_record_put64(p, v);
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
    enc_u8(e, h->concat);
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
    /* Only a final has parts: every older HEADER reads as before. */
    if (h->concat == MANIFEST_CONCAT_FINAL)
        enc_str(e, h->parts, MANIFEST_PARTS_MAX);
}


static void
dec_header(struct dec *d, struct manifest_header *h)
{
    h->proto = dec_u8(d);
    h->mac_variant = dec_u8(d);
    h->concat = dec_u8(d);
    if (h->concat > MANIFEST_CONCAT_FINAL || dec_u8(d) != 0)
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
    if (h->concat == MANIFEST_CONCAT_FINAL)
        dec_str(d, h->parts, MANIFEST_PARTS_MAX);
    if (h->proto < MANIFEST_PROTO_CHUNKED || h->proto > MANIFEST_PROTO_LAST)
        d->bad = 1;
}


static void
enc_chunk(struct enc *e, const struct manifest_chunk *c)
{
    unsigned char *p = enc_room(e, CHUNK_PAYLOAD);

    if (p == NULL)
        return;
    manifest_record_put64(p, c->offset);
    manifest_record_put64(p + 8, c->length);
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
int
manifest_record_decode(int type, const unsigned char *p, size_t len,
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
    manifest_record_put64(buf + 12, seq);
    put32(buf + REC_HDR + plen, crc32c(0, buf, REC_HDR + plen));
    return REC_HDR + plen + REC_TRAILER;
}


/* The REC_HDR bytes at p: FRAME_OK and the payload length *plen, or
 * FRAME_TORN if they cannot start a record. */
enum frame_rc
manifest_record_head(const unsigned char *p, uint32_t *plen)
{
    *plen = get32(p + 8);
    /* An unchecked length may be garbage from a torn write: only the CRC
     * can tell, so a bad magic or length is a torn tail, not corruption. */
    if (get32(p) != REC_MAGIC || *plen > REC_PAYLOAD_MAX)
        return FRAME_TORN;
    return FRAME_OK;
}


/* The whole record at p (plen from manifest_record_head), read at file
 * offset off: FRAME_OK, FRAME_TORN (bad CRC) or FRAME_CORRUPT. */
enum frame_rc
manifest_record_check(const unsigned char *p, uint32_t plen, uint64_t off)
{
    if (crc32c(0, p, REC_HDR + plen) != get32(p + REC_HDR + plen))
        return FRAME_TORN;
    /* From here the bytes are what a writer meant: oddities are real. */
    if (p[4] != REC_VERSION || get16(p + 6) != 0 || get64(p + 12) != off)
        return FRAME_CORRUPT;
    return FRAME_OK;
}


size_t
manifest_record_encode(unsigned char *buf, size_t cap, const struct rec_src *s,
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
