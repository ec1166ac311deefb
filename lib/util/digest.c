/* digest.c: SHA-256 whose state can leave the process.
 *
 * EVP hides its state, so a hash cannot be carried from one worker to
 * another through shared memory. The low-level SHA256_CTX is a public
 * struct and runs the same code (SHA-NI or AVX2 where the CPU has them);
 * OpenSSL 3 marks it deprecated, not removed, and this file is the only
 * user. Its layout is the one md32_common.h defines: h, the bit count in
 * Nl/Nh, the pending bytes in data, their count in num. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "lib/util/digest.h"

#include <errno.h>
#include <openssl/sha.h>
#include <string.h>
#include <unistd.h>

static void
to_ctx(const struct digest_sha256 *d, SHA256_CTX *c)
{
    memset(c, 0, sizeof(*c));
    memcpy(c->h, d->h, sizeof(d->h));
    c->Nl = (SHA_LONG)(d->len << 3);
    c->Nh = (SHA_LONG)(d->len >> 29);
    c->num = (unsigned)(d->len % 64);
    memcpy(c->data, d->tail, c->num);
    c->md_len = SHA256_DIGEST_LENGTH;
}

static void
from_ctx(const SHA256_CTX *c, uint64_t len, struct digest_sha256 *d)
{
    d->len = len;
    memcpy(d->h, c->h, sizeof(d->h));
    memcpy(d->tail, c->data, len % 64);
}

void
digest_sha256_init(struct digest_sha256 *d)
{
    SHA256_CTX c;
    SHA256_Init(&c);
    memset(d, 0, sizeof(*d));
    from_ctx(&c, 0, d);
}

void
digest_sha256_update(struct digest_sha256 *d, const void *p, size_t n)
{
    SHA256_CTX c;
    to_ctx(d, &c);
    SHA256_Update(&c, p, n);
    from_ctx(&c, d->len + n, d);
}

void
digest_sha256_final(const struct digest_sha256 *d, uint8_t out[32])
{
    SHA256_CTX c;
    to_ctx(d, &c);
    SHA256_Final(out, &c);
}

int
digest_sha256_fd_continue(struct digest_sha256 *d, int fd, uint64_t size)
{
    /* Per thread: pool threads hash concurrently, and 256 KiB is too big
     * for their stacks to carry comfortably. */
    static __thread unsigned char buf[256 * 1024];
    SHA256_CTX c;
    uint64_t off = d->len;

    to_ctx(d, &c);
    while (off < size) {
        size_t want = size - off < sizeof(buf) ? (size_t)(size - off)
                                               : sizeof(buf);
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        SHA256_Update(&c, buf, (size_t)n);
        off += (uint64_t)n;
    }
    from_ctx(&c, off > d->len ? off : d->len, d);
    return 0;
}
