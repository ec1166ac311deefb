/* fuzz_mime: lib/store/mime.c, the Content-Type chosen for a stored name.
 *
 * fuzz-sources: lib/store/mime.c
 * fuzz-args:    -max_len=300
 *
 * Input: a decoded file name or relative path (the client picks it). The
 * type must never be one a browser would run as markup or script (see
 * mime.h), must ignore ASCII case and the directories in front, and must
 * not depend on anything after a NUL. */
#define _GNU_SOURCE             /* strcasestr */
#include <string.h>

#include "lib/store/mime.h"
#include "tests/fuzz/fuzz.h"

static const char *const executable[] = {
    "html", "/xml", "+xml", "javascript", "ecmascript", "svg", "xsl",
    "wasm", "shockwave", "multipart"
};

static void
check_type(const char *t)
{
    FUZZ_CHECK(t != NULL && *t != '\0');
    for (size_t i = 0; i < sizeof(executable) / sizeof(executable[0]); i++)
        FUZZ_CHECK(strcasestr(t, executable[i]) == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name = fuzz_dup(data, size, 1);
    const char *t = store_mime_type(name);

    check_type(t);
    FUZZ_CHECK(store_mime_type(name) == t);         /* a static string */

    char *alt = fuzz_dup(data, size, 1);
    for (size_t i = 0; i < size; i++) {             /* flip ASCII case */
        char c = alt[i];
        if (c >= 'a' && c <= 'z')
            alt[i] = (char)(c - 'a' + 'A');
        else if (c >= 'A' && c <= 'Z')
            alt[i] = (char)(c - 'A' + 'a');
    }
    FUZZ_CHECK(strcmp(store_mime_type(alt), t) == 0);
    free(alt);

    alt = malloc(size + 16);
    if (alt == NULL)
        abort();
    snprintf(alt, size + 16, "x.html/%s", name);    /* dirs do not count */
    if (strchr(name, '/') == NULL && name[0] != '.')
        FUZZ_CHECK(strcmp(store_mime_type(alt), t) == 0);
    free(alt);
    free(name);
    return 0;
}
