/* digest.c: streaming SHA-256 through OpenSSL's EVP interface. */
#include "lib/util/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <unistd.h>

int
digest_sha256_fd(int fd, uint64_t size, uint8_t out[32])
{
    /* Per thread: pool threads hash concurrently, and 256 KiB is too big
     * for their stacks to carry comfortably. */
    static __thread unsigned char buf[256 * 1024];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint64_t off = 0;
    int rc = -1;

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    while (off < size) {
        size_t want = size - off < sizeof(buf) ? (size_t)(size - off)
                                               : sizeof(buf);
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            goto out;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        off += (uint64_t)n;
    }
    rc = EVP_DigestFinal_ex(ctx, out, NULL) == 1 ? 0 : -1;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}
