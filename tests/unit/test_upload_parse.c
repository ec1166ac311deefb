/* test_upload_parse.c: worker/upload_parse, the pure header parsing of a
 * PUT upload (session IDs, digests, decimal headers, switched-off
 * protocols). */
#include "tests/unit/unit.h"
#include "lib/conf/conf.h"
#include "lib/http/request.h"
#include "lib/http/contentdigest.h"
#include "worker/upload_parse.h"

#include <stdint.h>
#include <string.h>

#define B64_0_31 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define HEX_0_31 "000102030405060708090a0b0c0d0e0f" \
                 "101112131415161718191a1b1c1d1e1f"

static char buf[2048];
static size_t used;
static struct http_request req;

/* A request whose head holds only the headers given with hdr(). */
static void
reset(void)
{
    memset(&req, 0, sizeof(req));
    memset(buf, 0, sizeof(buf));
    strcpy(buf, "/f");
    used = 3;
    req.target = buf;
    req.content_length = -1;
}

static void
hdr(const char *name, const char *value)
{
    struct http_header *h = &req.headers[req.nheaders++];
    h->name = (uint16_t)used;
    h->name_len = (uint16_t)strlen(name);
    strcpy(buf + used, name);
    used += strlen(name) + 1;
    h->value = (uint16_t)used;
    h->value_len = (uint16_t)strlen(value);
    strcpy(buf + used, value);
    used += strlen(value) + 1;
}

static void
test_session_id(void)
{
    char id[UPLOAD_SESSION_ID_MAX + 2];

    CU_ASSERT_TRUE(upload_session_id_valid("abc-DEF_0.9"));
    CU_ASSERT_FALSE(upload_session_id_valid(""));
    CU_ASSERT_FALSE(upload_session_id_valid("a b"));
    CU_ASSERT_FALSE(upload_session_id_valid("a/b"));
    CU_ASSERT_FALSE(upload_session_id_valid("a%2fb"));
    memset(id, 'x', sizeof(id));
    id[UPLOAD_SESSION_ID_MAX] = '\0';
    CU_ASSERT_TRUE(upload_session_id_valid(id));        /* 128: the most */
    id[UPLOAD_SESSION_ID_MAX] = 'x';
    id[UPLOAD_SESSION_ID_MAX + 1] = '\0';
    CU_ASSERT_FALSE(upload_session_id_valid(id));
}

static int
digest_of(const char *name, const char *value, uint8_t out[32])
{
    reset();
    if (name)
        hdr(name, value);
    memset(out, 0xee, 32);
    return http_content_sha256(&req, out);
}

static void
expect_0_31(const uint8_t out[32])
{
    for (int i = 0; i < 32; i++)
        CU_ASSERT_EQUAL(out[i], i);
}

static void
test_digest(void)
{
    uint8_t out[32];

    CU_ASSERT_EQUAL(digest_of(NULL, NULL, out), 0);
    CU_ASSERT_EQUAL(digest_of("X-Content-SHA256", HEX_0_31, out), 1);
    expect_0_31(out);
    CU_ASSERT_EQUAL(digest_of("x-content-sha256", HEX_0_31, out), 1);
    CU_ASSERT_EQUAL(digest_of("X-Content-SHA256", "00", out), -1);
    CU_ASSERT_EQUAL(digest_of("X-Content-SHA256",
                              "zz0102030405060708090a0b0c0d0e0f"
                              "101112131415161718191a1b1c1d1e1f", out), -1);
    CU_ASSERT_EQUAL(digest_of("Digest", "SHA-256=" B64_0_31, out), 1);
    expect_0_31(out);
    CU_ASSERT_EQUAL(digest_of("Digest", "md5=abc, SHA-256=" B64_0_31, out),
                    1);
    expect_0_31(out);
    CU_ASSERT_EQUAL(digest_of("Digest", "md5=abc", out), 0);
    CU_ASSERT_EQUAL(digest_of("Digest", "SHA-256=AAAA", out), -1);
    CU_ASSERT_EQUAL(digest_of("Repr-Digest", "sha-256=:" B64_0_31 ":", out),
                    1);
    expect_0_31(out);
    CU_ASSERT_EQUAL(digest_of("Repr-Digest", "sha-512=:AAAA:", out), 0);
    CU_ASSERT_EQUAL(digest_of("Repr-Digest", "sha-256=:" B64_0_31, out), -1);
    /* X-Content-SHA256 wins over the others. */
    reset();
    hdr("Digest", "SHA-256=AAAA");
    hdr("X-Content-SHA256", HEX_0_31);
    CU_ASSERT_EQUAL(http_content_sha256(&req, out), 1);
    expect_0_31(out);
}

static void
test_header_number(void)
{
    int64_t v;

    reset();
    CU_ASSERT_EQUAL(upload_header_number(&req, "X-Chunk-Number", &v), 0);
    CU_ASSERT_EQUAL(v, -1);
    hdr("X-Chunk-Number", "42");
    hdr("X-Total-Chunks", "4x");
    hdr("X-Total-Size", "-1");
    CU_ASSERT_EQUAL(upload_header_number(&req, "X-Chunk-Number", &v), 1);
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT_EQUAL(upload_header_number(&req, "X-Total-Chunks", &v), -1);
    CU_ASSERT_EQUAL(upload_header_number(&req, "X-Total-Size", &v), -1);
}

static void
test_check_enabled(void)
{
    static struct conf cf;
    const char *why = NULL;

    cf.chunked_uploads = true;
    cf.resumable_uploads = true;
    reset();
    hdr("X-Upload-Session-ID", "s1");
    hdr("Content-Range", "bytes 0-9/10");
    CU_ASSERT_EQUAL(upload_check_enabled(&cf, &req, &why), 0);
    cf.chunked_uploads = false;
    CU_ASSERT_EQUAL(upload_check_enabled(&cf, &req, &why), 501);
    CU_ASSERT_PTR_NOT_NULL(why);
    reset();
    hdr("X-Chunk-Number", "0");
    CU_ASSERT_EQUAL(upload_check_enabled(&cf, &req, &why), 501);
    /* Content-Range alone is the resumable plain PUT. */
    reset();
    hdr("Content-Range", "bytes 0-9/10");
    CU_ASSERT_EQUAL(upload_check_enabled(&cf, &req, &why), 0);
    cf.resumable_uploads = false;
    CU_ASSERT_EQUAL(upload_check_enabled(&cf, &req, &why), 501);
    reset();
    CU_ASSERT_EQUAL(upload_check_enabled(&cf, &req, &why), 0);
}

static CU_TestInfo tests[] = {
    {"session_id", test_session_id},
    {"digest", test_digest},
    {"header_number", test_header_number},
    {"check_enabled", test_check_enabled},
    CU_TEST_INFO_NULL,
};
UNIT_SUITE("upload_parse", NULL, NULL, tests);
