/* test_auth.c: lib/auth against MACs computed independently.
 *
 * Every expected MAC below was computed with the openssl command line (and
 * cross-checked with Python's hmac module), never with the code under test;
 * docs/protocol.md shows the commands. Secrets: K1 = "test-secret-1",
 * K2 = "rotated-key-2". */
#include "tests/unit/unit.h"
#include "lib/auth/auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* printf '5d6f3ac0/my photo.jpg 1048576' | openssl dgst -sha256 -hmac K */
#define V1_K1 \
    "cc5b654d9e8088a26b5971eb6434b1168c606193f7396fb54b6aad28bc06af98"
#define V1_K2 \
    "12e5cfcf8c300cf313c4d1daac4fdf20e1bd5a720ed62501e03fae6c77bd613e"
/* '5d6f3ac0/my photo.jpg\0' '1048576\0' 'image/jpeg' */
#define V2_JPG \
    "61e375f9f875b794ec2a33d37421f7b6091f1885e5ab9c09a6ac3fab9314ce8d"
/* the same with 'application/octet-stream' */
#define V2_OCT \
    "610a749a965bbda9165dfdc8b156d38459ad73271d7dabb4afd116e5de4a32fe"
/* the same with '' (a slot request with content-type="") */
#define V2_EMPTY \
    "2031db6828daccba3e67dd5ce41a434430f030b847d8f1141ee7030f98155c64"
/* ejabberd: '<sha1 of alice@example.org>/<rand>/photo_1.jpg 2048' */
#define EJ_K1 \
    "c21dec5df0e9299c35afd623a24adf68827f4a0b80f620f3bd620e502589fa51"
#define EJ_PATH "45a6b241a242c97f0492d382c390dfa335aac986/" \
                "Xq3ZkT9bL2mN8pR4sV6wY1cE5gH7jK0aD3fG6hJ9/photo_1.jpg"
/* 'PUT\n1750000000\n/upload/5d6f3ac0/my photo.jpg' */
#define V3_UP \
    "965ddb5945fabb42b4f2de53754bd502bf2d64370c3e0627896fc6a3ac8a934d"
#define V3_UP_K2 \
    "99c48c9f7ec670240e89781fe816e058b7e16d7c73d55a4c12709590ee983de4"
/* 'PUT\n1750000000\n/5d6f3ac0/my photo.jpg' */
#define V3_ROOT \
    "6088e149d83e9789a151cfdbc141243b59babb109589dbdccc60748bc6099c0d"
/* base64 of 'alice@example.org\0my photo.jpg\01048576\01750000000' */
#define TOK_STD "MkYBWAR2CbKvB445yLXbcd0Z41iIK1llkc0Pb6LUQLw="
/* '...\01750000000\01750086400\0network_resilient' */
#define TOK_NR  "TPxna4hVuAIToqyDxrn11F4+cDgz0lIdS8kmqDrqay0="
/* '5d6f3ac0/\xc3\xb1and\xc3\xba.jpg 42' (UTF-8 "ñandú.jpg") */
#define V1_UTF8 \
    "8e282f72eb6318c4d820fa64a893c8a3748a84a1f3983f8deca20a5816a777d9"
/* '5d6f3ac0/empty.txt 0' */
#define V1_EMPTY \
    "736248b0219680bf11f8a8934089074c018b34400e8b71a749f6e1fd2f7cdd48"

#define PATH    "5d6f3ac0/my photo.jpg"
#define SIZE    1048576
#define EXP3    1750000000
#define TOK_Q   "token=" TOK_STD "&user=alice@example.org&expiry=1750003600"
#define TOKNR_Q "token=" TOK_NR "&user=alice@example.org&expiry=1750086400"

#define KEY(s)  { .key = (const unsigned char *)(s), .len = sizeof(s) - 1 }

static const struct auth_key K1 = KEY("test-secret-1");
static const struct auth_key K2 = KEY("rotated-key-2");

static struct auth_request
mkreq(const char *path, const char *query, int64_t len, const char *ct)
{
    struct auth_request r = {
        "PUT", "/upload/", path, strlen(path), query, len, ct, EXP3 - 1000
    };
    return r;
}

/* Runs auth_check and asserts what holds for every answer. */
static enum auth_status
run(const struct auth_key *keys, size_t nkeys, const struct auth_request *r,
    time_t max_lifetime, struct auth_result *res)
{
    int rc = auth_check(keys, nkeys, r, max_lifetime, res);

    CU_ASSERT_EQUAL(rc == 0, res->status == AUTH_OK);
    CU_ASSERT_PTR_NOT_NULL(res->reason);
    return res->status;
}

static enum auth_status
run1(const struct auth_request *r, struct auth_result *res)
{
    return run(&K1, 1, r, 0, res);
}

static void
test_v1_vector(void)
{
    struct auth_request r = mkreq(PATH, "v=" V1_K1, SIZE, NULL);
    struct auth_result  res;
    char                upper[80];
    size_t              i;

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_V1);
    CU_ASSERT_EQUAL(res.signed_size, SIZE);
    CU_ASSERT_EQUAL(res.expires, 0);
    /* v1 does not bind the content type */
    r.content_type = "image/png";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    /* hex digits in either case */
    snprintf(upper, sizeof(upper), "v=%s", V1_K1);
    for (i = 2; upper[i]; i++)
        upper[i] = (char)toupper((unsigned char)upper[i]);
    r.query = upper;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
}

static void
test_wrong_key(void)
{
    struct auth_request r = mkreq(PATH, "v=" V1_K1, SIZE, NULL);
    struct auth_result  res;

    CU_ASSERT_EQUAL(run(&K2, 1, &r, 0, &res), AUTH_BAD_MAC);
    CU_ASSERT_EQUAL(res.variant, AUTH_V1);
    CU_ASSERT_STRING_EQUAL(res.reason, "signature mismatch");
    CU_ASSERT_EQUAL(res.signed_size, -1);
}

static void
test_ejabberd_vector(void)
{
    struct auth_request r = mkreq(EJ_PATH, "v=" EJ_K1, 2048, "image/jpeg");
    struct auth_result  res;

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_V1);
    r.content_length = 2049;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
}

static void
test_v2_content_type(void)
{
    struct auth_request r = mkreq(PATH, "v2=" V2_JPG, SIZE, "image/jpeg");
    struct auth_result  res;

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_V2);
    CU_ASSERT_EQUAL(res.signed_size, SIZE);
    r.content_type = "image/png";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_type = "image/jpeg; charset=x";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_type = NULL;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_type = "";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    /* a slot requested without a type: Prosody signed its default */
    r.query = "v2=" V2_OCT;
    r.content_type = NULL;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    r.content_type = "application/octet-stream";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    r.content_type = "";        /* an empty header is not that type */
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_type = "image/jpeg";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
}

static void expect_signed(enum auth_variant v, const struct auth_request *r,
                          const char *user, time_t expires, const char *want);

/* Converse.js asks for a slot with content-type="" when the browser knows
 * no type; Prosody signs the empty string and Chromium sends an empty
 * Content-Type header. */
static void
test_v2_empty_content_type(void)
{
    struct auth_request r = mkreq(PATH, "v2=" V2_EMPTY, SIZE, "");
    struct auth_result  res;
    struct auth_key     keys[2] = { K2, K1 };

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_V2);
    CU_ASSERT_EQUAL(res.signed_size, SIZE);
    /* no header at all: "" is one of the two forms of "no type" */
    r.content_type = NULL;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(run(keys, 2, &r, 0, &res), AUTH_OK);
    /* any header that was sent binds exactly its bytes */
    r.content_type = "application/octet-stream";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_type = " ";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_type = "image/jpeg";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    /* the size is still bound */
    r.content_type = "";
    r.content_length = SIZE + 1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_type = NULL;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    /* signing the empty type gives Prosody's MAC */
    r = mkreq(PATH, NULL, SIZE, "");
    expect_signed(AUTH_V2, &r, NULL, 0, "v2=" V2_EMPTY);
}

static void
test_v3_vector(void)
{
    struct auth_request r = mkreq(PATH, "v3=" V3_UP "&expires=1750000000",
                                  SIZE, NULL);
    struct auth_result  res;

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_V3);
    CU_ASSERT_EQUAL(res.signed_size, -1);
    CU_ASSERT_EQUAL(res.expires, EXP3);
    /* the size is not bound: any length, and chunked, pass */
    r.content_length = 5;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    r.content_length = -1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    /* the prefix and the method are bound */
    r.prefix = "/";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.prefix = "/upload/";
    r.method = "POST";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.method = "PUT";
    r.query = "v3=" V3_ROOT "&expires=1750000000";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.prefix = NULL;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    r.prefix = "/";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    /* but v3 signs the expires string as sent */
    r.query = "v3=" V3_ROOT "&expires=01750000000";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
}

static void
test_token_vector(void)
{
    struct auth_request r = mkreq("0000-1111/my photo.jpg",
                                  "token=MkYBWAR2CbKvB445yLXbcd0Z41iIK1llkc0P"
                                  "b6LUQLw%3D&user=alice%40example.org"
                                  "&expiry=1750003600", SIZE, "image/jpeg");
    struct auth_result  res;

    r.now = EXP3 + 100;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_TOKEN);
    CU_ASSERT_EQUAL(res.signed_size, SIZE);
    CU_ASSERT_EQUAL(res.expires, 1750003600);
    /* unencoded, as the Erlang module writes it; another directory */
    r.query = TOK_Q;
    r.path = "x/my photo.jpg";
    r.path_len = strlen(r.path);
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    r.path = "x/my photo.png";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.path = "x/my photo.jpg";
    r.content_length = 1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_length = SIZE;
    r.query = "token=" TOK_STD "&user=bob@example.org&expiry=1750003600";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    /* the issue time, expiry - 3600, is what is signed */
    r.query = "token=" TOK_STD "&user=alice@example.org&expiry=1750003601";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
}

static void
test_token_network_resilient(void)
{
    struct auth_request r = mkreq("1a/my photo.jpg", TOKNR_Q
                                  "&session_id=abcd&network_resilience=true"
                                  "&resume_allowed=true", SIZE, NULL);
    struct auth_result  res;

    r.now = EXP3 + 100;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_TOKEN_NR);
    CU_ASSERT_EQUAL(res.expires, 1750086400);
    /* '+' is literal, %2B decodes to it; a space is not base64 */
    r.query = "token=TPxna4hVuAIToqyDxrn11F4%2BcDgz0lIdS8kmqDrqay0%3D"
              "&user=alice@example.org&expiry=1750086400";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    r.query = "token=TPxna4hVuAIToqyDxrn11F4%20cDgz0lIdS8kmqDrqay0="
              "&user=alice@example.org&expiry=1750086400";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_MALFORMED);
    /* the Go server signs the parsed expiry, so a leading zero is harmless */
    r.query = "token=" TOK_NR "&user=alice@example.org&expiry=01750086400";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
}

static void
test_key_rotation(void)
{
    struct auth_key     both[2] = { K1, K2 }, rev[2] = { K2, K1 };
    struct auth_request r = mkreq(PATH, "v=" V1_K2, SIZE, NULL);
    struct auth_result  res;

    CU_ASSERT_EQUAL(run(both, 2, &r, 0, &res), AUTH_OK);
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 0, &res), AUTH_BAD_MAC);
    r.query = "v=" V1_K1;
    CU_ASSERT_EQUAL(run(rev, 2, &r, 0, &res), AUTH_OK);
    CU_ASSERT_EQUAL(run(&K2, 1, &r, 0, &res), AUTH_BAD_MAC);
    r.query = "v3=" V3_UP_K2 "&expires=1750000000";
    CU_ASSERT_EQUAL(run(both, 2, &r, 0, &res), AUTH_OK);
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 0, &res), AUTH_BAD_MAC);
}

static void
test_tampered(void)
{
    static const char *paths[] = {
        "5d6f3ac0/my photo.jpeg", "5d6f3ac1/my photo.jpg",
        "5d6f3ac0/my photo.jp", "/5d6f3ac0/my photo.jpg",
        "5d6f3ac0/my%20photo.jpg"
    };
    struct auth_request r = mkreq(PATH, "v=" V1_K1, SIZE, NULL);
    struct auth_result  res;
    size_t              i;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        r.path = paths[i];
        r.path_len = strlen(paths[i]);
        CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    }
    r = mkreq(PATH, "v=" V1_K1, SIZE - 1, NULL);
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_length = SIZE + 1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r.content_length = 0;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
}

static void
test_precedence(void)
{
    struct auth_request r = mkreq(PATH, "v=" V1_K1 "&v2=" V2_JPG, SIZE,
                                  "image/jpeg");
    struct auth_result  res;

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_V2);
    /* a valid v does not rescue a wrong v2 ... */
    r.query = "v=" V1_K1 "&v2=" V1_K1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    CU_ASSERT_EQUAL(res.variant, AUTH_V2);
    /* ... in either order of appearance */
    r.query = "v2=" V1_K1 "&v=" V1_K1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    /* and a malformed v is never looked at */
    r.query = "v=zz&v2=" V2_JPG;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    /* v3 outranks v2: its expiry decides */
    r.query = "v2=" V2_JPG "&v3=" V3_UP "&expires=1750000000";
    r.now = EXP3 + 1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_EXPIRED);
    CU_ASSERT_EQUAL(res.variant, AUTH_V3);
    /* v2 outranks token, token outranks v */
    r.now = EXP3 + 100;
    r.query = TOK_Q "&v=" V1_K1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.variant, AUTH_TOKEN);
    r.query = TOK_Q "&v2=" V1_K1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    CU_ASSERT_EQUAL(res.variant, AUTH_V2);
}

static void
expect_malformed(const char *query, const char *reason)
{
    struct auth_request r = mkreq(PATH, query, SIZE, NULL);
    struct auth_result  res;

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_MALFORMED);
    if (reason != NULL)
        CU_ASSERT_STRING_EQUAL(res.reason, reason);
}

static void
test_malformed_hex(void)
{
    char q[300];

    memset(q, 0, sizeof(q));
    memcpy(q, "v=", 2);
    memset(q + 2, 'z', 64);
    expect_malformed(q, "signature is not hex");
    memcpy(q + 2, V1_K1, 64);
    q[2 + 63] = '\0';
    expect_malformed(q, "signature has an odd length");
    q[2 + 62] = '\0';
    expect_malformed(q, "signature has the wrong length");
    memcpy(q + 2, V1_K1 "ab", 66);
    expect_malformed(q, "signature has the wrong length");
    memset(q + 2, 'a', 200);
    expect_malformed(q, "signature has the wrong length");
    expect_malformed("v=", "signature has the wrong length");
    expect_malformed("v", "signature has the wrong length");
    expect_malformed("v=%zz" V1_K1, "malformed percent-encoding");
    expect_malformed("v=%00" V1_K1, "malformed percent-encoding");
    expect_malformed("v=" V1_K1 "%", "malformed percent-encoding");
    expect_malformed("v=" V1_K1 "&v=" V1_K1, "duplicate signature parameter");
    expect_malformed("v2=0x" V2_JPG, NULL);
}

static void
test_query_limits(void)
{
    struct auth_request r = mkreq(PATH, NULL, SIZE, NULL);
    struct auth_result  res;
    char               *q = malloc(AUTH_QUERY_MAX + 64);
    size_t              n, i;

    CU_ASSERT_FATAL(q != NULL);
    /* exactly the limit passes, one byte more does not */
    n = (size_t)sprintf(q, "v=%s&pad=", V1_K1);
    memset(q + n, 'a', AUTH_QUERY_MAX - n);
    q[AUTH_QUERY_MAX] = '\0';
    r.query = q;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    q[AUTH_QUERY_MAX] = 'a';
    q[AUTH_QUERY_MAX + 1] = '\0';
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_MALFORMED);
    CU_ASSERT_STRING_EQUAL(res.reason, "query string too long");
    /* AUTH_PARAMS_MAX parameters pass, one more does not; "&&" is none */
    n = 0;
    for (i = 0; i < AUTH_PARAMS_MAX - 1; i++)
        n += (size_t)sprintf(q + n, "a%zu=1&&", i);
    sprintf(q + n, "v=%s", V1_K1);
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    sprintf(q + n, "b=2&v=%s", V1_K1);
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_MALFORMED);
    CU_ASSERT_STRING_EQUAL(res.reason, "too many query parameters");
    free(q);
}

static void
test_expiry(void)
{
    struct auth_request r = mkreq(PATH, "v3=" V3_UP "&expires=1750000000",
                                  SIZE, NULL);
    struct auth_result  res;

    r.now = EXP3;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    r.now = EXP3 + 1;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_EXPIRED);
    CU_ASSERT_STRING_EQUAL(res.reason, "signature expired");
    CU_ASSERT_EQUAL(res.expires, EXP3);
    /* the MAC is checked first: a forged stale URL is a forgery */
    r.query = "v3=" V3_ROOT "&expires=1750000000";
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    r = mkreq("d/my photo.jpg", TOK_Q, SIZE, NULL);
    r.now = 1750003601;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_EXPIRED);
    CU_ASSERT_STRING_EQUAL(res.reason, "signature expired");
    r.now = 1750003600;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
}

static void
test_far_future(void)
{
    struct auth_request r = mkreq(PATH, "v3=" V3_UP "&expires=1750000000",
                                  SIZE, NULL);
    struct auth_result  res;

    r.now = EXP3 - 1000000;
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 3600, &res), AUTH_TOO_LONG);
    CU_ASSERT_PTR_NOT_NULL(strstr(res.reason, "further out"));
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 999999, &res), AUTH_TOO_LONG);
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 1000000, &res), AUTH_OK);
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 0, &res), AUTH_OK);
    /* a network-resilient token lives 24 h from issue */
    r = mkreq("d/my photo.jpg", TOKNR_Q, SIZE, NULL);
    r.now = EXP3 + 100;
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 3600, &res), AUTH_TOO_LONG);
    CU_ASSERT_EQUAL(res.variant, AUTH_TOKEN_NR);
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 86400, &res), AUTH_OK);
}

static void
test_expiry_malformed(void)
{
    expect_malformed("v3=" V3_UP, "missing expires parameter");
    expect_malformed("v3=" V3_UP "&expires=", "missing expires parameter");
    expect_malformed("v3=" V3_UP "&expires=-5", "malformed expiry time");
    expect_malformed("v3=" V3_UP "&expires=12a", "malformed expiry time");
    expect_malformed("v3=" V3_UP "&expires=+12", "malformed expiry time");
    expect_malformed("v3=" V3_UP "&expires=99999999999999999999",
                     "malformed expiry time");
    expect_malformed("v3=" V3_UP "&expires=9223372036854775808",
                     "malformed expiry time");
    /* v3's expiry is "expires", a token's is "expiry" */
    expect_malformed("v3=" V3_UP "&expiry=1750000000",
                     "missing expires parameter");
    expect_malformed("token=" TOK_STD "&user=a@b&expires=1750003600",
                     "missing expiry parameter");
    expect_malformed("token=" TOK_STD "&expiry=1750003600",
                     "missing user parameter");
    expect_malformed("token=" TOK_STD "&user=&expiry=1750003600",
                     "missing user parameter");
    expect_malformed("token=" V1_K1 "&user=a@b&expiry=1750003600",
                     "token has the wrong length (want 44 base64 characters)");
    expect_malformed("token=MkYBWAR2CbKvB445yLXbcd0Z41iIK1llkc0Pb6LUQLwA"
                     "&user=a@b&expiry=1750003600", "token is not base64");
    expect_malformed("token=MkYBWAR2CbKvB445yLXbcd0Z41iIK1llkc0Pb6LU-Lw="
                     "&user=a@b&expiry=1750003600", "token is not base64");
}

static void
test_decoded_path(void)
{
    struct auth_request r = mkreq("5d6f3ac0/\xc3\xb1" "and\xc3\xba.jpg",
                                  "v=" V1_UTF8, 42, NULL);
    struct auth_result  res;

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    /* the MAC covers decoded bytes, not the URL's percent-encoding */
    r = mkreq("5d6f3ac0/%C3%B1and%C3%BA.jpg", "v=" V1_UTF8, 42, NULL);
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    /* query values are percent-decoded ('c' = %63, '5' = %35) */
    r = mkreq(PATH, "%76=%63c5b654d9e8088a26b5971eb6434b1168c606193f7396fb"
              "54b6aad28bc06af9%38", SIZE, NULL);
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
}

static void
test_size_unknown(void)
{
    struct auth_request r = mkreq(PATH, "v=" V1_K1, -1, NULL);
    struct auth_result  res;

    CU_ASSERT_EQUAL(auth_check(&K1, 1, &r, 0, &res), -1);
    CU_ASSERT_EQUAL(res.status, AUTH_SIZE_UNKNOWN);
    CU_ASSERT_EQUAL(res.variant, AUTH_V1);
    CU_ASSERT_EQUAL(res.signed_size, -1);
    /* the worker's second call, once the body ended */
    r.content_length = SIZE;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.signed_size, SIZE);
    r.content_length = SIZE + 7;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_BAD_MAC);
    /* syntax is still checked up front */
    r = mkreq(PATH, "v2=xyz", -1, "image/jpeg");
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_MALFORMED);
    r.query = "v2=" V2_JPG;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_SIZE_UNKNOWN);
    CU_ASSERT_EQUAL(res.variant, AUTH_V2);
    /* and so is a token's expiry */
    r = mkreq("d/my photo.jpg", TOK_Q, -1, NULL);
    r.now = EXP3 + 100;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_SIZE_UNKNOWN);
    CU_ASSERT_EQUAL(res.variant, AUTH_TOKEN);
    CU_ASSERT_EQUAL(run(&K1, 1, &r, 60, &res), AUTH_TOO_LONG);
    r.now = 1750003601;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_EXPIRED);
}

static void
test_empty_body(void)
{
    struct auth_request r = mkreq("5d6f3ac0/empty.txt", "v=" V1_EMPTY, 0,
                                  NULL);
    struct auth_result  res;

    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_OK);
    CU_ASSERT_EQUAL(res.signed_size, 0);
}

static void
test_no_signature(void)
{
    static const char *queries[] = {
        NULL, "", "&", "foo=bar&x", "V=" V1_K1, "vv=" V1_K1, "expires=1"
    };
    struct auth_request r = mkreq(PATH, NULL, SIZE, NULL);
    struct auth_result  res;
    size_t              i;

    for (i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        r.query = queries[i];
        CU_ASSERT_EQUAL(run1(&r, &res), AUTH_NO_SIGNATURE);
        CU_ASSERT_EQUAL(res.variant, AUTH_NONE);
    }
}

static void
test_bad_arguments(void)
{
    struct auth_key     empty = { .key = (const unsigned char *)"", .len = 0 };
    struct auth_key     mixed[2] = { K1, empty };
    struct auth_request r = mkreq(PATH, "v=" V1_K1, SIZE, NULL);
    struct auth_result  res;

    CU_ASSERT_EQUAL(run(&K1, 0, &r, 0, &res), AUTH_ERROR);
    CU_ASSERT_EQUAL(run(mixed, 2, &r, 0, &res), AUTH_ERROR);
    r.content_length = -2;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_ERROR);
    r.content_length = SIZE;
    r.path = NULL;
    CU_ASSERT_EQUAL(run1(&r, &res), AUTH_ERROR);
    CU_ASSERT_EQUAL(auth_check(&K1, 1, &r, 0, NULL), -1);
}

static void
expect_signed(enum auth_variant v, const struct auth_request *r,
              const char *user, time_t expires, const char *want)
{
    char   out[256];
    size_t n = strlen(want);

    CU_ASSERT_EQUAL(auth_sign(v, &K1, r, user, expires, out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, want);
    /* exactly big enough, then one byte short */
    CU_ASSERT_EQUAL(auth_sign(v, &K1, r, user, expires, out, n + 1), 0);
    CU_ASSERT_EQUAL(auth_sign(v, &K1, r, user, expires, out, n), -1);
}

static void
test_sign_vectors(void)
{
    struct auth_request r = mkreq(PATH, NULL, SIZE, "image/jpeg");
    char                out[256];

    expect_signed(AUTH_V1, &r, NULL, 0, "v=" V1_K1);
    expect_signed(AUTH_V2, &r, NULL, 0, "v2=" V2_JPG);
    expect_signed(AUTH_V3, &r, NULL, EXP3,
                  "v3=" V3_UP "&expires=1750000000");
    r.content_type = NULL;
    expect_signed(AUTH_V2, &r, NULL, 0, "v2=" V2_OCT);
    r = mkreq("any/my photo.jpg", NULL, SIZE, NULL);
    expect_signed(AUTH_TOKEN, &r, "alice@example.org", 1750003600,
                  "token=MkYBWAR2CbKvB445yLXbcd0Z41iIK1llkc0Pb6LUQLw%3D"
                  "&user=alice%40example.org&expiry=1750003600");
    expect_signed(AUTH_TOKEN_NR, &r, "alice@example.org", 1750086400,
                  "token=TPxna4hVuAIToqyDxrn11F4%2BcDgz0lIdS8kmqDrqay0%3D"
                  "&user=alice%40example.org&expiry=1750086400");
    /* refusals */
    CU_ASSERT_EQUAL(auth_sign(AUTH_TOKEN, &K1, &r, NULL, 1, out, 256), -1);
    CU_ASSERT_EQUAL(auth_sign(AUTH_NONE, &K1, &r, NULL, 1, out, 256), -1);
    CU_ASSERT_EQUAL(auth_sign(AUTH_V3, &K1, &r, NULL, -1, out, 256), -1);
    r.content_length = -1;
    CU_ASSERT_EQUAL(auth_sign(AUTH_V1, &K1, &r, NULL, 0, out, 256), -1);
    CU_ASSERT_EQUAL(auth_sign(AUTH_V3, &K1, &r, NULL, EXP3, out, 256), 0);
}

static void
test_sign_check_roundtrip(void)
{
    static const enum auth_variant vs[] = {
        AUTH_V1, AUTH_V2, AUTH_V3, AUTH_TOKEN, AUTH_TOKEN_NR
    };
    struct auth_request r = mkreq("r/\xe2\x82\xac & %2F=?.bin", NULL, 77,
                                  "text/plain");
    struct auth_result  res;
    char                q[512];
    size_t              i;

    r.prefix = "/up/";
    for (i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        CU_ASSERT_EQUAL_FATAL(auth_sign(vs[i], &K2, &r, "b+o b@ex.org/x",
                                        EXP3, q, sizeof(q)), 0);
        r.query = q;
        CU_ASSERT_EQUAL(run(&K2, 1, &r, 0, &res), AUTH_OK);
        CU_ASSERT_EQUAL(res.variant, vs[i]);
        CU_ASSERT_EQUAL(run(&K1, 1, &r, 0, &res), AUTH_BAD_MAC);
        r.query = NULL;
    }
}

static void
test_variant_names(void)
{
    CU_ASSERT_STRING_EQUAL(auth_variant_name(AUTH_V1), "v1");
    CU_ASSERT_STRING_EQUAL(auth_variant_name(AUTH_V3), "v3");
    CU_ASSERT_STRING_EQUAL(auth_variant_name(AUTH_TOKEN), "token");
    CU_ASSERT_STRING_EQUAL(auth_variant_name((enum auth_variant)99), "none");
}

/* A prepared key (the daemon's: auth_key_prepare at worker start) gives
 * every answer an unprepared one gives, for every variant, right or
 * wrong; and it can sit next to an unprepared one in a rotation. */
static void
test_prepared_keys(void)
{
    static const struct {
        const char *path, *query, *ctype;
        int64_t     len;
        time_t      now;
    } cases[] = {
        { PATH, "v=" V1_K1, NULL, SIZE, EXP3 - 1000 },
        { PATH, "v=" V1_K1, NULL, SIZE + 1, EXP3 - 1000 },        /* size */
        { PATH, "v=" V1_K2, NULL, SIZE, EXP3 - 1000 },        /* K2's MAC */
        { EJ_PATH, "v=" EJ_K1, "image/jpeg", 2048, EXP3 - 1000 },
        { PATH, "v2=" V2_JPG, "image/jpeg", SIZE, EXP3 - 1000 },
        { PATH, "v2=" V2_JPG, "image/png", SIZE, EXP3 - 1000 },
        { PATH, "v2=" V2_OCT, NULL, SIZE, EXP3 - 1000 },
        { PATH, "v3=" V3_UP "&expires=1750000000", NULL, SIZE, EXP3 - 1000 },
        { PATH, "v3=" V3_UP "&expires=1750000001", NULL, SIZE, EXP3 - 1000 },
        { "0000-1111/my photo.jpg", TOK_Q, "image/jpeg", SIZE, EXP3 + 100 },
        { "0000-1111/my photo.jpg", TOKNR_Q, "image/jpeg", SIZE, EXP3 + 100 },
        { "0000-1111/my photo.jpg", TOK_Q, "image/jpeg", 7, EXP3 + 100 },
    };
    struct auth_key p1 = K1, p2 = K2, plain[2] = { K2, K1 };
    struct auth_key prep[2], mixed[2];
    struct auth_result a, b;

    CU_ASSERT_EQUAL_FATAL(auth_key_prepare(&p1), 0);
    CU_ASSERT_EQUAL_FATAL(auth_key_prepare(&p2), 0);
    CU_ASSERT_PTR_NOT_NULL(p1.prepared);
    prep[0] = p2, prep[1] = p1;
    mixed[0] = K2, mixed[1] = p1;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct auth_request r = mkreq(cases[i].path, cases[i].query,
                                      cases[i].len, cases[i].ctype);
        r.now = cases[i].now;
        /* One key: K1 prepared or not. */
        run(&K1, 1, &r, 0, &a);
        run(&p1, 1, &r, 0, &b);
        CU_ASSERT_EQUAL(a.status, b.status);
        CU_ASSERT_EQUAL(a.variant, b.variant);
        CU_ASSERT_EQUAL(a.signed_size, b.signed_size);
        /* Rotation, in every mix. */
        run(plain, 2, &r, 0, &a);
        run(prep, 2, &r, 0, &b);
        CU_ASSERT_EQUAL(a.status, b.status);
        CU_ASSERT_EQUAL(a.variant, b.variant);
        run(mixed, 2, &r, 0, &b);
        CU_ASSERT_EQUAL(a.status, b.status);
        /* The same prepared key checks again: its state is not used up. */
        run(&p1, 1, &r, 0, &b);
        run(&K1, 1, &r, 0, &a);
        CU_ASSERT_EQUAL(a.status, b.status);
    }
    /* The first case verifies with K1, the third only with K2. */
    struct auth_request r = mkreq(PATH, "v=" V1_K1, SIZE, NULL);
    CU_ASSERT_EQUAL(run(&p1, 1, &r, 0, &a), AUTH_OK);
    CU_ASSERT_EQUAL(run(&p2, 1, &r, 0, &a), AUTH_BAD_MAC);
    r.query = "v=" V1_K2;
    CU_ASSERT_EQUAL(run(&p2, 1, &r, 0, &a), AUTH_OK);
    CU_ASSERT_EQUAL(run(&p1, 1, &r, 0, &a), AUTH_BAD_MAC);

    auth_key_release(&p1);
    auth_key_release(&p2);
    CU_ASSERT_PTR_NULL(p1.prepared);
    auth_key_release(&p1);                  /* twice: harmless */
    struct auth_key empty = { .key = (const unsigned char *)"", .len = 0 };
    CU_ASSERT_EQUAL(auth_key_prepare(&empty), -1);
    CU_ASSERT_PTR_NULL(empty.prepared);
}

static CU_TestInfo tests[] = {
    { "prepared keys answer as unprepared ones", test_prepared_keys },
    { "v1 vector", test_v1_vector },
    { "wrong key", test_wrong_key },
    { "ejabberd external_secret vector", test_ejabberd_vector },
    { "v2 binds the content type", test_v2_content_type },
    { "v2 with an empty or absent content type", test_v2_empty_content_type },
    { "v3 vector, prefix and method bound", test_v3_vector },
    { "token vector", test_token_vector },
    { "network-resilient token vector", test_token_network_resilient },
    { "key rotation", test_key_rotation },
    { "tampered path and size", test_tampered },
    { "highest signature parameter wins", test_precedence },
    { "malformed and odd-length hex", test_malformed_hex },
    { "query length and parameter limits", test_query_limits },
    { "expired signatures", test_expiry },
    { "expiry beyond max lifetime", test_far_future },
    { "malformed expiry, user and token", test_expiry_malformed },
    { "MAC over the decoded path", test_decoded_path },
    { "chunked body: size checked later", test_size_unknown },
    { "empty file", test_empty_body },
    { "no signature", test_no_signature },
    { "bad arguments", test_bad_arguments },
    { "auth_sign matches openssl", test_sign_vectors },
    { "auth_sign then auth_check", test_sign_check_roundtrip },
    { "variant names", test_variant_names },
    CU_TEST_INFO_NULL
};

UNIT_SUITE("auth", NULL, NULL, tests);
