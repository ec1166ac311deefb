/* test_tusmeta.c: the tus Upload-Metadata parser (lib/http/tusmeta.c),
 * against the rules of the tus 1.0.0 creation extension. */
#include "tests/unit/unit.h"
#include "lib/http/tusmeta.h"

#include <stdio.h>
#include <string.h>

static int
parse(const char *hdr, struct tusmeta *m, char *err)
{
    return tusmeta_parse(hdr, m, err, 256);
}

static int
pair_is(const struct tusmeta *m, size_t i, const char *key, const char *val)
{
    return i < m->n && m->pair[i].key_len == strlen(key)
        && memcmp(m->pair[i].key, key, strlen(key)) == 0
        && m->pair[i].value_len == strlen(val)
        && memcmp(m->pair[i].value, val, strlen(val)) == 0;
}

static void
test_valid(void)
{
    struct tusmeta m;
    char err[256];

    /* What tus-js-client sends. */
    CU_ASSERT_EQUAL(parse("filename cGhvdG8uanBn,filetype aW1hZ2UvanBlZw==",
                          &m, err), 0);
    CU_ASSERT_EQUAL(m.n, 2);
    CU_ASSERT(pair_is(&m, 0, "filename", "cGhvdG8uanBn"));
    CU_ASSERT(pair_is(&m, 1, "filetype", "aW1hZ2UvanBlZw=="));
    /* A key without a value, with or without its space. */
    CU_ASSERT_EQUAL(parse("private,is_confidential ,a YQ==", &m, err), 0);
    CU_ASSERT_EQUAL(m.n, 3);
    CU_ASSERT(pair_is(&m, 0, "private", ""));
    CU_ASSERT(pair_is(&m, 1, "is_confidential", ""));
    CU_ASSERT(pair_is(&m, 2, "a", "YQ=="));
    /* Whitespace around pairs (HTTP list syntax). */
    CU_ASSERT_EQUAL(parse("  a YQ== ,\tb YmI=\t, c", &m, err), 0);
    CU_ASSERT_EQUAL(m.n, 3);
    CU_ASSERT(pair_is(&m, 1, "b", "YmI="));
    CU_ASSERT(pair_is(&m, 2, "c", ""));
    /* Keys are case-sensitive: these two differ. */
    CU_ASSERT_EQUAL(parse("Name YQ==,name YQ==", &m, err), 0);
    /* Any visible ASCII but the comma. */
    CU_ASSERT_EQUAL(parse("x-key.1:=/~ YWJj", &m, err), 0);
    /* Blank: no metadata. */
    CU_ASSERT_EQUAL(parse("", &m, err), 0);
    CU_ASSERT_EQUAL(m.n, 0);
    CU_ASSERT_EQUAL(parse("  ", &m, err), 0);
    CU_ASSERT_EQUAL(m.n, 0);
    CU_ASSERT_PTR_NULL(tusmeta_find(&m, "x"));
}

static void
test_find(void)
{
    struct tusmeta m;
    char err[256];
    CU_ASSERT_EQUAL(parse("filetypes YQ==,filetype YmI=,file", &m, err), 0);
    const struct tusmeta_pair *p = tusmeta_find(&m, "filetype");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->value_len, 4);
    CU_ASSERT_EQUAL(memcmp(p->value, "YmI=", 4), 0);
    CU_ASSERT_PTR_NULL(tusmeta_find(&m, "fil"));
    CU_ASSERT_PTR_NOT_NULL(tusmeta_find(&m, "file"));
}

/* Each refused with a message naming the fault. */
static void
test_refused(void)
{
    static const struct { const char *hdr, *words; } bad[] = {
        { "a YQ==,a YmI=", "\"a\" is repeated" },
        { "a,a", "\"a\" is repeated" },
        { "a YQ==,,b YmI=", "empty key" },
        { ",a YQ==", "empty key" },
        { "a YQ==,", "empty key" },
        { "a YQ==, ,b", "empty key" },
        { "my key YQ==", "not base64" },    /* key with a space */
        { "a  YQ==", "not base64" },        /* two spaces */
        { "a YQ", "not base64" },           /* not a multiple of 4 */
        { "a Y!==", "not base64" },
        { "a Y=Q=", "not base64" },         /* '=' inside */
        { "a Y===", "not base64" },         /* three pads */
        { "a YQ== YQ==", "not base64" },
        { "k\xc3\xa9y YQ==", "printable ASCII" },
        { "a\x01 YQ==", "printable ASCII" },
    };
    struct tusmeta m;
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = parse(bad[i].hdr, &m, err);
        if (rc != -1 || strstr(err, bad[i].words) == NULL)
            printf("    \"%s\": rc %d, \"%s\"\n", bad[i].hdr, rc, err);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].words));
    }
}

static void
test_limits(void)
{
    struct tusmeta m;
    char err[256], hdr[1024];
    size_t n = 0;

    for (int i = 0; i < TUSMETA_PAIRS_MAX; i++)
        n += (size_t)snprintf(hdr + n, sizeof(hdr) - n, "%sk%d",
                              i ? "," : "", i);
    CU_ASSERT_EQUAL(parse(hdr, &m, err), 0);
    CU_ASSERT_EQUAL(m.n, TUSMETA_PAIRS_MAX);
    snprintf(hdr + n, sizeof(hdr) - n, ",one_more");
    CU_ASSERT_EQUAL(parse(hdr, &m, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than 64 keys"));
    /* A long key is named, shortened, in the message. */
    memset(hdr, 'k', 300);
    snprintf(hdr + 300, sizeof(hdr) - 300, " !,x");
    CU_ASSERT_EQUAL(tusmeta_parse(hdr, &m, err, 100), -1);
    CU_ASSERT(strlen(err) < 100);
}

static CU_TestInfo tests[] = {
    { "valid", test_valid },
    { "find", test_find },
    { "refused", test_refused },
    { "limits", test_limits },
    CU_TEST_INFO_NULL,
};
UNIT_SUITE("tusmeta", NULL, NULL, tests);
