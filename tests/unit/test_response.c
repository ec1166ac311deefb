/* test_response.c: the printf-free response head builder and http_date,
 * checked against what snprintf/strftime make of the same input. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/http/response.h"
#include "lib/util/decimal.h"
#include "tests/unit/unit.h"

static int
head_is(const struct http_head *h, const char *want)
{
    return !h->overflow && h->len == strlen(want)
        && memcmp(h->buf, want, h->len) == 0;
}

static void
test_status_and_headers(void)
{
    static const char block[] = "A: 1\r\nB: two\r\n";
    struct http_head h;

    http_head_start(&h, 206);
    http_head_put(&h, "ETag", "\"1-2-3\"");
    http_head_put_u64(&h, "Content-Length", 0);
    http_head_put_u64(&h, "X-Big", UINT64_MAX);
    http_head_raw(&h, block, sizeof(block) - 1);
    http_head_put_range(&h, 10, 4095, 4096, 0);
    http_head_put_range(&h, 0, 0, 7, 1);
    http_head_add(&h, "X-Fmt", "%d-%s", 42, "x");
    http_head_end(&h);
    CU_ASSERT(head_is(&h, "HTTP/1.1 206 Partial Content\r\n"
                          "ETag: \"1-2-3\"\r\n"
                          "Content-Length: 0\r\n"
                          "X-Big: 18446744073709551615\r\n"
                          "A: 1\r\nB: two\r\n"
                          "Content-Range: bytes 10-4095/4096\r\n"
                          "Content-Range: bytes */7\r\n"
                          "X-Fmt: 42-x\r\n"
                          "\r\n"));
    http_head_start(&h, 599);
    CU_ASSERT(head_is(&h, "HTTP/1.1 599 Unknown\r\n"));
}

/* Every number the same as printf's. */
static void
test_decimal_format(void)
{
    static const uint64_t vs[] = {
        0, 1, 9, 10, 99, 100, 4096, 65535, 4294967296ULL,
        999999999999999999ULL, 10000000000000000000ULL, UINT64_MAX
    };
    char d[DECIMAL_MAX_DIGITS + 1], want[32];

    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        size_t n = decimal_format(vs[i], d);
        d[n] = '\0';
        snprintf(want, sizeof(want), "%llu", (unsigned long long)vs[i]);
        CU_ASSERT_STRING_EQUAL(d, want);
    }
}

/* Never a cut head: the overflow flag is set and stays set. */
static void
test_overflow(void)
{
    char big[5000];
    struct http_head h;

    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    http_head_start(&h, 200);
    http_head_put(&h, "X-Long", big);
    CU_ASSERT(h.overflow);
    http_head_put(&h, "X-Short", "1");
    http_head_end(&h);
    CU_ASSERT(h.overflow);

    /* Exactly full (one byte kept, as vsnprintf keeps the NUL) is fine. */
    http_head_start(&h, 200);
    size_t room = sizeof(h.buf) - h.len - 1;
    memset(big, 'r', room);
    http_head_raw(&h, big, room);
    CU_ASSERT(!h.overflow && h.len == sizeof(h.buf) - 1);
    http_head_raw(&h, "x", 1);
    CU_ASSERT(h.overflow);
}

/* The hand-made IMF-fixdate is strftime's in the C locale. */
static void
test_http_date(void)
{
    static const time_t ts[] = {
        0, 784111777 /* RFC 9110's Sun, 06 Nov 1994 08:49:37 */,
        951782400 /* 29 Feb 2000 */, 1767225599, 1780000000,
        4102444800LL /* 2100 */, 253402300799LL
    };
    char got[HTTP_DATE_LEN + 1], want[64];
    struct tm tm;

    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        gmtime_r(&ts[i], &tm);
        strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        http_date(ts[i], got, sizeof(got));
        CU_ASSERT_STRING_EQUAL(got, want);
        CU_ASSERT_EQUAL(strlen(got), HTTP_DATE_LEN);
    }
    /* Every day boundary and a spread of seconds, 1900 to 9999 (leap
     * years, centuries, 2000), against gmtime_r + strftime. */
    unsigned long long x = 88172645463325252ULL;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        time_t t = (time_t)(-2208988800LL + (long long)(x % 255611289600ULL));
        if (i % 2)
            t -= t % 86400 + (i % 4 == 1 ? 0 : 1);   /* midnight, or 1 s before */
        gmtime_r(&t, &tm);
        strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        http_date(t, got, sizeof(got));
        if (strcmp(got, want) != 0 && bad++ < 5)
            fprintf(stderr, "http_date(%lld): %s, strftime: %s\n",
                    (long long)t, got, want);
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* Outside years 0-9999: the nearest date that fits, never garbage. */
    http_date((time_t)253402300800LL, got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "Fri, 31 Dec 9999 23:59:59 GMT");
    http_date((time_t)-62167219201LL, got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "Sat, 01 Jan 0000 00:00:00 GMT");
    http_date(784111777, got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "Sun, 06 Nov 1994 08:49:37 GMT");
    /* Round trip through the parser the daemon uses for If-Modified-Since. */
    time_t back;
    CU_ASSERT_EQUAL(http_date_parse(got, &back), 0);
    CU_ASSERT_EQUAL(back, 784111777);
    /* Too small a buffer: an empty string, never a cut date. */
    memset(got, 'x', sizeof(got));
    http_date(0, got, HTTP_DATE_LEN);
    CU_ASSERT_STRING_EQUAL(got, "");
}

static CU_TestInfo tests[] = {
    { "status line and headers without printf", test_status_and_headers },
    { "numbers as printf writes them", test_decimal_format },
    { "a head that does not fit is flagged", test_overflow },
    { "IMF-fixdate as strftime writes it", test_http_date },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("response", NULL, NULL, tests);
