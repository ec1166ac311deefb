/* test_ietf_parse.c: worker/ietf_parse, the pure header parsing of the
 * IETF resumable-upload draft (Structured Field booleans and integers, the
 * interop version, what each version changed, problem documents, ids). */
#include "tests/unit/unit.h"
#include "worker/ietf_parse.h"

#include <stdint.h>
#include <string.h>

static void
test_bool(void)
{
    bool b = false;
    CU_ASSERT_EQUAL(ietf_sf_bool("?1", &b), 0);
    CU_ASSERT_TRUE(b);
    CU_ASSERT_EQUAL(ietf_sf_bool("?0", &b), 0);
    CU_ASSERT_FALSE(b);
    CU_ASSERT_EQUAL(ietf_sf_bool("?1;foo", &b), 0);           /* params */
    CU_ASSERT_TRUE(b);
    CU_ASSERT_EQUAL(ietf_sf_bool("?0;a=1;*b=\"x\"", &b), 0);
    CU_ASSERT_EQUAL(ietf_sf_bool(" ?1 ", &b), 0);
    b = true;
    CU_ASSERT_EQUAL(ietf_sf_bool(NULL, &b), -1);
    CU_ASSERT_EQUAL(ietf_sf_bool("", &b), -1);
    CU_ASSERT_EQUAL(ietf_sf_bool("1", &b), -1);
    CU_ASSERT_EQUAL(ietf_sf_bool("true", &b), -1);
    CU_ASSERT_EQUAL(ietf_sf_bool("?2", &b), -1);
    CU_ASSERT_EQUAL(ietf_sf_bool("?10", &b), -1);
    CU_ASSERT_EQUAL(ietf_sf_bool("?1,?0", &b), -1);            /* a list */
    CU_ASSERT_EQUAL(ietf_sf_bool("?1;", &b), -1);
    CU_ASSERT_EQUAL(ietf_sf_bool("?1;A", &b), -1);   /* keys are lowercase */
    CU_ASSERT_EQUAL(ietf_sf_bool("?1;a=", &b), -1);
    CU_ASSERT_TRUE(b);                          /* untouched on failure */
}

static void
test_uint(void)
{
    uint64_t v = 7;
    CU_ASSERT_EQUAL(ietf_sf_uint("0", &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(ietf_sf_uint("1048576", &v), 0);
    CU_ASSERT_EQUAL(v, 1048576);
    CU_ASSERT_EQUAL(ietf_sf_uint("999999999999999", &v), 0);   /* 15 */
    CU_ASSERT_EQUAL(v, 999999999999999ULL);
    CU_ASSERT_EQUAL(ietf_sf_uint("12;x=1", &v), 0);
    CU_ASSERT_EQUAL(v, 12);
    CU_ASSERT_EQUAL(ietf_sf_uint("1000000000000000", &v), -1);  /* 16 */
    CU_ASSERT_EQUAL(ietf_sf_uint("", &v), -1);
    CU_ASSERT_EQUAL(ietf_sf_uint(NULL, &v), -1);
    CU_ASSERT_EQUAL(ietf_sf_uint("-1", &v), -1);
    CU_ASSERT_EQUAL(ietf_sf_uint("1.5", &v), -1);
    CU_ASSERT_EQUAL(ietf_sf_uint("12a", &v), -1);
    CU_ASSERT_EQUAL(ietf_sf_uint("0x10", &v), -1);
    CU_ASSERT_EQUAL(v, 12);
}

static void
test_interop(void)
{
    int v = 0;
    for (int i = 3; i <= 8; i++) {
        char s[4] = { (char)('0' + i), '\0' };
        CU_ASSERT_EQUAL(ietf_interop_parse(s, &v), 0);
        CU_ASSERT_EQUAL(v, i);
    }
    CU_ASSERT_EQUAL(ietf_interop_parse("2", &v), -2);
    CU_ASSERT_EQUAL(v, 2);
    CU_ASSERT_EQUAL(ietf_interop_parse("9", &v), -2);
    CU_ASSERT_EQUAL(ietf_interop_parse("999999999999999", &v), -2);
    CU_ASSERT_EQUAL(v, 1000000);                 /* clamped for messages */
    CU_ASSERT_EQUAL(ietf_interop_parse(NULL, &v), -1);
    CU_ASSERT_EQUAL(ietf_interop_parse("six", &v), -1);
    CU_ASSERT_EQUAL(ietf_interop_parse("-6", &v), -1);
}

static void
test_complete(void)
{
    bool b = false;
    const char *why = NULL;
    /* Interop 3: Upload-Incomplete, inverted; Upload-Complete ignored. */
    CU_ASSERT_EQUAL(ietf_complete_parse(3, NULL, "?0", &b, &why), 0);
    CU_ASSERT_TRUE(b);
    CU_ASSERT_EQUAL(ietf_complete_parse(3, "?1", "?1", &b, &why), 0);
    CU_ASSERT_FALSE(b);
    CU_ASSERT_EQUAL(ietf_complete_parse(3, "?1", NULL, &b, &why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "Upload-Incomplete"));
    /* From 4 on: Upload-Complete. */
    CU_ASSERT_EQUAL(ietf_complete_parse(6, "?1", NULL, &b, &why), 0);
    CU_ASSERT_TRUE(b);
    CU_ASSERT_EQUAL(ietf_complete_parse(8, NULL, "?0", &b, &why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "Upload-Complete"));
    CU_ASSERT_STRING_EQUAL(ietf_complete_name(3), "Upload-Incomplete");
    CU_ASSERT_STRING_EQUAL(ietf_complete_name(5), "Upload-Complete");
    CU_ASSERT_STRING_EQUAL(ietf_complete_value(3, true), "?0");
    CU_ASSERT_STRING_EQUAL(ietf_complete_value(3, false), "?1");
    CU_ASSERT_STRING_EQUAL(ietf_complete_value(4, true), "?1");
    CU_ASSERT_STRING_EQUAL(ietf_complete_value(8, false), "?0");
}

static void
test_versions(void)
{
    CU_ASSERT_FALSE(ietf_needs_partial_ctype(5));
    CU_ASSERT_TRUE(ietf_needs_partial_ctype(6));
    CU_ASSERT_FALSE(ietf_has_limit(5));
    CU_ASSERT_TRUE(ietf_has_limit(8));
    CU_ASSERT_FALSE(ietf_has_problem(5, IETF_MISMATCHING_OFFSET));
    CU_ASSERT_TRUE(ietf_has_problem(6, IETF_MISMATCHING_OFFSET));
    CU_ASSERT_TRUE(ietf_has_problem(6, IETF_COMPLETED_UPLOAD));
    CU_ASSERT_FALSE(ietf_has_problem(9, IETF_COMPLETED_UPLOAD));
    CU_ASSERT_FALSE(ietf_has_problem(6, IETF_INCONSISTENT_LENGTH));
    CU_ASSERT_TRUE(ietf_has_problem(7, IETF_INCONSISTENT_LENGTH));
    CU_ASSERT_FALSE(ietf_has_problem(8, IETF_PROBLEM_NONE));
}

static void
test_limit_and_problem(void)
{
    char buf[256];
    ietf_limit_format(8, 1024, 60, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "max-size=1024, max-age=60");
    ietf_limit_format(6, 1024, 60, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "max-size=1024, expires=60");
    ietf_limit_format(7, 5, -1, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "max-size=5");

    size_t n = ietf_problem_json(IETF_MISMATCHING_OFFSET, 100, 5, buf,
                                 sizeof(buf));
    CU_ASSERT(n > 0 && n == strlen(buf));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "http-problem-types#mismatching-"
                                       "upload-offset\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"expected-offset\":100,"
                                       "\"provided-offset\":5}"));
    CU_ASSERT(ietf_problem_json(IETF_COMPLETED_UPLOAD, 0, 0, buf,
                                sizeof(buf)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "#completed-upload\""));
    CU_ASSERT(ietf_problem_json(IETF_INCONSISTENT_LENGTH, 0, 0, buf,
                                sizeof(buf)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "#inconsistent-upload-length\""));
    CU_ASSERT_EQUAL(ietf_problem_json(IETF_PROBLEM_NONE, 0, 0, buf,
                                      sizeof(buf)), 0);
    CU_ASSERT_EQUAL(ietf_problem_json(IETF_COMPLETED_UPLOAD, 0, 0, buf, 10),
                    0);                                /* no room */
}

static void
test_id(void)
{
    CU_ASSERT_TRUE(ietf_id_valid("0123456789abcdef0123456789abcdef"));
    CU_ASSERT_FALSE(ietf_id_valid("0123456789ABCDEF0123456789abcdef"));
    CU_ASSERT_FALSE(ietf_id_valid("0123456789abcdef0123456789abcde"));
    CU_ASSERT_FALSE(ietf_id_valid("0123456789abcdef0123456789abcdef0"));
    CU_ASSERT_FALSE(ietf_id_valid("../456789abcdef0123456789abcdef"));
    CU_ASSERT_FALSE(ietf_id_valid(""));
}

static CU_TestInfo tests[] = {
    {"bool", test_bool},
    {"uint", test_uint},
    {"interop", test_interop},
    {"complete", test_complete},
    {"versions", test_versions},
    {"limit_and_problem", test_limit_and_problem},
    {"id", test_id},
    CU_TEST_INFO_NULL,
};
UNIT_SUITE("ietf_parse", NULL, NULL, tests);
