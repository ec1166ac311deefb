/* fuzz_manifest_record: lib/store/manifest_record.c, the manifest's record
 * codec alone (framing, CRC-32C, payload decode and encode), in memory,
 * without the file side that fuzz_manifest drives.
 *
 * fuzz-sources: lib/store/manifest_record.c lib/util/crc32c.c
 * fuzz-args:    -max_len=65536
 *
 * Input: the same as fuzz_manifest's (its seeds are copied here): one mode
 * byte, then a manifest file's bytes; modes 1-3 recompute CRCs, seqs and
 * magic/version/flags of each framed record so mutations reach the payload
 * decoder. Records are walked from offset 0 the way the file side's scan
 * does. Properties, for every record:
 *   - the head check says OK or TORN, and OK only for a length within
 *     REC_PAYLOAD_MAX; the whole-record check says OK, TORN or CORRUPT;
 *   - a decoded record is well formed (type, string bounds, chunk range);
 *   - encoding it again at its offset gives exactly its bytes, and into
 *     one byte less room gives 0, never an overflow;
 *   - no strict prefix of a good payload decodes (tried: empty, half,
 *     all but the last byte). */
#include <stdbool.h>
#include <string.h>

#include "lib/store/manifest_record.h"
#include "lib/util/crc32c.h"
#include "tests/fuzz/fuzz.h"

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
           | (uint32_t)p[3] << 24;
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* As fuzz_manifest.c's fixup. */
static void
fixup(uint8_t *b, size_t n, int mode)
{
    size_t off = 0;

    while (mode > 0 && n - off >= REC_HDR + REC_TRAILER) {
        uint32_t plen = get32(b + off + 8);
        if (plen > REC_PAYLOAD_MAX
            || n - off - REC_HDR - REC_TRAILER < plen)
            break;
        if (mode >= 2)
            manifest_record_put64(b + off + 12, off);
        if (mode >= 3) {
            put32(b + off, REC_MAGIC);
            b[off + 4] = REC_VERSION;
            b[off + 6] = b[off + 7] = 0;
        }
        put32(b + off + REC_HDR + plen, crc32c(0, b + off, REC_HDR + plen));
        off += REC_HDR + plen + REC_TRAILER;
    }
}

static void
check_record(const struct manifest_record *r)
{
    switch (r->type) {
    case MANIFEST_HEADER: {
        const struct manifest_header *h = &r->u.header;
        FUZZ_CHECK(h->proto >= MANIFEST_PROTO_CHUNKED
                   && h->proto <= MANIFEST_PROTO_LAST);
        FUZZ_CHECK(strnlen(h->id, sizeof(h->id)) < sizeof(h->id));
        FUZZ_CHECK(strnlen(h->path, sizeof(h->path)) < sizeof(h->path));
        FUZZ_CHECK(strnlen(h->ctype, sizeof(h->ctype)) < sizeof(h->ctype));
        FUZZ_CHECK(strnlen(h->meta, sizeof(h->meta)) < sizeof(h->meta));
        break;
    }
    case MANIFEST_CHUNK:
        FUZZ_CHECK(r->u.chunk.length > 0);
        FUZZ_CHECK(r->u.chunk.offset + r->u.chunk.length > r->u.chunk.offset);
        break;
    case MANIFEST_SIZE:
        break;
    case MANIFEST_COMPLETE:
        FUZZ_CHECK(strnlen(r->u.complete.path, sizeof(r->u.complete.path))
                   < sizeof(r->u.complete.path));
        break;
    case MANIFEST_ABORT:
        FUZZ_CHECK(strnlen(r->u.reason, sizeof(r->u.reason))
                   < sizeof(r->u.reason));
        break;
    default:
        FUZZ_CHECK(!"decoded an unknown type");
    }
}

/* Encodes r again at seq and compares with the record's bytes rec[len]. */
static void
round_trip(const struct manifest_record *r, const uint8_t *rec, size_t len,
           uint64_t seq)
{
    struct rec_src s = { .type = r->type };
    unsigned char *buf;

    switch (r->type) {
    case MANIFEST_HEADER:   s.header = &r->u.header; break;
    case MANIFEST_CHUNK:    s.chunk = &r->u.chunk; break;
    case MANIFEST_SIZE:     s.size = r->u.size; break;
    case MANIFEST_COMPLETE: s.sha256 = r->u.complete.sha256;
                            s.text = r->u.complete.path; break;
    case MANIFEST_ABORT:    s.text = r->u.reason; break;
    }
    /* Exact sizes, so ASan sees any write past the room given. */
    buf = (unsigned char *)fuzz_dup(rec, len, 0);
    FUZZ_CHECK(manifest_record_encode(buf, len, &s, seq) == len);
    FUZZ_CHECK(memcmp(buf, rec, len) == 0);
    free(buf);
    buf = (unsigned char *)fuzz_dup(rec, len - 1, 0);
    FUZZ_CHECK(manifest_record_encode(buf, len - 1, &s, seq) == 0);
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manifest_record *r;
    uint8_t                *b;
    size_t                  n, off = 0;

    if (size == 0)
        return 0;
    n = size - 1;
    b = (uint8_t *)fuzz_dup(data + 1, n, 0);
    fixup(b, n, data[0] & 3);
    if ((r = malloc(sizeof(*r))) == NULL)
        abort();
    while (n - off >= REC_HDR) {
        const uint8_t *p = b + off;
        uint32_t       plen;
        enum frame_rc  f = manifest_record_head(p, &plen);
        size_t         len;

        FUZZ_CHECK(f == FRAME_OK || f == FRAME_TORN);
        if (f != FRAME_OK)
            break;
        FUZZ_CHECK(plen <= REC_PAYLOAD_MAX);
        len = REC_HDR + plen + REC_TRAILER;
        if (n - off < len)
            break;
        f = manifest_record_check(p, plen, off);
        FUZZ_CHECK(f == FRAME_OK || f == FRAME_TORN || f == FRAME_CORRUPT);
        if (f != FRAME_OK)
            break;
        memset(r, 0xa5, sizeof(*r));
        if (manifest_record_decode(p[5], p + REC_HDR, plen, r) < 0)
            break;
        FUZZ_CHECK((int)r->type == p[5]);
        check_record(r);
        round_trip(r, p, len, off);
        if (plen > 0) {                 /* the empty, half and last cut */
            uint32_t cut[3] = { 0, plen / 2, plen - 1 };
            for (int i = 0; i < 3; i++) {
                uint8_t *pre = (uint8_t *)fuzz_dup(p + REC_HDR, cut[i], 0);
                FUZZ_CHECK(manifest_record_decode(p[5], pre, cut[i], r) < 0);
                free(pre);
            }
        }
        off += len;
    }
    free(r);
    free(b);
    return 0;
}
