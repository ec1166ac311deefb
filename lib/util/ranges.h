/* ranges: the set of byte ranges of an upload that are durably held.
 *
 * Kept sorted, disjoint and merged (touching ranges become one), so the
 * contiguous prefix is r[0] when it starts at 0 and the count is bounded by
 * the holes, not by the chunks. Plain data with no pointers: it lives inline
 * in a shared-memory session entry as well as on the stack. All calls are
 * pure computation, safe under a shm lock. */
#ifndef LIB_UTIL_RANGES_H
#define LIB_UTIL_RANGES_H

#include <stddef.h>
#include <stdint.h>

/* At most this many disjoint ranges per session (one 4 KiB page). A client
 * that would punch more holes is told to retry once some are filled. */
#define RANGES_MAX 256

struct range {
    uint64_t start, end;                /* [start, end), start < end */
};

struct ranges {
    uint32_t     n;
    uint32_t     pad_;
    struct range r[RANGES_MAX];
};

void     ranges_init(struct ranges *rs);
/* Adds [start, end). -1 with errno EINVAL for an empty or inverted range,
 * E2BIG if the result would need more than RANGES_MAX ranges (rs unchanged). */
int      ranges_add(struct ranges *rs, uint64_t start, uint64_t end);
/* 1 if every byte of [start, end) is held (an empty range is held), else 0. */
int      ranges_covers(const struct ranges *rs, uint64_t start, uint64_t end);
/* 1 if any byte of [start, end) is held, else 0. */
int      ranges_overlaps(const struct ranges *rs, uint64_t start, uint64_t end);
/* Bytes held contiguously from offset 0: tus Upload-Offset. */
uint64_t ranges_prefix(const struct ranges *rs);
uint64_t ranges_total(const struct ranges *rs);
/* First missing range at or after `from` and below `limit`: 0 and *hole
 * filled, or -1 when [from, limit) is fully held. */
int      ranges_hole(const struct ranges *rs, uint64_t from, uint64_t limit,
                     struct range *hole);
/* "0-1048575,2097152-3145727" (inclusive ends, as in Content-Range). Returns
 * the length the full text needs, like snprintf; truncates to len - 1. */
size_t   ranges_format(const struct ranges *rs, char *buf, size_t len);
/* 1 if rs keeps its invariants (sorted, disjoint, merged, n bounded): a
 * shared copy read after a crash is checked before it is trusted. */
int      ranges_valid(const struct ranges *rs);

#endif
