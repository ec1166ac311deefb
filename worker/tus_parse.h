/* tus_parse: the protocol's constants and the pure parts of reading a tus
 * request's headers (no I/O, no state): unit-tested in
 * tests/unit/test_tus_parse.c. */
#ifndef WORKER_TUS_PARSE_H
#define WORKER_TUS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define TUS_VERSION       "1.0.0"
#define TUS_EXTENSIONS    "creation,creation-with-upload," \
                          "creation-defer-length,expiration,checksum," \
                          "termination,concatenation"
#define TUS_ALGORITHMS    "sha1,sha256,md5"
#define TUS_CTYPE         "application/offset+octet-stream"
#define TUS_RESOURCE      ".tus/"
#define TUS_ID_BYTES      16                  /* 128 bits */
#define TUS_ID_LEN        (2 * TUS_ID_BYTES)
#define TUS_CHECKSUM_MAX  128                 /* Upload-Checksum bytes */
#define TUS_PARTS_MAX     16                  /* partials in one final */
#define TUS_CONCAT_MAX    4096                /* Upload-Concat bytes */

enum tus_concat { TUS_CONCAT_NONE, TUS_CONCAT_PARTIAL, TUS_CONCAT_FINAL };

/* A decimal byte count or offset: 0, or -1 if malformed. */
int  tus_parse_u64(const char *v, uint64_t *out);
/* Standard base64 with padding: the byte count, or -1 if malformed or
 * longer than outmax. */
int  tus_b64_decode(const char *in, size_t inlen, unsigned char *out,
                    size_t outmax);
/* The value of `key` in (validated) Upload-Metadata, decoded, or "" if
 * absent, empty or not text. */
void tus_metadata_get(const char *meta, const char *key, char *out,
                      size_t outlen);
/* Upload-Checksum: 0 with *md_r and the digest in want, else 400 and
 * *why; *md_r is left alone on failure. */
int  tus_checksum_parse(const char *v, const EVP_MD **md_r,
                        unsigned char *want, size_t wantmax,
                        const char **why);
bool tus_id_valid(const char *id);
/* Upload-Concat of a creation: "partial", or "final;<url> <url> ..." where
 * each URL names an upload resource of this server, [scheme://host]
 * <prefix>.tus/<id>, and none twice. 0 with *kind (and, for a final, the
 * ids in order in ids[0..*n)), else 400 with *why. */
int  tus_concat_parse(const char *v, const char *prefix, enum tus_concat *kind,
                      char ids[][TUS_ID_LEN + 1], size_t max, size_t *n,
                      const char **why);

#endif
