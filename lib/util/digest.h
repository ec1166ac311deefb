/* digest: SHA-256, streamed or read back from a file.
 *
 * struct digest_sha256 is a hash in progress that is plain bytes: it can be
 * copied into shared memory by one process and continued by another, so a
 * resumable upload hashes each chunk as it arrives instead of re-reading
 * the whole file at publication (worker/session_publish.c).
 *
 * digest_sha256_fd_continue does blocking I/O over a whole file:
 * sync-pool threads only. */
#ifndef LIB_UTIL_DIGEST_H
#define LIB_UTIL_DIGEST_H

#include <stddef.h>
#include <stdint.h>

struct digest_sha256 {
    uint64_t len;                 /* bytes hashed so far */
    uint32_t h[8];                /* the state after the whole blocks */
    uint8_t  tail[64];            /* the last len % 64 bytes */
};

void digest_sha256_init(struct digest_sha256 *d);
void digest_sha256_update(struct digest_sha256 *d, const void *p, size_t n);
/* d itself is left as it was: it may still be continued. */
void digest_sha256_final(const struct digest_sha256 *d, uint8_t out[32]);

/* Continues d with the file's bytes [d->len, size): 0, or -1 with errno
 * (EIO if the file is shorter than size). */
int digest_sha256_fd_continue(struct digest_sha256 *d, int fd, uint64_t size);

#endif
