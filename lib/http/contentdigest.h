/* contentdigest: the SHA-256 of the whole file a client announces with
 * its upload (PUT, a tus final upload), checked before publishing. */
#ifndef LIB_HTTP_CONTENTDIGEST_H
#define LIB_HTTP_CONTENTDIGEST_H

#include <stdint.h>

struct http_request;

/* X-Content-SHA256: <hex>, Digest: SHA-256=<base64> (RFC 3230) or
 * Repr-Digest: sha-256=:<base64>: (RFC 9530). 0 none, 1 found, -1 bad. */
int http_content_sha256(struct http_request *req, uint8_t out[32]);

#endif
