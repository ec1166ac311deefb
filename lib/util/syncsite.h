/* syncsite: names each fsync/fdatasync the durability promise rests on.
 *
 * SYNC_AT("site", call) is exactly `call` in every normal build. Only a
 * build made with -DHFS_SYNC_SITES (`make power-cut-sites`, never
 * installed) reads the environment variable HFS_SKIP_SYNC and, for the one
 * site it names, skips the call and reports success: that is how the
 * power-cut test shows each sync is needed (docs/recovery.md). */
#ifndef LIB_UTIL_SYNCSITE_H
#define LIB_UTIL_SYNCSITE_H

#ifdef HFS_SYNC_SITES
int sync_site_skipped(const char *site);
#define SYNC_AT(site, call) (sync_site_skipped(site) ? 0 : (call))
#else
#define SYNC_AT(site, call) (call)
#endif

#endif
