/* test_retry.c: the transient-error policy behind uploads.maxretries. */
#include "tests/unit/unit.h"

#include "lib/store/retry.h"

#include <errno.h>

static void
test_bounded(void)
{
    struct store_retry r = { .max = 2 };

    CU_ASSERT_EQUAL(store_retry(&r, ENOSPC), STORE_RETRY_RECLAIM);
    CU_ASSERT_EQUAL(store_retry(&r, EAGAIN), STORE_RETRY_NOW);
    CU_ASSERT_EQUAL(r.used, 2);
    CU_ASSERT_EQUAL(store_retry(&r, ENOSPC), STORE_RETRY_NO);
    CU_ASSERT_EQUAL(store_retry(&r, EDQUOT), STORE_RETRY_NO);
    CU_ASSERT_EQUAL(store_retry(&r, EAGAIN), STORE_RETRY_NO);
    CU_ASSERT_EQUAL(r.used, 2);
}

/* An interruption is not a failure: retried whatever the budget. */
static void
test_eintr_free(void)
{
    struct store_retry r = { .max = 0 };

    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(store_retry(&r, EINTR), STORE_RETRY_NOW);
    CU_ASSERT_EQUAL(r.used, 0);
    CU_ASSERT_EQUAL(store_retry(&r, ENOSPC), STORE_RETRY_NO);
    CU_ASSERT_EQUAL(store_retry(&r, EAGAIN), STORE_RETRY_NO);
}

static void
test_final_errors(void)
{
    static const int final[] = { EIO, EROFS, EACCES, EPERM, ENOENT, EEXIST,
                                 EBADF, EFBIG, EINVAL, ENOMEM, 0 };
    struct store_retry r = { .max = 10 };

    for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
        CU_ASSERT_EQUAL(store_retry(&r, final[i]), STORE_RETRY_NO);
    CU_ASSERT_EQUAL(r.used, 0);
    CU_ASSERT_EQUAL(store_retry(&r, EDQUOT), STORE_RETRY_RECLAIM);
}

static CU_TestInfo tests[] = {
    { "bounded by maxretries", test_bounded },
    { "EINTR is never counted", test_eintr_free },
    { "other errors are final", test_final_errors },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("retry", NULL, NULL, tests);
