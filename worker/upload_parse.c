/* upload_parse.c: header parsing for PUT uploads, as pure functions. */
#define _GNU_SOURCE
#include "worker/upload_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "lib/conf/conf.h"
#include "lib/http/request.h"
#include "lib/util/decimal.h"

bool
upload_session_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > UPLOAD_SESSION_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_'
            && *p != '.')
            return false;
    return true;
}

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
upload_parse_digest(struct http_request *req, uint8_t out[32])
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

/* A decimal header: 0 absent (*v_r = -1), 1 read, -1 malformed. */
int
upload_header_number(struct http_request *req, const char *name,
                     int64_t *v_r)
{
    const char *h = http_header_get(req, name);
    uint64_t v;

    *v_r = -1;
    if (h == NULL)
        return 0;
    if (decimal_parse(h, INT64_MAX, &v) < 0)
        return -1;
    *v_r = (int64_t)v;
    return 1;
}

/* uploads.chunkeduploadsenabled / resumableuploadsenabled: a request for
 * a switched-off protocol gets 501 before anything is checked or stored.
 * Any header of the chunked protocol counts: a chunk taken for a whole
 * file would publish a fragment where the MAC binds no size (v3). */
int
upload_check_enabled(const struct conf *cf, struct http_request *req,
              const char **why)
{
    if (!cf->chunked_uploads
        && (http_header_get(req, "X-Upload-Session-ID") != NULL
            || http_header_get(req, "X-Chunk-Number") != NULL
            || http_header_get(req, "X-Total-Chunks") != NULL)) {
        *why = "chunked uploads (X-Upload-Session-ID) are disabled on this "
               "server; send the file in one plain PUT";
        return 501;
    }
    if (!cf->resumable_uploads
        && http_header_get(req, "X-Upload-Session-ID") == NULL
        && http_header_get(req, "Content-Range") != NULL) {
        *why = "resumable uploads (Content-Range) are disabled on this "
               "server; send the whole file in one plain PUT";
        return 501;
    }
    return 0;
}
