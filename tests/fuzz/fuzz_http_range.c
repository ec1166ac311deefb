/* fuzz_http_range: lib/http/response.c, the request-header parsers in it.
 *
 * fuzz-sources: lib/http/response.c lib/util/decimal.c
 * fuzz-args:    -max_len=256
 *
 * Input: "<file size>\n<header value>"; without a leading decimal line the
 * size comes from a hash of the input. The value goes to http_range_parse
 * (Range), http_content_range_parse (Content-Range of a chunk) and
 * http_date_parse (If-Modified-Since). Ranges are checked against a
 * reference written from the comments in response.h, and a byte range that
 * is OK must lie inside the file: first <= last < size. A parsed date must
 * survive being formatted and parsed again. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "lib/http/response.h"
#include "tests/fuzz/fuzz.h"

/* Digits only, at least one, no overflow; returns the end or NULL. */
static const char *
ref_num(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = p;

    while (*p >= '0' && *p <= '9') {
        if (__builtin_mul_overflow(v, 10, &v)
            || __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            return NULL;
        p++;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

static enum http_range
ref_range(const char *v, uint64_t size, uint64_t *f, uint64_t *l)
{
    uint64_t a, b;
    const char *p;

    if (strncmp(v, "bytes=", 6) != 0 || strchr(v, ',') != NULL)
        return HTTP_RANGE_NONE;
    v += 6;
    if (v[0] == '-') {
        if ((p = ref_num(v + 1, &b)) == NULL || *p != '\0')
            return HTTP_RANGE_NONE;
        if (b == 0 || size == 0)
            return HTTP_RANGE_UNSATISFIABLE;
        *f = b < size ? size - b : 0;
        *l = size - 1;
        return HTTP_RANGE_OK;
    }
    if ((p = ref_num(v, &a)) == NULL || *p++ != '-')
        return HTTP_RANGE_NONE;
    b = UINT64_MAX;
    if (*p != '\0' && ((p = ref_num(p, &b)) == NULL || *p != '\0'))
        return HTTP_RANGE_NONE;
    if (b < a)
        return HTTP_RANGE_NONE;
    if (a >= size)
        return HTTP_RANGE_UNSATISFIABLE;
    *f = a;
    *l = b < size - 1 ? b : size - 1;
    return HTTP_RANGE_OK;
}

static void
check_range(const char *v, uint64_t size)
{
    uint64_t f = 7, l = 7, rf = 0, rl = 0;
    enum http_range r = http_range_parse(v, size, &f, &l);
    enum http_range ref = ref_range(v, size, &rf, &rl);

    FUZZ_CHECK(r == ref);
    if (r == HTTP_RANGE_OK) {
        FUZZ_CHECK(f <= l && l < size);
        FUZZ_CHECK(f == rf && l == rl);
    } else {
        FUZZ_CHECK(f == 7 && l == 7);       /* outputs untouched */
    }
}

static void
check_content_range(const char *v)
{
    uint64_t f = 7, l = 7, a, b, t = 0;
    int64_t total = 7;
    const char *p;
    bool ok = strncmp(v, "bytes ", 6) == 0
              && (p = ref_num(v + 6, &a)) != NULL && *p == '-'
              && (p = ref_num(p + 1, &b)) != NULL && *p == '/' && a <= b
              && (strcmp(p + 1, "*") == 0
                  || ((p = ref_num(p + 1, &t)) != NULL && *p == '\0'
                      && b < t && t <= (uint64_t)INT64_MAX));

    int rc = http_content_range_parse(v, &f, &l, &total);
    FUZZ_CHECK(rc == (ok ? 0 : -1));
    if (rc == 0) {
        FUZZ_CHECK(f <= l);
        FUZZ_CHECK(total == -1 || (total > 0 && l < (uint64_t)total));
        FUZZ_CHECK(f == a && l == b);
    } else {
        FUZZ_CHECK(f == 7 && l == 7 && total == 7);
    }
}

/* Years 0..9999: what strptime's %Y reads and gmtime can render. */
#define T_MIN (-62167219200LL)
#define T_MAX 253402300799LL

static void
check_date(const char *v, uint64_t h)
{
    char   buf[64];
    time_t t = 0, t2 = 0;

    if (http_date_parse(v, &t) == 0 && t >= T_MIN && t <= T_MAX) {
        http_date(t, buf, sizeof(buf));
        FUZZ_CHECK(http_date_parse(buf, &t2) == 0 && t2 == t);
    }
    /* And from a time: formatting then parsing is the identity. */
    t = (time_t)(T_MIN + (int64_t)(h % (uint64_t)(T_MAX - T_MIN + 1)));
    http_date(t, buf, sizeof(buf));
    FUZZ_CHECK(http_date_parse(buf, &t2) == 0 && t2 == t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *d = data, *line;
    size_t         n = size, len;
    uint64_t       h = fuzz_hash(data, size), fsize = 0;
    bool           sized = false;

    if (fuzz_field(&d, &n, &line, &len)) {
        char       *s = fuzz_dup(line, len, 1);
        const char *end = ref_num(s, &fsize);
        sized = end != NULL && *end == '\0';
        free(s);
    }
    if (!sized) {               /* the whole input is the value */
        d = data;
        n = size;
        fsize = h % 3 == 0 ? h % 64 : h;    /* small files too */
    }
    char *v = fuzz_dup(d, n, 1);
    check_range(v, fsize);
    check_content_range(v);
    check_date(v, h);
    free(v);
    return 0;
}
