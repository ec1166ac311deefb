/* test_chunk.c: lib/http/chunk, the range of a numbered chunk. The expected
 * ranges are worked out by hand in the comments (MiB = 1048576). */
#include "tests/unit/unit.h"
#include "lib/http/chunk.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MiB     1048576ULL
#define CS      (5 * MiB)               /* the default uploads.chunksize */
#define TOTAL   (12 * MiB + 7)          /* 12582919: chunks 5M, 5M, 2M+7 */

static char why[256];

static int
range(uint64_t number, int64_t count, uint64_t length, uint64_t cs,
      int64_t total, uint64_t *a, uint64_t *b, uint64_t *t)
{
    struct chunk_numbered c = { number, count, length, cs, total };

    why[0] = '\0';
    *a = *b = *t = 12345;
    return chunk_range(&c, a, b, t, why, sizeof(why));
}

/* Refused, with a reason containing `needle`, and nothing written. */
static void
refused(uint64_t number, int64_t count, uint64_t length, uint64_t cs,
        int64_t total, const char *needle)
{
    uint64_t a, b, t;

    CU_ASSERT_EQUAL(range(number, count, length, cs, total, &a, &b, &t), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, needle));
    if (strstr(why, needle) == NULL)
        fprintf(stderr, "reason %s lacks %s\n", why, needle);
    CU_ASSERT_EQUAL(a, 12345);
    CU_ASSERT_EQUAL(b, 12345);
    CU_ASSERT_EQUAL(t, 12345);
}

static void
test_ranges(void)
{
    uint64_t a, b, t;

    /* 12582919 = 5242880 + 5242880 + 2097159 */
    CU_ASSERT_EQUAL(range(0, 3, CS, CS, TOTAL, &a, &b, &t), 0);
    CU_ASSERT_EQUAL(a, 0);
    CU_ASSERT_EQUAL(b, 5242880);
    CU_ASSERT_EQUAL(t, TOTAL);
    CU_ASSERT_EQUAL(range(1, -1, CS, CS, TOTAL, &a, &b, &t), 0);
    CU_ASSERT_EQUAL(a, 5242880);
    CU_ASSERT_EQUAL(b, 10485760);
    CU_ASSERT_EQUAL(range(2, 3, 2097159, CS, TOTAL, &a, &b, &t), 0);
    CU_ASSERT_EQUAL(a, 10485760);
    CU_ASSERT_EQUAL(b, 12582919);
    /* an exact multiple: the last chunk is a whole one */
    CU_ASSERT_EQUAL(range(1, 2, CS, CS, 10 * MiB, &a, &b, &t), 0);
    CU_ASSERT_EQUAL(a, 5242880);
    CU_ASSERT_EQUAL(b, 10485760);
    /* a file smaller than one chunk */
    CU_ASSERT_EQUAL(range(0, 1, 100, CS, 100, &a, &b, &t), 0);
    CU_ASSERT_EQUAL(a, 0);
    CU_ASSERT_EQUAL(b, 100);
    /* one-byte chunks at the top of the range of sizes */
    CU_ASSERT_EQUAL(range(INT64_MAX - 1, INT64_MAX, 1, 1, INT64_MAX,
                          &a, &b, &t), 0);
    CU_ASSERT_EQUAL(a, (uint64_t)INT64_MAX - 1);
    CU_ASSERT_EQUAL(b, (uint64_t)INT64_MAX);
}

static void
test_size_from_the_last_chunk(void)
{
    uint64_t a, b, t;

    CU_ASSERT_EQUAL(range(2, 3, 2097159, CS, -1, &a, &b, &t), 0);
    CU_ASSERT_EQUAL(t, TOTAL);
    CU_ASSERT_EQUAL(a, 10485760);
    CU_ASSERT_EQUAL(b, 12582919);
    CU_ASSERT_EQUAL(range(0, 1, 9, CS, -1, &a, &b, &t), 0);
    CU_ASSERT_EQUAL(t, 9);
    CU_ASSERT_EQUAL(range(1, 2, CS, CS, -1, &a, &b, &t), 0);
    CU_ASSERT_EQUAL(t, 10 * MiB);
    /* only the last chunk tells the size */
    refused(1, 3, CS, CS, -1, "X-Total-Size");
    refused(0, -1, CS, CS, -1, "X-Total-Size");
    refused(0, 0, CS, CS, -1, "X-Total-Size");
    refused(2, 3, 0, CS, -1, "must be 1 to 5242880 bytes, not 0");
    refused(2, 3, CS + 1, CS, -1, "must be 1 to 5242880 bytes, not 5242881");
    /* number * size + length past INT64_MAX */
    refused((1ULL << 62), (int64_t)(1ULL << 62) + 1, 1, CS, -1,
            "past any file size");
    refused(UINT64_MAX - 1, INT64_MAX, 1, CS, -1, "X-Total-Size");
}

static void
test_refusals(void)
{
    refused(1, 2, CS, CS, TOTAL,
            "X-Total-Chunks 2 does not match the file: 12582919 bytes in "
            "chunks of 5242880 bytes are 3 chunks");
    refused(1, 4, CS, CS, TOTAL, "X-Total-Chunks 4");
    refused(3, 3, CS, CS, TOTAL,
            "X-Chunk-Number 3 is past the last chunk (3 chunks");
    refused(3, -1, 7, CS, TOTAL, "past the last chunk");
    refused(UINT64_MAX, -1, 7, CS, TOTAL, "past the last chunk");
    refused(0, -1, 0, CS, 0, "past the last chunk (0 chunks");
    refused(1, 3, 100, CS, TOTAL,
            "chunk 1 must be 5242880 bytes (bytes 5242880-10485759/12582919)"
            ", not 100");
    refused(2, 3, CS, CS, TOTAL, "chunk 2 must be 2097159 bytes");
    refused(0, 3, CS + 1, CS, TOTAL, "chunk 0 must be 5242880 bytes");
    refused(0, 1, 1, 0, 1, "no chunk size");
}

static void
test_short_reason_buffer(void)
{
    struct chunk_numbered c = { 3, 3, CS, CS, TOTAL };
    uint64_t a, b, t;
    char small[8];

    memset(small, 'x', sizeof(small));
    CU_ASSERT_EQUAL(chunk_range(&c, &a, &b, &t, small, sizeof(small)), -1);
    CU_ASSERT_EQUAL(small[7], '\0');
    CU_ASSERT_STRING_EQUAL(small, "X-Chunk");
}

static CU_TestInfo tests[] = {
    { "ranges of numbered chunks", test_ranges },
    { "file size from the last chunk", test_size_from_the_last_chunk },
    { "refusals name the problem", test_refusals },
    { "reason cut to its buffer", test_short_reason_buffer },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("chunk", NULL, NULL, tests);
