/* contentdigest.c: the whole file's SHA-256 as a client announces it. */
#define _GNU_SOURCE
#include "lib/http/contentdigest.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "lib/http/request.h"

static int
b64_sha256(const char *v, size_t n, uint8_t out[32])
{
    unsigned char buf[64];
    if (n != 44 || EVP_DecodeBlock(buf, (const unsigned char *)v, 44) != 33)
        return -1;     /* 32 bytes and one byte of '=' padding */
    memcpy(out, buf, 32);
    return 0;
}

/* X-Content-SHA256: <hex>, Digest: SHA-256=<base64> (RFC 3230) or
 * Repr-Digest: sha-256=:<base64>: (RFC 9530). 0 none, 1 found, -1 bad. */
int
http_content_sha256(struct http_request *req, uint8_t out[32])
{
    const char *v;
    if ((v = http_header_get(req, "X-Content-SHA256")) != NULL) {
        if (strlen(v) != 64)
            return -1;
        for (int i = 0; i < 32; i++) {
            unsigned x;
            if (!isxdigit((unsigned char)v[2 * i])
                || !isxdigit((unsigned char)v[2 * i + 1])
                || sscanf(v + 2 * i, "%2x", &x) != 1)
                return -1;
            out[i] = (uint8_t)x;
        }
        return 1;
    }
    if ((v = http_header_get(req, "Repr-Digest")) != NULL) {
        const char *p = strcasestr(v, "sha-256=:");
        if (p == NULL)
            return 0;          /* only other algorithms: nothing to check */
        p += 9;
        const char *e = strchr(p, ':');
        return e && b64_sha256(p, (size_t)(e - p), out) == 0 ? 1 : -1;
    }
    if ((v = http_header_get(req, "Digest")) != NULL) {
        const char *p = strcasestr(v, "sha-256=");
        if (p == NULL)
            return 0;
        p += 8;
        size_t n = strcspn(p, ", ");
        return b64_sha256(p, n, out) == 0 ? 1 : -1;
    }
    return 0;
}
