/* test_writeback.c: worker/writeback's stretch bookkeeping: which ranges
 * each job starts and waits for as the body grows. */
#include "tests/unit/unit.h"
#include "worker/writeback.h"

#include <string.h>

#define S WRITEBACK_STRETCH

static void
test_nothing_before_a_whole_stretch(void)
{
    struct wb_plan p = { .stretch = S };
    struct wb_step st;
    CU_ASSERT_FALSE(wb_plan_next(&p, 0, &st));
    CU_ASSERT_FALSE(wb_plan_next(&p, S - 1, &st));
    CU_ASSERT_EQUAL(p.started, 0);
}

static void
test_each_stretch_started_then_waited(void)
{
    struct wb_plan p = { .stretch = S };
    struct wb_step st;
    CU_ASSERT_TRUE(wb_plan_next(&p, S + 5, &st));
    CU_ASSERT_EQUAL(st.start_from, 0);
    CU_ASSERT_EQUAL(st.start_to, S);
    CU_ASSERT_EQUAL(st.wait_from, 0);        /* nothing to wait for yet */
    CU_ASSERT_EQUAL(st.wait_to, 0);
    CU_ASSERT_FALSE(wb_plan_next(&p, 2 * S - 1, &st));
    CU_ASSERT_TRUE(wb_plan_next(&p, 2 * S, &st));
    CU_ASSERT_EQUAL(st.start_from, S);
    CU_ASSERT_EQUAL(st.start_to, 2 * S);
    CU_ASSERT_EQUAL(st.wait_from, 0);        /* the first stretch */
    CU_ASSERT_EQUAL(st.wait_to, S);
    CU_ASSERT_EQUAL(p.waited, S);
    CU_ASSERT_EQUAL(p.started, 2 * S);
}

/* A job that came back late: the stretches completed meanwhile go in one
 * step, and nothing is started or waited for twice or skipped. */
static void
test_late_job_merges_stretches(void)
{
    struct wb_plan p = { .stretch = S };
    struct wb_step st;
    uint64_t started = 0, waited = 0;
    uint64_t written[] = { S, 4 * S + 7, 4 * S + 9, 5 * S, 9 * S - 1, 20 * S };
    for (size_t i = 0; i < sizeof(written) / sizeof(written[0]); i++) {
        if (!wb_plan_next(&p, written[i], &st))
            continue;
        CU_ASSERT_EQUAL(st.start_from, started);
        CU_ASSERT_EQUAL(st.wait_from, waited);
        CU_ASSERT_EQUAL(st.wait_to, started);
        CU_ASSERT_TRUE(st.start_to <= written[i]);
        CU_ASSERT_EQUAL(st.start_to % S, 0);
        CU_ASSERT_TRUE(st.start_to > st.start_from);
        waited = started;
        started = st.start_to;
    }
    CU_ASSERT_EQUAL(started, 20 * S);
    CU_ASSERT_EQUAL(waited, 8 * S);
}

/* A session's smaller stretch: whole stretches of its own size only. */
static void
test_session_stretch(void)
{
    uint64_t s = WRITEBACK_STRETCH_SESSION;
    struct wb_plan p = { .stretch = s };
    struct wb_step st;
    CU_ASSERT_TRUE(s < S);
    CU_ASSERT_FALSE(wb_plan_next(&p, s - 1, &st));
    CU_ASSERT_TRUE(wb_plan_next(&p, 5 * s + 3, &st));
    CU_ASSERT_EQUAL(st.start_from, 0);
    CU_ASSERT_EQUAL(st.start_to, 5 * s);
    CU_ASSERT_TRUE(wb_plan_next(&p, 6 * s, &st));
    CU_ASSERT_EQUAL(st.wait_to, 5 * s);
    CU_ASSERT_EQUAL(st.start_to, 6 * s);
}

static CU_TestInfo tests[] = {
    {"nothing_before_a_whole_stretch", test_nothing_before_a_whole_stretch},
    {"each_stretch_started_then_waited",
     test_each_stretch_started_then_waited},
    {"late_job_merges_stretches", test_late_job_merges_stretches},
    {"session_stretch", test_session_stretch},
    CU_TEST_INFO_NULL,
};
UNIT_SUITE("writeback", NULL, NULL, tests);
