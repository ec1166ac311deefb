/* syncsite.c: sync policy and counts (see syncsite.h). */
#include "lib/util/syncsite.h"

#include <stdlib.h>
#include <string.h>

/* Written once before the process's threads exist, read-only after. */
static bool              sync_off;
static _Atomic uint64_t *count_data, *count_dir;

void
sync_sites_setup(bool off, _Atomic uint64_t *data_count,
                 _Atomic uint64_t *dir_count)
{
    sync_off = off;
    count_data = data_count;
    count_dir = dir_count;
}

bool
sync_sites_off(void)
{
    return sync_off;
}

static bool
is_dir_site(const char *site)
{
    size_t n = strlen(site);

    return n >= 4 && strcmp(site + n - 4, "_dir") == 0;
}

bool
sync_site_skipped(const char *site)
{
#ifdef HFS_SYNC_SITES
    const char *skip = getenv("HFS_SKIP_SYNC");
    if (skip != NULL && strcmp(skip, site) == 0)
        return true;
#endif
    if (sync_off)
        return true;
    _Atomic uint64_t *n = is_dir_site(site) ? count_dir : count_data;
    if (n != NULL)
        (*n)++;
    return false;
}
