/* test_logic.c: CUnit tests of libhfsclient's pure logic: which chunks to
 * send given what the server holds, the back-off schedule, Retry-After, and
 * the signing vectors of docs/protocol.md. Prints PASS/FAIL lines and
 * "client_c_unit: N passed, N failed" for tests/run.sh. */
#define _GNU_SOURCE
#include "hfsclient.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MiB (1ull << 20)

static void
test_ranges_parse(void)
{
    struct hfs_range r[8];
    CU_ASSERT_EQUAL(hfs_ranges_parse("", 100, r, 8), 0);
    CU_ASSERT_EQUAL(hfs_ranges_parse("0-9", 100, r, 8), 1);
    CU_ASSERT_EQUAL(r[0].start, 0);
    CU_ASSERT_EQUAL(r[0].end, 10);
    /* The daemon's example: inclusive ends, sorted. */
    CU_ASSERT_EQUAL(hfs_ranges_parse("0-1048575,3145728-4194303", 5 * MiB,
                                     r, 8), 2);
    CU_ASSERT_EQUAL(r[1].start, 3 * MiB);
    CU_ASSERT_EQUAL(r[1].end, 4 * MiB);
    /* Unsorted, overlapping and touching ranges are merged. */
    CU_ASSERT_EQUAL(hfs_ranges_parse("50-59, 0-9,10-19,55-70", 100, r, 8), 2);
    CU_ASSERT_EQUAL(r[0].start, 0);
    CU_ASSERT_EQUAL(r[0].end, 20);
    CU_ASSERT_EQUAL(r[1].start, 50);
    CU_ASSERT_EQUAL(r[1].end, 71);
    /* Malformed, inverted, past the end, too many. */
    CU_ASSERT_EQUAL(hfs_ranges_parse("0-", 100, r, 8), -1);
    CU_ASSERT_EQUAL(hfs_ranges_parse("9-0", 100, r, 8), -1);
    CU_ASSERT_EQUAL(hfs_ranges_parse("0-100", 100, r, 8), -1);
    CU_ASSERT_EQUAL(hfs_ranges_parse("0-1,x", 100, r, 8), -1);
    CU_ASSERT_EQUAL(hfs_ranges_parse("0-1,", 100, r, 8), -1);
    CU_ASSERT_EQUAL(hfs_ranges_parse("1-1,3-3,5-5", 100, r, 2), -1);
    CU_ASSERT_EQUAL(hfs_ranges_parse("99999999999999999999-1", 100, r, 8),
                    -1);
}

static void
test_plan_nothing_held(void)
{
    struct hfs_range p[8];
    /* 12 MiB in 5 MiB chunks: 5, 5, 2. */
    CU_ASSERT_EQUAL(hfs_plan_chunks(NULL, 0, 12 * MiB, 5 * MiB, p, 8), 3);
    CU_ASSERT_EQUAL(p[0].start, 0);
    CU_ASSERT_EQUAL(p[0].end, 5 * MiB);
    CU_ASSERT_EQUAL(p[2].start, 10 * MiB);
    CU_ASSERT_EQUAL(p[2].end, 12 * MiB);
    /* Default chunk size is 5 MiB; the count is returned past max. */
    CU_ASSERT_EQUAL(hfs_plan_chunks(NULL, 0, 100 * MiB, 0, p, 2), 20);
    CU_ASSERT_EQUAL(p[1].end, 10 * MiB);
}

static void
test_plan_skips_held(void)
{
    struct hfs_range p[16];
    /* Held: [0,3M) and [4M,4.5M) of 10 MiB, 2 MiB chunks: send
     * [3M,4M), [4.5M,6.5M), [6.5M,8.5M), [8.5M,10M). Nothing held is in
     * the plan, every missing byte is. */
    struct hfs_range h[2] = { { 0, 3 * MiB }, { 4 * MiB, 4 * MiB + MiB / 2 } };
    int n = hfs_plan_chunks(h, 2, 10 * MiB, 2 * MiB, p, 16);
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(p[0].start, 3 * MiB);
    CU_ASSERT_EQUAL(p[0].end, 4 * MiB);
    CU_ASSERT_EQUAL(p[1].start, 4 * MiB + MiB / 2);
    CU_ASSERT_EQUAL(p[1].end, 6 * MiB + MiB / 2);
    CU_ASSERT_EQUAL(p[3].end, 10 * MiB);
    uint64_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += p[i].end - p[i].start;
    CU_ASSERT_EQUAL(sum, 10 * MiB - 3 * MiB - MiB / 2);
    /* Everything held: nothing to send. */
    struct hfs_range all = { 0, 10 * MiB };
    CU_ASSERT_EQUAL(hfs_plan_chunks(&all, 1, 10 * MiB, 2 * MiB, p, 16), 0);
    /* Held tail only. */
    struct hfs_range tail = { 9 * MiB, 10 * MiB };
    CU_ASSERT_EQUAL(hfs_plan_chunks(&tail, 1, 10 * MiB, 5 * MiB, p, 16), 2);
    CU_ASSERT_EQUAL(p[1].start, 5 * MiB);
    CU_ASSERT_EQUAL(p[1].end, 9 * MiB);
    /* A cut chunk: the server kept 1 byte past a chunk boundary; the
     * rest is one piece, not re-sent from the boundary. */
    struct hfs_range cut = { 0, 2 * MiB + 1 };
    CU_ASSERT_EQUAL(hfs_plan_chunks(&cut, 1, 4 * MiB, 2 * MiB, p, 16), 1);
    CU_ASSERT_EQUAL(p[0].start, 2 * MiB + 1);
    CU_ASSERT_EQUAL(p[0].end, 4 * MiB);
}

static void
test_backoff(void)
{
    /* 2 s, doubled, half fixed and half jitter, capped at 60 s. */
    CU_ASSERT_DOUBLE_EQUAL(hfs_backoff(1, 2, 60, 0), 1.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(hfs_backoff(1, 2, 60, 1), 2.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(hfs_backoff(2, 2, 60, 1), 4.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(hfs_backoff(3, 2, 60, 0.5), 6.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(hfs_backoff(5, 2, 60, 1), 32.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(hfs_backoff(6, 2, 60, 1), 60.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(hfs_backoff(6, 2, 60, 0), 30.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(hfs_backoff(1000, 2, 60, 1), 60.0, 1e-9);
    /* The schedule never shrinks, with any jitter. */
    for (int n = 1; n < 10; n++)
        CU_ASSERT(hfs_backoff(n + 1, 2, 60, 0) >= hfs_backoff(n, 2, 60, 0));
}

static void
test_retry_after(void)
{
    time_t now = 1750000000;
    char date[64];
    CU_ASSERT_EQUAL(hfs_retry_after("5", now), 5);
    CU_ASSERT_EQUAL(hfs_retry_after(" 2 ", now), 2);
    CU_ASSERT_EQUAL(hfs_retry_after("0", now), 0);
    CU_ASSERT_EQUAL(hfs_retry_after("", now), -1);
    CU_ASSERT_EQUAL(hfs_retry_after("-3", now), -1);
    CU_ASSERT_EQUAL(hfs_retry_after("5s", now), -1);
    CU_ASSERT_EQUAL(hfs_retry_after("soon", now), -1);
    CU_ASSERT_EQUAL(hfs_retry_after(NULL, now), -1);
    time_t later = now + 120;
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&later));
    CU_ASSERT_EQUAL(hfs_retry_after(date, now), 120);
    /* "Sun, 15 Jun 2025 15:06:40 GMT" is 1750000000. */
    CU_ASSERT_EQUAL(hfs_retry_after("Sun, 15 Jun 2025 15:06:40 GMT", now), 0);
    CU_ASSERT_EQUAL(hfs_retry_after("Sun, 15 Jun 2025 15:06:50 GMT", now), 10);
}

static void
test_retryable(void)
{
    int yes[] = { 408, 409, 423, 429, 500, 502, 503, 504, 507 };
    int no[] = { 400, 401, 403, 404, 405, 410, 411, 413, 415, 460, 501, 505 };
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
        CU_ASSERT(hfs_status_retryable(yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        CU_ASSERT(!hfs_status_retryable(no[i]));
}

/* docs/protocol.md, "Upload authorisation": the openssl values. */
static void
sign_is(enum hfs_variant v, const char *secret, const char *url,
        const char *prefix, uint64_t size, const char *ct, const char *user,
        int64_t exp, const char *want)
{
    char out[1024];
    int rc = hfs_sign_url(v, secret, strlen(secret), url, prefix, size, ct,
                          user, exp, out, sizeof(out));
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == 0 && strcmp(out, want) != 0) {
        printf("    got  %s\n    want %s\n", out, want);
        CU_FAIL("signed URL differs");
    }
}

#define U "http://h.example/5d6f3ac0/my%20photo.jpg"

static void
test_sign_v1(void)
{
    sign_is(HFS_V1, "test-secret-1", U, "/", 1048576, NULL, NULL, -1,
            U "?v=cc5b654d9e8088a26b5971eb6434b1168c606193f7396fb54b6aad28bc06af98");
    sign_is(HFS_V1, "rotated-key-2", U, NULL, 1048576, NULL, NULL, -1,
            U "?v=12e5cfcf8c300cf313c4d1daac4fdf20e1bd5a720ed62501e03fae6c77bd613e");
    sign_is(HFS_V1, "test-secret-1", "https://h/5d6f3ac0/%C3%B1and%C3%BA.jpg",
            "/", 42, NULL, NULL, -1,
            "https://h/5d6f3ac0/%C3%B1and%C3%BA.jpg?v=8e282f72eb6318c4d820fa64a893c8a3748a84a1f3983f8deca20a5816a777d9");
    /* ejabberd's external_secret is v1, under a prefix here. */
    sign_is(HFS_V1, "test-secret-1",
            "http://h/upload/45a6b241a242c97f0492d382c390dfa335aac986/Xq3ZkT9bL2mN8pR4sV6wY1cE5gH7jK0aD3fG6hJ9/photo_1.jpg",
            "/upload/", 2048, NULL, NULL, -1,
            "http://h/upload/45a6b241a242c97f0492d382c390dfa335aac986/Xq3ZkT9bL2mN8pR4sV6wY1cE5gH7jK0aD3fG6hJ9/photo_1.jpg?v=c21dec5df0e9299c35afd623a24adf68827f4a0b80f620f3bd620e502589fa51");
}

static void
test_sign_v2(void)
{
    sign_is(HFS_V2, "test-secret-1", U, "/", 1048576, "image/jpeg", NULL, -1,
            U "?v2=61e375f9f875b794ec2a33d37421f7b6091f1885e5ab9c09a6ac3fab9314ce8d");
    sign_is(HFS_V2, "test-secret-1", U, "/", 1048576, NULL, NULL, -1,
            U "?v2=610a749a965bbda9165dfdc8b156d38459ad73271d7dabb4afd116e5de4a32fe");
    sign_is(HFS_V2, "test-secret-1", U, "/", 1048576, "", NULL, -1,
            U "?v2=2031db6828daccba3e67dd5ce41a434430f030b847d8f1141ee7030f98155c64");
}

static void
test_sign_v3_token(void)
{
    sign_is(HFS_V3, "test-secret-1", "http://h/upload/5d6f3ac0/my%20photo.jpg",
            "/upload/", 0, NULL, NULL, 1750000000,
            "http://h/upload/5d6f3ac0/my%20photo.jpg?v3=965ddb5945fabb42b4f2de53754bd502bf2d64370c3e0627896fc6a3ac8a934d&expires=1750000000");
    sign_is(HFS_TOKEN, "test-secret-1", "http://h/upload/uuid/my%20photo.jpg",
            "/upload/", 1048576, NULL, "alice@example.org", 1750003600,
            "http://h/upload/uuid/my%20photo.jpg?token=MkYBWAR2CbKvB445yLXbcd0Z41iIK1llkc0Pb6LUQLw%3D&user=alice%40example.org&expiry=1750003600");
}

static void
test_sign_refuses(void)
{
    char out[512];
    const char *k = "k";
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_V1, k, 1, U "?x=1", "/", 1, NULL, NULL,
                                 -1, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_V1, k, 1, "http://h/", "/", 1, NULL,
                                 NULL, -1, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_V1, k, 1, U, "/upload/", 1, NULL, NULL,
                                 -1, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_V1, k, 1, "http://h/a%2", "/", 1, NULL,
                                 NULL, -1, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_V1, k, 1, "http://h/a%00b", "/", 1, NULL,
                                 NULL, -1, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_V3, k, 1, U, "/", 1, NULL, NULL, -1,
                                 out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_TOKEN, k, 1, U, "/", 1, NULL, NULL,
                                 1750003600, out, sizeof(out)), -1);
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_V1, k, 1, U, "/", 1, NULL, NULL, -1,
                                 out, 20), -1);
    CU_ASSERT_EQUAL(hfs_sign_url(HFS_V1, k, 0, U, "/", 1, NULL, NULL, -1,
                                 out, sizeof(out)), -1);
}

static CU_TestInfo tests[] = {
    { "ranges_parse", test_ranges_parse },
    { "plan_nothing_held", test_plan_nothing_held },
    { "plan_skips_held", test_plan_skips_held },
    { "backoff", test_backoff },
    { "retry_after", test_retry_after },
    { "retryable", test_retryable },
    { "sign_v1", test_sign_v1 },
    { "sign_v2", test_sign_v2 },
    { "sign_v3_token", test_sign_v3_token },
    { "sign_refuses", test_sign_refuses },
    CU_TEST_INFO_NULL
};

static int failed_in_test;

static void
on_start(const CU_pTest t, const CU_pSuite s)
{
    (void)t; (void)s;
    failed_in_test = 0;
}

static void
on_complete(const CU_pTest t, const CU_pSuite s, const CU_pFailureRecord f)
{
    for (CU_pFailureRecord r = f; r; r = r->pNext) {
        failed_in_test = 1;
        printf("    %s:%u: %s\n", r->strFileName, r->uiLineNumber,
               r->strCondition);
    }
    printf("%s: %s/%s\n", failed_in_test ? "FAIL" : "PASS", s->pName,
           t->pName);
    fflush(stdout);
}

int
main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("hfsclient", NULL, NULL);
    for (CU_TestInfo *t = tests; t->pName; t++)
        CU_add_test(s, t->pName, t->pTestFunc);
    CU_set_test_start_handler(on_start);
    CU_set_test_complete_handler(on_complete);
    CU_run_all_tests();
    unsigned run = CU_get_number_of_tests_run();
    unsigned failed = CU_get_number_of_tests_failed();
    printf("client_c_unit: %u passed, %u failed\n", run - failed, failed);
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
