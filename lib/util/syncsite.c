/* syncsite.c: the test-only sync skipper (see syncsite.h). */
#include "lib/util/syncsite.h"

#ifdef HFS_SYNC_SITES
#include <stdlib.h>
#include <string.h>

int
sync_site_skipped(const char *site)
{
    const char *skip = getenv("HFS_SKIP_SYNC");
    return skip != NULL && strcmp(skip, site) == 0;
}
#else
/* ISO C wants something in a translation unit. */
typedef int syncsite_unused;
#endif
