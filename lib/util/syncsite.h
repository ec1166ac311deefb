/* syncsite: names each fsync/fdatasync the durability promise rests on,
 * counts the ones made and skips them all under storage.sync = "off".
 *
 * SYNC_AT("site", call) makes `call` unless the process was set up with
 * sync_sites_setup(true, ...) ("off": every site is skipped and reports
 * success), and counts it as a data sync, or as a directory sync when the
 * site's name ends in "_dir". A process that never calls sync_sites_setup
 * (the master: recovery, the start's probe) makes every sync and counts
 * none.
 *
 * A build made with -DHFS_SYNC_SITES (`make power-cut-sites`, never
 * installed) also reads the environment variable HFS_SKIP_SYNC and, for the
 * one site it names, skips the call and reports success: that is how the
 * power-cut test shows each sync is needed (docs/recovery.md). */
#ifndef LIB_UTIL_SYNCSITE_H
#define LIB_UTIL_SYNCSITE_H

#include <stdbool.h>
#include <stdint.h>

/* Once per process, before it starts threads; the counters (shm/stats.h)
 * may be NULL. Process-wide like the log's role: every sync site of the
 * process obeys the same storage.sync, and lib/store stays unaware of it. */
void sync_sites_setup(bool off, _Atomic uint64_t *data_count,
                      _Atomic uint64_t *dir_count);
/* True: skip this site's call. False: it was counted, make it. */
bool sync_site_skipped(const char *site);
/* True under storage.sync = "off". */
bool sync_sites_off(void);

#define SYNC_AT(site, call) (sync_site_skipped(site) ? 0 : (call))

#endif
