/* manifest_internal: what manifest.c and manifest_dir.c share, the open
 * session handle and two helpers. Private to lib/store/manifest*.c. */
#ifndef LIB_STORE_MANIFEST_INTERNAL_H
#define LIB_STORE_MANIFEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/store/manifest.h"
#include "lib/util/syncsite.h"

struct manifest {
    int      dfd, fd, datafd;
    uint64_t valid_end;                 /* records up to here were checked */
    uint32_t records;                   /* ... and there are this many */
    int      failed;                    /* a write or sync failed: no more */
    uint32_t syncs;                     /* fsyncs/fdatasyncs made through it */
    char     hex[MANIFEST_KEY_HEXLEN + 1];
};

/* n syncs about to be made through m (none under storage.sync = off,
 * where SYNC_AT skips them). */
static inline void
manifest_count_syncs(struct manifest *m, uint32_t n)
{
    if (!sync_sites_off())
        m->syncs += n;
}

/* Formats err (if given), sets errno = e, returns -1. */
int manifest_fail(char *err, size_t errlen, int e, const char *fmt, ...);
/* pwrite of all n bytes at off, retrying EINTR; a zero write is ENOSPC. */
int manifest_pwrite_all(int fd, const unsigned char *p, size_t n,
                        uint64_t off);

#endif
