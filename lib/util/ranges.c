/* ranges.c: sorted, merged [start, end) intervals in a fixed array.
 *
 * Because ranges are disjoint and never touch, both starts and ends are
 * strictly increasing, so either can be binary-searched. */
#include "lib/util/ranges.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>


void
ranges_init(struct ranges *rs)
{
    rs->n = 0;
    rs->pad_ = 0;
}


/* Index of the first range whose end is >= x (n if none). */
static uint32_t
first_end_ge(const struct ranges *rs, uint64_t x)
{
    uint32_t lo = 0, hi = rs->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rs->r[mid].end >= x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}


/* Index of the first range whose start is > x (n if none). */
static uint32_t
first_start_gt(const struct ranges *rs, uint64_t x)
{
    uint32_t lo = 0, hi = rs->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rs->r[mid].start > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}


int
ranges_add(struct ranges *rs, uint64_t start, uint64_t end)
{
    uint32_t i, j;

    if (start >= end || rs->n > RANGES_MAX) {
        errno = EINVAL;
        return -1;
    }
    /* r[i..j-1] touch or overlap [start, end) and merge into one. */
    i = first_end_ge(rs, start);
    j = first_start_gt(rs, end);
    if (i == j) {
        if (rs->n == RANGES_MAX) {
            errno = E2BIG;
            return -1;
        }
        memmove(&rs->r[i + 1], &rs->r[i], (rs->n - i) * sizeof(rs->r[0]));
        rs->r[i].start = start;
        rs->r[i].end = end;
        rs->n++;
        return 0;
    }
    if (rs->r[i].start < start)
        start = rs->r[i].start;
    if (rs->r[j - 1].end > end)
        end = rs->r[j - 1].end;
    rs->r[i].start = start;
    rs->r[i].end = end;
    memmove(&rs->r[i + 1], &rs->r[j], (rs->n - j) * sizeof(rs->r[0]));
    rs->n -= j - i - 1;
    return 0;
}


int
ranges_covers(const struct ranges *rs, uint64_t start, uint64_t end)
{
    uint32_t i;

    if (start >= end)
        return 1;
    i = first_start_gt(rs, start);
    return i > 0 && rs->r[i - 1].end >= end;
}


int
ranges_overlaps(const struct ranges *rs, uint64_t start, uint64_t end)
{
    uint32_t i;

    if (start >= end)
        return 0;
    i = first_end_ge(rs, start + 1);
    return i < rs->n && rs->r[i].start < end;
}


uint64_t
ranges_prefix(const struct ranges *rs)
{
    return rs->n > 0 && rs->r[0].start == 0 ? rs->r[0].end : 0;
}


uint64_t
ranges_total(const struct ranges *rs)
{
    uint64_t sum = 0;

    for (uint32_t i = 0; i < rs->n; i++)
        sum += rs->r[i].end - rs->r[i].start;
    return sum;
}


int
ranges_hole(const struct ranges *rs, uint64_t from, uint64_t limit,
            struct range *hole)
{
    uint32_t i;

    if (from >= limit)
        return -1;
    i = first_start_gt(rs, from);
    if (i > 0 && rs->r[i - 1].end > from)
        from = rs->r[i - 1].end;
    if (from >= limit)
        return -1;
    hole->start = from;
    hole->end = i < rs->n && rs->r[i].start < limit ? rs->r[i].start : limit;
    return 0;
}


size_t
ranges_format(const struct ranges *rs, char *buf, size_t len)
{
    size_t need = 0;

    if (len > 0)
        buf[0] = '\0';
    for (uint32_t i = 0; i < rs->n; i++) {
        char part[48];
        int  k = snprintf(part, sizeof(part), "%s%llu-%llu", i ? "," : "",
                          (unsigned long long)rs->r[i].start,
                          (unsigned long long)(rs->r[i].end - 1));
        if (need + 1 < len) {
            size_t room = len - need - 1;
            size_t copy = (size_t)k < room ? (size_t)k : room;
            memcpy(buf + need, part, copy);
            buf[need + copy] = '\0';
        }
        need += (size_t)k;
    }
    return need;
}


int
ranges_valid(const struct ranges *rs)
{
    if (rs->n > RANGES_MAX)
        return 0;
    for (uint32_t i = 0; i < rs->n; i++) {
        if (rs->r[i].start >= rs->r[i].end)
            return 0;
        if (i > 0 && rs->r[i - 1].end >= rs->r[i].start)
            return 0;
    }
    return 1;
}
