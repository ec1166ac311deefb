/* fuzz_ietf_parse: worker/ietf_parse.c, the IETF resumable-upload draft's
 * header values (Upload-Complete, Upload-Incomplete, Upload-Offset,
 * Upload-Length, Upload-Draft-Interop-Version) as a client sends them.
 *
 * fuzz-sources: worker/ietf_parse.c
 * fuzz-args:    -max_len=200
 *
 * Input: one header value. A boolean or integer accepted must be exactly
 * what the value starts with (after spaces), an integer has at most 15
 * digits, the interop version agrees with the integer parser, and the
 * completion flag of interop 3 is the inverse of the same header's boolean.
 * Nothing read past the value's NUL (ASan). */
#include <stdio.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "worker/ietf_parse.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = fuzz_dup(data, size, 1);
    const char *p = v;
    while (*p == ' ')
        p++;

    bool b = false, c = false;
    if (ietf_sf_bool(v, &b) == 0) {
        FUZZ_CHECK(p[0] == '?' && (p[1] == '0' || p[1] == '1'));
        FUZZ_CHECK(b == (p[1] == '1'));
        const char *why = NULL;
        FUZZ_CHECK(ietf_complete_parse(3, NULL, v, &c, &why) == 0);
        FUZZ_CHECK(c == !b);
        FUZZ_CHECK(ietf_complete_parse(8, v, NULL, &c, &why) == 0);
        FUZZ_CHECK(c == b);
    } else {
        const char *why = NULL;
        FUZZ_CHECK(ietf_complete_parse(8, v, NULL, &c, &why) == -1);
        FUZZ_CHECK(why != NULL);
    }

    uint64_t n = 0;
    int version = 0, rc = ietf_interop_parse(v, &version);
    if (ietf_sf_uint(v, &n) == 0) {
        char dec[32];
        FUZZ_CHECK(n < 1000000000000000ULL);
        snprintf(dec, sizeof(dec), "%llu", (unsigned long long)n);
        /* The digits as sent, leading zeros aside. */
        const char *q = p;
        while (q[0] == '0' && q[1] >= '0' && q[1] <= '9')
            q++;
        FUZZ_CHECK(strncmp(q, dec, strlen(dec)) == 0);
        FUZZ_CHECK(rc == ((n >= IETF_INTEROP_MIN && n <= IETF_INTEROP_MAX)
                          ? 0 : -2));
        if (rc == 0)
            FUZZ_CHECK((uint64_t)version == n);
    } else {
        FUZZ_CHECK(rc == -1);
    }
    free(v);
    return 0;
}
