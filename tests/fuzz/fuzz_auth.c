/* fuzz_auth: lib/auth/auth.c, upload-URL signature checks.
 *
 * fuzz-sources: lib/auth/auth.c
 * fuzz-libs:    -lcrypto
 * fuzz-args:    -max_len=8192
 *
 * Input, one field per line, the path last (it may hold any byte):
 *   query \n content-type \n content-length \n now \n max-lifetime \n
 *   prefix \n path
 * An empty content type or prefix is NULL, an empty number -1 (length) or a
 * fixed time. The seeds carry URLs signed with KNOWN_KEY, so mutations
 * reach the MAC check and beyond. The properties:
 *   - with a key nobody signed with, nothing is ever AUTH_OK (a fuzz-chosen
 *     MAC cannot match: an OK there is a check that was skipped);
 *   - adding that key to the rotation changes no verdict;
 *   - an OK verdict stops being OK when any field the variant binds
 *     (path, size, content type, method, prefix) is changed;
 *   - OK honours expiry and max lifetime, and reports the bound size;
 *   - what auth_sign produces for these fields, auth_check accepts. */
#include <stdbool.h>
#include <string.h>

#include "lib/auth/auth.h"
#include "tests/fuzz/fuzz.h"

#define KNOWN_KEY   "fuzz-known-key"
#define DEFAULT_NOW 1700000000

static const unsigned char unknown_key[32] = {
    0x3b, 0x91, 0x5e, 0x07, 0xc4, 0x28, 0xfa, 0x6d, 0x10, 0x8e, 0x73, 0xb2,
    0x49, 0xd5, 0x2c, 0x96, 0xe1, 0x0a, 0x57, 0xbf, 0x64, 0x38, 0x8d, 0xc3,
    0x1f, 0x72, 0xae, 0x05, 0xd9, 0x46, 0xbb, 0x20
};

static const struct auth_key known = {
    .key = (const unsigned char *)KNOWN_KEY, .len = sizeof(KNOWN_KEY) - 1
};
static const struct auth_key unknown = {
    .key = unknown_key, .len = sizeof(unknown_key)
};

static bool
binds_size(enum auth_variant v)
{
    return v == AUTH_V1 || v == AUTH_V2 || v == AUTH_TOKEN
           || v == AUTH_TOKEN_NR;
}

static bool
has_expiry(enum auth_variant v)
{
    return v == AUTH_V3 || v == AUTH_TOKEN || v == AUTH_TOKEN_NR;
}

/* Decimal, optionally negative; wraps rather than overflows, so every
 * int64_t (INT64_MAX, INT64_MIN...) can be spelled. */
static int64_t
number(const uint8_t *p, size_t n, int64_t dflt)
{
    uint64_t v = 0;
    bool     neg = n > 0 && p[0] == '-';

    if (n == 0)
        return dflt;
    for (size_t i = neg; i < n && i < 20; i++) {
        if (p[i] < '0' || p[i] > '9')
            return dflt;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return (int64_t)(neg ? 0 - v : v);
}

static struct auth_result
check(const struct auth_key *keys, size_t nkeys,
      const struct auth_request *req, time_t life)
{
    struct auth_result r;

    memset(&r, 0x5a, sizeof(r));
    int rc = auth_check(keys, nkeys, req, life, &r);
    FUZZ_CHECK((rc == 0) == (r.status == AUTH_OK));
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(r.status >= AUTH_OK && r.status <= AUTH_ERROR);
    FUZZ_CHECK(r.reason != NULL && strlen(r.reason) > 0);
    FUZZ_CHECK(r.variant >= AUTH_NONE && r.variant <= AUTH_TOKEN_NR);
    return r;
}

static bool
same(const struct auth_result *a, const struct auth_result *b)
{
    return a->status == b->status && a->variant == b->variant
           && a->signed_size == b->signed_size && a->expires == b->expires;
}

static void
check_ok(const struct auth_request *req, time_t life,
         const struct auth_result *r)
{
    FUZZ_CHECK(r->variant != AUTH_NONE);
    FUZZ_CHECK(r->signed_size
               == (binds_size(r->variant) ? req->content_length : -1));
    if (req->content_length == -1)
        FUZZ_CHECK(!binds_size(r->variant));
    if (has_expiry(r->variant)) {
        FUZZ_CHECK(r->expires >= req->now);
        if (life > 0)
            FUZZ_CHECK((uint64_t)r->expires - (uint64_t)req->now
                       <= (uint64_t)life);
    } else {
        FUZZ_CHECK(r->expires == 0);
    }
}

static bool
ct_is_default(const char *ct)
{
    return ct == NULL || *ct == '\0'
           || strcmp(ct, "application/octet-stream") == 0;
}

/* Each field the variant signs, changed in turn: none may still verify. */
static void
check_binding(const struct auth_request *req, time_t life,
              enum auth_variant v)
{
    struct auth_request t;
    char *path = fuzz_dup(req->path, req->path_len, 1);   /* room for x */
    char  pfx[64];

    path[req->path_len] = 'x';
    t = *req;
    t.path = path;
    t.path_len = req->path_len + 1;
    FUZZ_CHECK(check(&known, 1, &t, life).status != AUTH_OK);
    free(path);

    if (binds_size(v)) {
        t = *req;
        t.content_length = req->content_length + 1;
        FUZZ_CHECK(check(&known, 1, &t, life).status != AUTH_OK);
    }
    if (v == AUTH_V2) {
        t = *req;
        t.content_type = ct_is_default(req->content_type) ? "image/png"
                                                          : NULL;
        FUZZ_CHECK(check(&known, 1, &t, life).status != AUTH_OK);
    }
    if (v == AUTH_V3) {
        t = *req;
        t.method = "POST";
        FUZZ_CHECK(check(&known, 1, &t, life).status != AUTH_OK);
        t = *req;
        snprintf(pfx, sizeof(pfx), "%.40sx", req->prefix ? req->prefix : "/");
        t.prefix = pfx;
        FUZZ_CHECK(check(&known, 1, &t, life).status != AUTH_OK);
    }
}

static void
check_sign(const struct auth_request *req, const char *user, uint64_t h)
{
    static const enum auth_variant vs[] = {
        AUTH_V1, AUTH_V2, AUTH_V3, AUTH_TOKEN, AUTH_TOKEN_NR
    };
    enum auth_variant v = vs[h % 5];
    time_t expires = req->now + (time_t)(h >> 8) % 100000;
    char   q[AUTH_QUERY_MAX + 1];
    struct auth_request t = *req;

    if (auth_sign(v, &known, req, user, expires, q, sizeof(q)) != 0)
        return;
    t.query = q;
    struct auth_result r = check(&known, 1, &t, 0);
    if (binds_size(v) && req->content_length == -1) {
        FUZZ_CHECK(r.status == AUTH_SIZE_UNKNOWN);
        return;
    }
    FUZZ_CHECK(r.status == AUTH_OK && r.variant == v);
    FUZZ_CHECK(!has_expiry(v) || r.expires == expires);
    FUZZ_CHECK(check(&unknown, 1, &t, 0).status == AUTH_BAD_MAC);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *f[6];
    size_t         n[6];
    struct auth_request req;

    for (int i = 0; i < 6; i++)
        fuzz_field(&data, &size, &f[i], &n[i]);
    char *query = fuzz_dup(f[0], n[0], 1);
    char *ct = fuzz_dup(f[1], n[1], 1);
    char *prefix = fuzz_dup(f[5], n[5], 1);
    char *path = fuzz_dup(data, size, 0);
    time_t life = (time_t)number(f[4], n[4], 0);

    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.prefix = n[5] ? prefix : NULL;
    req.path = path;
    req.path_len = size;
    req.query = query;
    req.content_length = number(f[2], n[2], -1);
    req.content_type = n[1] ? ct : NULL;
    req.now = (time_t)number(f[3], n[3], DEFAULT_NOW);

    struct auth_result r = check(&known, 1, &req, life);
    struct auth_result u = check(&unknown, 1, &req, life);
    bool mac_checked = r.status == AUTH_OK || r.status == AUTH_BAD_MAC
                       || ((r.status == AUTH_EXPIRED
                            || r.status == AUTH_TOO_LONG)
                           && !(binds_size(r.variant)
                                && req.content_length == -1));
    if (req.content_length < -1) {
        FUZZ_CHECK(r.status == AUTH_ERROR);
    } else if (mac_checked) {
        /* Only KNOWN_KEY signed anything: no other key verifies. */
        FUZZ_CHECK(u.status == AUTH_BAD_MAC);
    } else {
        FUZZ_CHECK(same(&r, &u));
    }
    struct auth_key both[2] = { unknown, known };
    struct auth_result r2 = check(both, 2, &req, life);
    FUZZ_CHECK(same(&r, &r2));
    both[0] = known;
    both[1] = unknown;
    r2 = check(both, 2, &req, life);
    FUZZ_CHECK(same(&r, &r2));

    if (r.status == AUTH_OK) {
        check_ok(&req, life, &r);
        check_binding(&req, life, r.variant);
    }
    if (req.content_length >= -1 && req.now >= 0 && req.now < INT32_MAX)
        check_sign(&req, n[1] ? ct : "user@example.org",
                   fuzz_hash(f[0], n[0]));
    free(query);
    free(ct);
    free(prefix);
    free(path);
    return 0;
}
