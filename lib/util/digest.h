/* digest: SHA-256 of a file's first bytes, read with pread.
 *
 * Blocking I/O over a whole file: call it from a sync-pool thread only. */
#ifndef LIB_UTIL_DIGEST_H
#define LIB_UTIL_DIGEST_H

#include <stdint.h>

/* 0, or -1 with errno (EIO if the file is shorter than size). */
int digest_sha256_fd(int fd, uint64_t size, uint8_t out[32]);

#endif
