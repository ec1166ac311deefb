/* chunk.c: the range of a numbered fixed-size chunk. Every product and sum
 * is checked before it is formed: the inputs come from request headers. */
#include "lib/http/chunk.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static int __attribute__((format(printf, 3, 4)))
refuse(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The size from the last chunk, when nothing else gives it. */
static int
derive_total(const struct chunk_numbered *c, uint64_t *total_r, char *why,
             size_t whylen)
{
    if (c->count <= 0 || c->number != (uint64_t)c->count - 1)
        return refuse(why, whylen, "the file size is unknown: send "
                      "X-Total-Size (or Upload-Length, or Content-Range) "
                      "with chunk %" PRIu64, c->number);
    if (c->length == 0 || c->length > c->chunk_size)
        return refuse(why, whylen, "the last chunk (%" PRIu64 ") must be 1 "
                      "to %" PRIu64 " bytes, not %" PRIu64, c->number,
                      c->chunk_size, c->length);
    if (c->number > (uint64_t)(INT64_MAX - c->length) / c->chunk_size)
        return refuse(why, whylen, "X-Chunk-Number %" PRIu64 " with chunks "
                      "of %" PRIu64 " bytes is past any file size",
                      c->number, c->chunk_size);
    *total_r = c->number * c->chunk_size + c->length;
    return 0;
}

int
chunk_range(const struct chunk_numbered *c, uint64_t *a_r, uint64_t *b_r,
            uint64_t *total_r, char *why, size_t whylen)
{
    uint64_t total = 0, n, a, b, cs = c->chunk_size;

    if (cs == 0)
        return refuse(why, whylen, "no chunk size configured");
    if (c->total >= 0)
        total = (uint64_t)c->total;
    else if (derive_total(c, &total, why, whylen) < 0)
        return -1;
    n = total / cs + (total % cs != 0);
    if (c->count >= 0 && (uint64_t)c->count != n)
        return refuse(why, whylen, "X-Total-Chunks %" PRId64 " does not "
                      "match the file: %" PRIu64 " bytes in chunks of %"
                      PRIu64 " bytes are %" PRIu64 " chunks", c->count,
                      total, cs, n);
    if (c->number >= n)
        return refuse(why, whylen, "X-Chunk-Number %" PRIu64 " is past the "
                      "last chunk (%" PRIu64 " chunks of %" PRIu64 " bytes "
                      "for %" PRIu64 " bytes; the first is 0)", c->number, n,
                      cs, total);
    a = c->number * cs;             /* < total: no overflow */
    b = total - a < cs ? total : a + cs;
    if (c->length != b - a)
        return refuse(why, whylen, "chunk %" PRIu64 " must be %" PRIu64
                      " bytes (bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "), "
                      "not %" PRIu64, c->number, b - a, a, b - 1, total,
                      c->length);
    *a_r = a;
    *b_r = b;
    *total_r = total;
    return 0;
}
