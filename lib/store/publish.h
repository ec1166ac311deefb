/* publish: staging file -> final path, atomically and durably.
 *
 * A finished upload becomes visible under its final name only once its
 * bytes are on disk, never replaces an existing file, and survives a power
 * cut once store_publish has returned STORE_PUBLISHED.
 *
 * Every call here may block for a long time (fsync, fdatasync, a streaming
 * compare of a large file): run them off the event loop, from the worker's
 * thread pool. They keep no state of their own and are thread-safe.
 *
 * The staging directory must be on the same filesystem as the storage root
 * (linkat cannot cross filesystems, EXDEV); the caller checks st_dev. */
#ifndef LIB_STORE_PUBLISH_H
#define LIB_STORE_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_STAGING_NAME_LEN  48      /* "up-" pid "-" 32 hex NUL, rounded */

enum store_publish_result {
    STORE_PUBLISH_ERROR = -1,   /* errno set; ENOSPC/EDQUOT -> 507 */
    STORE_PUBLISHED = 0,        /* new file visible and durable */
    STORE_IDENTICAL_EXISTS = 1, /* same bytes already there -> success */
    STORE_CONFLICT = 2,         /* different file (or non-file) there -> 409 */
};

/* Create a new, uniquely named (getrandom) file in staging_fd, mode 0644,
 * open O_RDWR. name_out receives its name, "up-<pid>-<32 hex>" (len >=
 * STORE_STAGING_NAME_LEN). Returns 0, or -1 with errno set and a reason in
 * err. */
int store_staging_create(int staging_fd, char *name_out, size_t len,
                         int *fd_r, char *err, size_t errlen);

/* Modes of what publication makes under the storage root, applied with
 * fchmod (the umask does not apply): storage.file_mode, storage.dir_mode. */
struct store_modes {
    mode_t file;            /* the published file */
    mode_t dir;             /* every directory created on the way */
};

/* The pid of the process that created the staging file `name`, or -1 when
 * name is not such a file (older "up-<hex>" names included). */
pid_t store_staging_owner(const char *name);

/* Publish the staging file staging_name (in staging_fd, whose open fd is
 * data_fd) at rel below root_fd, creating missing directories. rel must be
 * a store_path_decode result; root_fd and staging_fd must be O_RDONLY
 * directory fds (root_fd and the directories below it are fsynced; the
 * staging directory is not: a staging name back after a power cut is
 * recovery's to remove). The file gets modes->file before its
 * name appears (also on CONFLICT and ERROR: it is still ours then);
 * directories made on the way get modes->dir. An existing file
 * (IDENTICAL_EXISTS) keeps its mode.
 *
 * PUBLISHED and IDENTICAL_EXISTS consume the staging name. CONFLICT and
 * ERROR leave it for the caller (retry later, or store_staging_discard).
 * On CONFLICT and ERROR nothing new is visible at rel, though directories
 * created on the way may remain (empty). On PUBLISHED and IDENTICAL_EXISTS
 * a non-empty err is a warning to log: the file is there and durable, but
 * the staging name could not be removed (recovery sweeps it). data_fd stays
 * open in every case. */
int store_publish(int staging_fd, const char *staging_name, int data_fd,
                  int root_fd, const char *rel,
                  const struct store_modes *modes, char *err, size_t errlen);

/* Group commit (storage.sync = "batch", worker/commit.c): store_publish
 * without any directory sync. The data is synced before the name appears
 * and the staging name is dropped, as above; but PUBLISHED and
 * IDENTICAL_EXISTS here mean "visible, not yet durable": the caller must
 * store_sync_dir every directory from root_fd down to rel's own (rel's
 * proper prefixes: "", "a", "a/b" for "a/b/f") before it reports success,
 * and store_unpublish rel if one of those syncs fails. */
int store_publish_unsynced_dirs(int staging_fd, const char *staging_name,
                                int data_fd, int root_fd, const char *rel,
                                const struct store_modes *modes, char *err,
                                size_t errlen);
/* fsync of the directory dir below root_fd ("" is root_fd itself);
 * holds_file: it is some upload's own directory (sync site publish_dir,
 * else publish_parent_dir). 0, or -1 with errno and err. */
int store_sync_dir(int root_fd, const char *dir, bool holds_file, char *err,
                   size_t errlen);
/* Takes rel's name back if it still names data_fd's file (a directory
 * sync failed: nothing may stay visible that could vanish in a power
 * cut). Keeps errno. */
void store_unpublish(int root_fd, const char *rel, int data_fd);

/* Remove a staging file. A missing name is success. Not synced: a name
 * that comes back after a power cut is swept by recovery. */
int store_staging_discard(int staging_fd, const char *name);

/* Bytes available to the daemon's (unprivileged) user on fd's filesystem,
 * for the min_free_bytes check (-> 507). Returns 0 or -1 with errno. */
int store_free_bytes(int fd, uint64_t *out);

#endif
