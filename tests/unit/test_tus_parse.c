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

static CU_TestInfo tests[] = {
    {"u64", test_u64},
    {"b64", test_b64},
    {"metadata", test_metadata},
    {"checksum", test_checksum},
    {"id", test_id},
    CU_TEST_INFO_NULL,
};
UNIT_SUITE("tus_parse", NULL, NULL, tests);
