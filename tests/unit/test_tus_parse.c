/* test_tus_parse.c: worker/tus_parse, the pure header parsing of tus
 * (numbers, base64, Upload-Metadata values, Upload-Checksum, ids). */
#include "tests/unit/unit.h"
#include "worker/tus_parse.h"

#include <stdint.h>
#include <string.h>

#define SHA1_EMPTY   "2jmj7l5rSw0yVb/vlWAYkK/YBwk="
#define SHA256_EMPTY "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

static void
test_u64(void)
{
    uint64_t v = 7;
    CU_ASSERT_EQUAL(tus_parse_u64("0", &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(tus_parse_u64("1048576", &v), 0);
    CU_ASSERT_EQUAL(v, 1048576);
    CU_ASSERT_EQUAL(tus_parse_u64("", &v), -1);
    CU_ASSERT_EQUAL(tus_parse_u64("12a", &v), -1);
    CU_ASSERT_EQUAL(tus_parse_u64("-1", &v), -1);
    CU_ASSERT_EQUAL(tus_parse_u64("99999999999999999999", &v), -1);
}

static void
test_b64(void)
{
    unsigned char out[32];
    CU_ASSERT_EQUAL(tus_b64_decode("YS50eHQ=", 8, out, sizeof(out)), 5);
    CU_ASSERT_EQUAL(memcmp(out, "a.txt", 5), 0);
    CU_ASSERT_EQUAL(tus_b64_decode("dGV4dC9wbGFpbg==", 16, out, sizeof(out)),
                    10);
    CU_ASSERT_EQUAL(memcmp(out, "text/plain", 10), 0);
    CU_ASSERT_EQUAL(tus_b64_decode("", 0, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(tus_b64_decode("YS5", 3, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(tus_b64_decode("Y=50", 4, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(tus_b64_decode("YS5*eHQ=", 8, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(tus_b64_decode("YS50eHQ=", 8, out, 5), -1); /* 6 > 5 */
}

static void
test_metadata(void)
{
    char out[64];
    const char *meta = "filename YS50eHQ=,filetype dGV4dC9wbGFpbg==,flag";

    tus_metadata_get(meta, "filename", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "a.txt");
    tus_metadata_get(meta, "filetype", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "text/plain");
    tus_metadata_get(meta, "flag", out, sizeof(out));      /* no value */
    CU_ASSERT_STRING_EQUAL(out, "");
    tus_metadata_get(meta, "missing", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "");
    tus_metadata_get(meta, "filetype", out, 10);    /* no room for NUL */
    CU_ASSERT_STRING_EQUAL(out, "");
    tus_metadata_get("filename AA==", "filename", out, sizeof(out));
    CU_ASSERT_STRING_EQUAL(out, "");                 /* a NUL: not text */
}

static void
test_checksum(void)
{
    const EVP_MD *md = NULL;
    unsigned char want[EVP_MAX_MD_SIZE];
    const char *why = NULL;

    CU_ASSERT_EQUAL(tus_checksum_parse("sha1 " SHA1_EMPTY, &md, want,
                                       sizeof(want), &why), 0);
    CU_ASSERT_PTR_EQUAL(md, EVP_sha1());
    CU_ASSERT_EQUAL(want[0], 0xda);                  /* da39a3ee... */
    md = NULL;
    CU_ASSERT_EQUAL(tus_checksum_parse("sha256 " SHA256_EMPTY, &md, want,
                                       sizeof(want), &why), 0);
    CU_ASSERT_PTR_EQUAL(md, EVP_sha256());
    CU_ASSERT_EQUAL(want[0], 0xe3);                  /* e3b0c442... */
    md = NULL;
    /* A sha1 digest named sha256: wrong size. */
    CU_ASSERT_EQUAL(tus_checksum_parse("sha256 " SHA1_EMPTY, &md, want,
                                       sizeof(want), &why), 400);
    CU_ASSERT_PTR_NULL(md);
    CU_ASSERT_EQUAL(tus_checksum_parse("crc32 AAAAAA==", &md, want,
                                       sizeof(want), &why), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "unsupported"));
    CU_ASSERT_EQUAL(tus_checksum_parse("sha1", &md, want, sizeof(want),
                                       &why), 400);
    CU_ASSERT_EQUAL(tus_checksum_parse(" " SHA1_EMPTY, &md, want,
                                       sizeof(want), &why), 400);
    CU_ASSERT_PTR_NULL(md);
}

static void
test_id(void)
{
    CU_ASSERT_TRUE(tus_id_valid("0123456789abcdef0123456789abcdef"));
    CU_ASSERT_FALSE(tus_id_valid("0123456789ABCDEF0123456789abcdef"));
    CU_ASSERT_FALSE(tus_id_valid("0123456789abcdef0123456789abcde"));
    CU_ASSERT_FALSE(tus_id_valid("0123456789abcdef0123456789abcdef0"));
    CU_ASSERT_FALSE(tus_id_valid("0123456789abcdef0123456789abcdef/"));
    CU_ASSERT_FALSE(tus_id_valid(""));
}

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "fedcba9876543210fedcba9876543210"

static void
test_concat(void)
{
    char ids[TUS_PARTS_MAX][TUS_ID_LEN + 1];
    enum tus_concat kind = TUS_CONCAT_NONE;
    const char *why = NULL;
    size_t n = 9;

    CU_ASSERT_EQUAL(tus_concat_parse("partial", "/", &kind, ids, 16, &n,
                                     &why), 0);
    CU_ASSERT_EQUAL(kind, TUS_CONCAT_PARTIAL);
    CU_ASSERT_EQUAL(n, 0);
    /* Relative and absolute URLs (tus-js-client resolves Location). */
    CU_ASSERT_EQUAL(tus_concat_parse("final;/.tus/" ID_A
                                     " http://h.example:8080/.tus/" ID_B,
                                     "/", &kind, ids, 16, &n, &why), 0);
    CU_ASSERT_EQUAL(kind, TUS_CONCAT_FINAL);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_STRING_EQUAL(ids[0], ID_A);
    CU_ASSERT_STRING_EQUAL(ids[1], ID_B);
    CU_ASSERT_EQUAL(tus_concat_parse("final;/up/.tus/" ID_B "  /up/.tus/"
                                     ID_A, "/up/", &kind, ids, 16, &n,
                                     &why), 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_STRING_EQUAL(ids[0], ID_B);
    const char *bad[] = {
        "", "Partial", "partial;", "final", "final;", "final; ",
        "final;/.tus/" ID_A " /.tus/" ID_A,               /* twice */
        "final;/.tus/" ID_A "/", "final;/.tus/" ID_A "?x=1",
        "final;/.tus/0123456789ABCDEF0123456789abcdef",
        "final;/.tus/" ID_A "0", "final;/up/.tus/" ID_A,   /* prefix */
        "final;http://h.example", "final;http:///.tus",
        "final;/files/" ID_A, "final;.tus/" ID_A,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        CU_ASSERT_EQUAL(tus_concat_parse(bad[i], "/", &kind, ids, 16, &n,
                                         &why), 400);
        CU_ASSERT_PTR_NOT_NULL(why);
    }
    /* At most `max` partials. */
    char many[1024] = "final;";
    for (int i = 0; i < 3; i++) {
        strcat(many, " /.tus/" ID_A);
        many[strlen(many) - 1] = (char)('0' + i);
    }
    CU_ASSERT_EQUAL(tus_concat_parse(many, "/", &kind, ids, 3, &n, &why), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(tus_concat_parse(many, "/", &kind, ids, 2, &n, &why),
                    400);
}

static CU_TestInfo tests[] = {
    {"u64", test_u64},
    {"b64", test_b64},
    {"metadata", test_metadata},
    {"checksum", test_checksum},
    {"id", test_id},
    {"concat", test_concat},
    CU_TEST_INFO_NULL,
};
UNIT_SUITE("tus_parse", NULL, NULL, tests);
