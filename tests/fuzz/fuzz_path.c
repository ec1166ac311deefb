/* fuzz_path: lib/store/path.c, store_path_decode.
 *
 * fuzz-sources: lib/store/path.c lib/util/syncsite.c
 * fuzz-args:    -max_len=2048
 *
 * Input: the raw URL path after the prefix, as the client sent it. The
 * decoded name is what every open under the storage root starts from, so
 * on success it must be: NUL-free and as long as reported, at most
 * STORE_PATH_MAX bytes and STORE_DEPTH_MAX components, no empty component
 * (no leading, trailing or doubled '/'), no component starting with '.'
 * (so no "." or ".."), none over STORE_NAME_MAX, no control byte or '\',
 * and exactly as many '/' as the raw path had (a %2F never becomes a
 * separator). A reference decoder written from path.h must agree on every
 * verdict and byte, and error messages must be printable ASCII, since
 * they reach logs. Small output and error buffers are tried too. */
#include <stdbool.h>
#include <string.h>

#include "lib/store/path.h"
#include "tests/fuzz/fuzz.h"

static int
hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes a component at a time; false if path.h says refuse. */
static bool
ref_decode(const uint8_t *raw, size_t n, char *out, size_t *olen)
{
    size_t i = 0, o = 0, comps = 0;

    if (n == 0)
        return false;
    for (;;) {
        size_t start = o;
        for (; i < n && raw[i] != '/'; i++) {
            uint8_t c = raw[i];
            if (c == '%') {
                if (n - i < 3 || hexval(raw[i + 1]) < 0
                    || hexval(raw[i + 2]) < 0)
                    return false;
                c = (uint8_t)(hexval(raw[i + 1]) << 4 | hexval(raw[i + 2]));
                i += 2;
            }
            if (c == 0 || c == '/' || c < 0x20 || c == 0x7f || c == '\\')
                return false;
            if (o == STORE_PATH_MAX)
                return false;
            out[o++] = (char)c;
        }
        if (o == start || o - start > STORE_NAME_MAX || out[start] == '.'
            || ++comps > STORE_DEPTH_MAX)
            return false;
        if (i == n)
            break;
        if (o == STORE_PATH_MAX)
            return false;
        out[o++] = '/';
        i++;
    }
    out[o] = '\0';
    *olen = o;
    return true;
}

static void
check_output(const uint8_t *raw, size_t n, const char *out, size_t olen)
{
    size_t slashes = 0, comps = 0, start = 0;

    FUZZ_CHECK(olen <= STORE_PATH_MAX);
    FUZZ_CHECK(strlen(out) == olen);
    for (size_t i = 0; i < n; i++)
        slashes += raw[i] == '/';
    for (size_t i = 0; i <= olen; i++) {
        uint8_t c = (uint8_t)out[i];
        if (i < olen && c != '/') {
            FUZZ_CHECK(c >= 0x20 && c != 0x7f && c != '\\');
            continue;
        }
        /* out[start, i) is one component */
        FUZZ_CHECK(i > start);
        FUZZ_CHECK(i - start <= STORE_NAME_MAX);
        FUZZ_CHECK(out[start] != '.');
        comps++;
        slashes -= i < olen;
        start = i + 1;
    }
    FUZZ_CHECK(comps <= STORE_DEPTH_MAX);
    FUZZ_CHECK(slashes == 0);
}

static void
check_err(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);

    FUZZ_CHECK(n < errlen && n > 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(err[i] >= 0x20 && err[i] < 0x7f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char     ref[STORE_PATH_MAX + 1], err[256];
    uint64_t h = fuzz_hash(data, size);
    size_t   olen = 12345, rlen = 0;
    char    *raw = fuzz_dup(data, size, 0);        /* not NUL-terminated */
    char    *out = malloc(STORE_PATH_MAX + 1);

    if (out == NULL)
        abort();
    memset(err, 'E', sizeof(err));
    bool want = ref_decode(data, size, ref, &rlen);
    int  rc = store_path_decode(raw, size, out, STORE_PATH_MAX + 1, &olen,
                                err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK((rc == 0) == want);
    if (rc == 0) {
        check_output(data, size, out, olen);
        FUZZ_CHECK(olen == rlen && memcmp(out, ref, rlen + 1) == 0);
    } else {
        check_err(err, sizeof(err));
    }
    free(out);

    /* A short output buffer (exactly sized, for ASan) and a short error
     * buffer: either succeed with the same bytes or refuse cleanly. */
    size_t cap = 1 + (size_t)(h % (size + 2));
    size_t elen = (size_t)(h >> 16) % 24;
    out = malloc(cap);
    char *e = elen ? malloc(elen) : NULL;
    if (out == NULL || (elen && e == NULL))
        abort();
    rc = store_path_decode(raw, size, out, cap, NULL, e, elen);
    if (rc == 0) {
        FUZZ_CHECK(want && rlen < cap && memcmp(out, ref, rlen + 1) == 0);
    } else {
        FUZZ_CHECK(rc == -1);
        if (elen)
            FUZZ_CHECK(strnlen(e, elen) < elen);
    }
    free(e);
    free(out);
    free(raw);
    return 0;
}
