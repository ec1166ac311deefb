/* fuzz_tus_concat: worker/tus_parse.c, tus_concat_parse (Upload-Concat of
 * a tus creation, as the client sent it).
 *
 * fuzz-sources: worker/tus_parse.c lib/http/tusmeta.c lib/util/decimal.c
 * fuzz-libs:    -lcrypto
 * fuzz-args:    -max_len=6000
 *
 * Input: one byte choosing the URL prefix ("/" or "/upload/") and at most
 * how many partials are allowed (1..16), then the header value (up to a
 * NUL). The properties: the answer is 0 or 400, and 400 comes with a
 * printable reason; 0 means the value was exactly "partial" (no ids), or
 * began "final;" with 1..max ids, each 32 lower-case hex digits, pairwise
 * different, each found in the value right after "<prefix>.tus/" and
 * followed by a space or the end; and a value over 4096 bytes is refused. */
#include <stdbool.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "worker/tus_parse.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ids[TUS_PARTS_MAX][TUS_ID_LEN + 1];
    enum tus_concat kind = TUS_CONCAT_NONE;
    const char *why = NULL;
    size_t n = 99;

    if (size < 1)
        return 0;
    const char *prefix = data[0] & 1 ? "/upload/" : "/";
    size_t max = 1 + (data[0] >> 1) % TUS_PARTS_MAX;
    char *v = fuzz_dup(data + 1, size - 1, 1);
    size_t vlen = strlen(v);

    int rc = tus_concat_parse(v, prefix, &kind, ids, max, &n, &why);
    FUZZ_CHECK(rc == 0 || rc == 400);
    if (rc == 400) {
        FUZZ_CHECK(why != NULL && why[0] != '\0');
        for (const char *p = why; *p; p++)
            FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
        free(v);
        return 0;
    }
    FUZZ_CHECK(vlen <= TUS_CONCAT_MAX);
    if (kind == TUS_CONCAT_PARTIAL) {
        FUZZ_CHECK(strcmp(v, "partial") == 0 && n == 0);
        free(v);
        return 0;
    }
    FUZZ_CHECK(kind == TUS_CONCAT_FINAL && strncmp(v, "final;", 6) == 0);
    FUZZ_CHECK(n >= 1 && n <= max);
    char want[64];
    snprintf(want, sizeof(want), "%s.tus/", prefix);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(tus_id_valid(ids[i]));
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(ids[i], ids[j]) != 0);
        bool found = false;
        for (const char *p = v; (p = strstr(p, want)) != NULL; p++) {
            const char *id = p + strlen(want);
            if (strncmp(id, ids[i], TUS_ID_LEN) == 0
                && (id[TUS_ID_LEN] == ' ' || id[TUS_ID_LEN] == '\0'))
                found = true;
        }
        FUZZ_CHECK(found);
    }
    free(v);
    return 0;
}
