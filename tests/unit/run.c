/* run.c: the CUnit runner. Prints one PASS/FAIL line per test and a closing
 * "unit: N passed, N failed" line that tests/run.sh adds to the total. */
#define _GNU_SOURCE
#include "tests/unit/unit.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUITES 64

static struct {
    const char        *name;
    CU_InitializeFunc  init;
    CU_CleanupFunc     fini;
    CU_TestInfo       *tests;
} suites[MAX_SUITES];
static int nsuites;

void
unit_record_suite(const char *name, CU_InitializeFunc init, CU_CleanupFunc fini,
                  CU_TestInfo *tests)
{
    if (nsuites == MAX_SUITES)
        abort();
    suites[nsuites].name = name;
    suites[nsuites].init = init;
    suites[nsuites].fini = fini;
    suites[nsuites].tests = tests;
    nsuites++;
}

char *
unit_mkdtemp(void)
{
    const char *t = getenv("TMPDIR");
    char *p = NULL;
    if (asprintf(&p, "%s/hfs-unit-XXXXXX", t ? t : "/tmp") < 0 || !mkdtemp(p))
        abort();
    return p;
}

void
unit_rmtree(const char *path)
{
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", path) >= 0) {
        int rc = system(cmd);
        (void)rc;
    }
    free(cmd);
}

static int failed_in_test;

static void
on_test_start(const CU_pTest t, const CU_pSuite s)
{
    (void)t; (void)s;
    failed_in_test = 0;
}

static void
on_test_complete(const CU_pTest t, const CU_pSuite s, const CU_pFailureRecord f)
{
    for (CU_pFailureRecord r = f; r; r = r->pNext) {
        failed_in_test = 1;
        printf("    %s:%u: %s\n", r->strFileName, r->uiLineNumber,
               r->strCondition);
    }
    printf("%s: %s/%s\n", failed_in_test ? "FAIL" : "PASS", s->pName, t->pName);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (int i = 0; i < nsuites; i++) {
        if (only && strcmp(only, suites[i].name) != 0)
            continue;
        CU_pSuite s = CU_add_suite(suites[i].name, suites[i].init,
                                   suites[i].fini);
        for (CU_TestInfo *t = suites[i].tests; t->pName; t++)
            CU_add_test(s, t->pName, t->pTestFunc);
    }
    CU_set_test_start_handler(on_test_start);
    CU_set_test_complete_handler(on_test_complete);
    CU_run_all_tests();
    unsigned run = CU_get_number_of_tests_run();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned suite_fail = CU_get_number_of_suites_failed();
    printf("unit: %u passed, %u failed\n", run - failed, failed + suite_fail);
    CU_cleanup_registry();
    return failed + suite_fail ? 1 : 0;
}
