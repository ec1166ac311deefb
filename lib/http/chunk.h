/* chunk: where a numbered chunk of the seed protocol lies in its file.
 *
 * That protocol sends X-Chunk-Number (0-based) and X-Total-Chunks with
 * chunks of one fixed size, the deployment's uploads.chunksize, and no
 * Content-Range: chunk n is bytes [n * size, min((n + 1) * size, total)).
 * Pure arithmetic: no I/O, no allocation, no global state. The worked
 * example is in docs/protocol.md ("Numbered chunks"). */
#ifndef LIB_HTTP_CHUNK_H
#define LIB_HTTP_CHUNK_H

#include <stddef.h>
#include <stdint.h>

struct chunk_numbered {
    uint64_t number;        /* X-Chunk-Number, 0-based */
    int64_t  count;         /* X-Total-Chunks; -1 when not sent */
    uint64_t length;        /* this request's body length */
    uint64_t chunk_size;    /* uploads.chunksize; 0 is refused */
    int64_t  total;         /* file size; -1 when the request does not say */
};

/* Fills the chunk's range [*a_r, *b_r) and the file size *total_r. With
 * total -1 the size can follow only from the last chunk (number ==
 * count - 1): number * chunk_size + length. Returns 0, or -1 with a
 * one-line reason naming the problem (and the numbers) in why: a size
 * that is unknown, X-Total-Chunks that does not fit the size, a number
 * past the last chunk, a length other than the range's. */
int chunk_range(const struct chunk_numbered *c, uint64_t *a_r, uint64_t *b_r,
                uint64_t *total_r, char *why, size_t whylen);

#endif
