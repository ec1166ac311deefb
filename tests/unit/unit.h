/* unit.h: registers CUnit suites from each test file without a central list.
 *
 *   static CU_TestInfo tests[] = { {"name", fn}, CU_TEST_INFO_NULL };
 *   UNIT_SUITE("auth", NULL, NULL, tests);
 *
 * A constructor records the suite; run.c hands every recorded suite to CUnit. */
#ifndef TESTS_UNIT_UNIT_H
#define TESTS_UNIT_UNIT_H

#include <CUnit/CUnit.h>

void unit_record_suite(const char *name, CU_InitializeFunc init,
                       CU_CleanupFunc fini, CU_TestInfo *tests);

#define UNIT_SUITE(name, init, fini, tests)                               \
    static void __attribute__((constructor)) unit_reg_##tests(void)       \
    {                                                                     \
        unit_record_suite(name, init, fini, tests);                       \
    }

/* A scratch directory under $TMPDIR, removed by the caller with unit_rmtree. */
char *unit_mkdtemp(void);
void  unit_rmtree(const char *path);

#endif
