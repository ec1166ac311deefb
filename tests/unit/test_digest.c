/* test_digest.c: lib/util/digest's SHA-256 carried as plain bytes, against
 * OpenSSL's one-shot EVP digest of the same bytes. */
#include "tests/unit/unit.h"
#include "lib/util/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 5000

static unsigned char data[N];

static void
reference(const void *p, size_t n, uint8_t out[32])
{
    unsigned len = 0;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static void
fill(void)
{
    for (size_t i = 0; i < N; i++)
        data[i] = (unsigned char)(i * 131 + (i >> 7));
}

/* Every split of the input into two pieces, the state copied as bytes
 * between them (as a worker hands it on through shared memory). */
static void
test_split_anywhere_and_copied(void)
{
    uint8_t want[32], got[32];
    fill();
    reference(data, N, want);
    for (size_t cut = 0; cut <= 200; cut++) {
        struct digest_sha256 a, b;
        digest_sha256_init(&a);
        digest_sha256_update(&a, data, cut);
        memcpy(&b, &a, sizeof(b));
        memset(&a, 0xa5, sizeof(a));
        digest_sha256_update(&b, data + cut, N - cut);
        CU_ASSERT_EQUAL(b.len, N);
        digest_sha256_final(&b, got);
        CU_ASSERT(memcmp(got, want, 32) == 0);
    }
}

/* Many small pieces of odd sizes; final leaves the state usable. */
static void
test_small_pieces_and_final_twice(void)
{
    uint8_t want[32], got[32], again[32];
    struct digest_sha256 d;
    size_t off = 0, step = 1;
    fill();
    reference(data, N, want);
    digest_sha256_init(&d);
    while (off < N) {
        size_t n = step < N - off ? step : N - off;
        digest_sha256_update(&d, data + off, n);
        off += n;
        step = step % 97 + 13;
    }
    digest_sha256_final(&d, got);
    digest_sha256_final(&d, again);
    CU_ASSERT(memcmp(got, want, 32) == 0);
    CU_ASSERT(memcmp(again, want, 32) == 0);
}

/* The whole of a file's first `size` bytes, read back. */
static int
file_sha(int fd, uint64_t size, uint8_t out[32])
{
    struct digest_sha256 d;
    digest_sha256_init(&d);
    if (digest_sha256_fd_continue(&d, fd, size) < 0)
        return -1;
    digest_sha256_final(&d, out);
    return 0;
}

/* The empty input, and the file read continuing a streamed prefix. */
static void
test_file_continues_a_prefix(void)
{
    uint8_t want[32], got[32];
    char path[] = "/tmp/hfs-digest-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    unlink(path);
    fill();
    CU_ASSERT_EQUAL(write(fd, data, N), N);

    reference(data, 0, want);
    CU_ASSERT_EQUAL(file_sha(fd, 0, got), 0);
    CU_ASSERT(memcmp(got, want, 32) == 0);

    reference(data, N, want);
    struct digest_sha256 d;
    digest_sha256_init(&d);
    digest_sha256_update(&d, data, 1000);
    CU_ASSERT_EQUAL(digest_sha256_fd_continue(&d, fd, N), 0);
    CU_ASSERT_EQUAL(d.len, N);
    digest_sha256_final(&d, got);
    CU_ASSERT(memcmp(got, want, 32) == 0);
    CU_ASSERT_EQUAL(file_sha(fd, N, got), 0);
    CU_ASSERT(memcmp(got, want, 32) == 0);

    /* Shorter than announced: an error, not a digest of less. */
    errno = 0;
    CU_ASSERT_EQUAL(file_sha(fd, N + 1, got), -1);
    CU_ASSERT_EQUAL(errno, EIO);
    close(fd);
}

static CU_TestInfo tests[] = {
    { "split anywhere, state copied as bytes", test_split_anywhere_and_copied },
    { "small pieces, final twice", test_small_pieces_and_final_twice },
    { "a file continues a streamed prefix", test_file_continues_a_prefix },
    CU_TEST_INFO_NULL
};
UNIT_SUITE("digest", NULL, NULL, tests);
