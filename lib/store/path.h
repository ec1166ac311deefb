/* path: URL path -> safe relative path -> fds confined to the storage root.
 *
 * Every name a client sends goes through store_path_decode; every file we
 * open under the storage root goes through store_open_parent/store_open_file,
 * which re-check the name and never follow a symlink, so nothing planted
 * under the root can redirect a PUT or GET outside it.
 *
 * Decoded names are byte strings: valid UTF-8 is not required, because
 * Prosody and ejabberd pass the client's file name through unchanged and the
 * filesystem stores bytes. Only bytes that are dangerous to us are refused:
 * NUL, control bytes (< 0x20, 0x7f) and '\' (a path separator to Windows
 * tools and some front proxies).
 *
 * Components starting with '.' are refused, not only "." and "..": names
 * like ".htaccess" or ".git" are read as configuration by web servers that
 * may share the directory, and keeping every dot-name out of the client
 * namespace leaves it free for our own files under the root. XMPP clients
 * name uploads after the original file or a random id, so the cost is a 400
 * for the rare client that uploads a hidden file. */
#ifndef LIB_STORE_PATH_H
#define LIB_STORE_PATH_H

#include <stddef.h>
#include <sys/stat.h>

#define STORE_PATH_MAX   1024   /* decoded bytes, without the NUL */
#define STORE_NAME_MAX   255    /* one component (NAME_MAX) */
#define STORE_DEPTH_MAX  16     /* components */

/* Percent-decode the path after the URL prefix (no query string) into out,
 * NUL-terminated; outlen should be at least STORE_PATH_MAX + 1. A "%2F"
 * is refused: decoding it would change the component structure that the
 * MAC was computed over. Returns 0, or -1 with a reason in err. */
int store_path_decode(const char *raw, size_t rawlen, char *out,
                      size_t outlen, size_t *outlen_r, char *err,
                      size_t errlen);

/* Open the directory that holds rel's last component, walking from root_fd
 * one component at a time with O_NOFOLLOW. With dir_mode not 0, missing
 * directories are made with exactly that mode (fchmod: the umask does not
 * apply) and the parent of every directory on the way is fsynced, so an
 * entry made in the result is durable once the result itself is fsynced
 * (store_publish does that). root_fd must be opened O_RDONLY|O_DIRECTORY
 * (an O_PATH fd cannot be fsynced). On success
 * *dirfd_r is a new fd the caller closes and *leaf_r points into rel.
 * Returns 0, or -1 with errno set (ELOOP: a symlink on the way; ENOTDIR: a
 * non-directory on the way; EINVAL: rel is not a valid decoded path). */
int store_open_parent(int root_fd, const char *rel, mode_t dir_mode,
                      int *dirfd_r, const char **leaf_r, char *err,
                      size_t errlen);

/* The same, but syncs no directory: for a group commit (storage.sync =
 * "batch") that syncs every directory from root_fd down to the result
 * itself, once for all the uploads of the group. */
int store_open_parent_unsynced(int root_fd, const char *rel, mode_t dir_mode,
                               int *dirfd_r, const char **leaf_r, char *err,
                               size_t errlen);

/* Open rel for reading, confined below root_fd, refusing symlinks anywhere
 * and anything that is not a regular file (errno EISDIR for a directory,
 * EPERM for a fifo, socket or device). The fd has O_NONBLOCK (so a planted
 * fifo cannot block the open); it has no effect on regular files.
 * Returns 0, or -1 with errno set (ENOENT: not there). */
int store_open_file(int root_fd, const char *rel, int *fd_r,
                    struct stat *st_r, char *err, size_t errlen);

/* The storage and staging roots are held open for the daemon's life; an
 * operator may delete and re-create one under it (a restore, a remount).
 * If path no longer names the directory fd holds, open path and put it on
 * fd's number (dup3, close-on-exec: threads using the number concurrently
 * see one directory or the other, never a closed one). Nothing is created.
 * Returns 0 (fd still is path), 1 (re-opened), or -1 with errno and a
 * reason for "<key> <reason>" in err ("is missing", "is not a directory",
 * ...). Unless st_r is NULL, *st_r is then the fstat of what fd holds
 * (the stat the check made anyway: callers need not make another). */
int store_dir_refresh(const char *path, int fd, struct stat *st_r, char *err,
                      size_t errlen);

#endif
