/* tus_parse.c: tus header parsing, as pure functions. */
#define _GNU_SOURCE
#include "worker/tus_parse.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "lib/http/tusmeta.h"
#include "lib/store/manifest.h"
#include "lib/util/decimal.h"

int
tus_parse_u64(const char *v, uint64_t *out)
{
    return decimal_parse(v, INT64_MAX, out);
}

static bool
is_b64(int ch)
{
    return isalnum(ch) || ch == '+' || ch == '/' || ch == '=';
}

/* Decodes standard base64 with padding; -1 if malformed. */
int
tus_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outmax)
{
    if (inlen == 0 || inlen % 4 != 0 || inlen / 4 * 3 > outmax)
        return -1;
    for (size_t i = 0; i < inlen; i++)
        if (!is_b64((unsigned char)in[i])
            || (in[i] == '=' && i < inlen - 2))
            return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
    if (n < 0)
        return -1;
    n -= in[inlen - 1] == '=';
    n -= in[inlen - 2] == '=';
    return n;
}

/* The value of `key` in (validated) Upload-Metadata, decoded, or "" if
 * absent, empty or not text. */
void
tus_metadata_get(const char *meta, const char *key, char *out, size_t outlen)
{
    struct tusmeta m;
    const struct tusmeta_pair *p;
    unsigned char buf[MANIFEST_CTYPE_MAX + 3];
    char err[128];
    int n;

    out[0] = '\0';
    if (tusmeta_parse(meta, &m, err, sizeof(err)) < 0
        || (p = tusmeta_find(&m, key)) == NULL
        || (n = tus_b64_decode(p->value, p->value_len, buf, sizeof(buf))) < 0
        || (size_t)n >= outlen || memchr(buf, '\0', (size_t)n))
        return;
    memcpy(out, buf, (size_t)n);
    out[n] = '\0';
}

/* Upload-Checksum: "<algorithm> <base64 digest>" (tus checksum). */
int
tus_checksum_parse(const char *v, const EVP_MD **md_r, unsigned char *want,
                   size_t wantmax, const char **why)
{
    char name[16];
    size_t nlen = strcspn(v, " ");
    const EVP_MD *md;

    if (strlen(v) > TUS_CHECKSUM_MAX || nlen == 0 || nlen >= sizeof(name)
        || v[nlen] != ' ') {
        *why = "Upload-Checksum must be \"<algorithm> <base64 digest>\"";
        return 400;
    }
    memcpy(name, v, nlen);
    name[nlen] = '\0';
    if (strcmp(name, "sha1") == 0)
        md = EVP_sha1();
    else if (strcmp(name, "sha256") == 0)
        md = EVP_sha256();
    else if (strcmp(name, "md5") == 0)
        md = EVP_md5();
    else {
        *why = "unsupported checksum algorithm (Tus-Checksum-Algorithm: "
               TUS_ALGORITHMS ")";
        return 400;
    }
    const char *d = v + nlen + 1;
    int n = tus_b64_decode(d, strlen(d), want, wantmax);
    if (n != EVP_MD_get_size(md)) {
        *why = "Upload-Checksum digest is not valid base64 of the "
               "algorithm's size";
        return 400;
    }
    *md_r = md;
    return 0;
}

/* An upload resource's id: TUS_ID_LEN lowercase hex digits, nothing else. */
bool
tus_id_valid(const char *id)
{
    size_t n = strspn(id, "0123456789abcdef");
    return n == TUS_ID_LEN && id[n] == '\0';
}

/* One URL of a final's list, [start, end): the id it names, or -1. */
static int
concat_url(const char *u, size_t len, const char *prefix,
           char id[TUS_ID_LEN + 1])
{
    const char *end = u + len, *p = u;
    const char *scheme = memmem(u, len, "://", 3);
    size_t plen = strlen(prefix), rlen = strlen(TUS_RESOURCE);

    if (scheme != NULL) {                 /* absolute: skip scheme and host */
        p = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
        if (p == NULL)
            return -1;
    }
    if ((size_t)(end - p) != plen + rlen + TUS_ID_LEN
        || memcmp(p, prefix, plen) != 0
        || memcmp(p + plen, TUS_RESOURCE, rlen) != 0)
        return -1;
    memcpy(id, p + plen + rlen, TUS_ID_LEN);
    id[TUS_ID_LEN] = '\0';
    return tus_id_valid(id) ? 0 : -1;
}

int
tus_concat_parse(const char *v, const char *prefix, enum tus_concat *kind,
                 char ids[][TUS_ID_LEN + 1], size_t max, size_t *n,
                 const char **why)
{
    *n = 0;
    if (strlen(v) > TUS_CONCAT_MAX) {
        *why = "Upload-Concat too long";
        return 400;
    }
    if (strcmp(v, "partial") == 0) {
        *kind = TUS_CONCAT_PARTIAL;
        return 0;
    }
    if (strncmp(v, "final;", 6) != 0) {
        *why = "Upload-Concat must be \"partial\" or \"final;<upload URL> "
               "...\"";
        return 400;
    }
    *kind = TUS_CONCAT_FINAL;
    for (const char *p = v + 6; *p != '\0';) {
        size_t len = strcspn(p, " ");
        if (len == 0) {
            p++;                          /* runs of spaces */
            continue;
        }
        if (*n == max) {
            *why = "Upload-Concat: too many partial uploads (at most 16)";
            return 400;
        }
        if (concat_url(p, len, prefix, ids[*n]) < 0) {
            *why = "Upload-Concat: a partial upload URL is not an upload "
                   "resource of this server";
            return 400;
        }
        for (size_t i = 0; i < *n; i++)
            if (strcmp(ids[i], ids[*n]) == 0) {
                *why = "Upload-Concat names a partial upload twice";
                return 400;
            }
        (*n)++;
        p += len;
    }
    if (*n == 0) {
        *why = "Upload-Concat: final names no partial upload";
        return 400;
    }
    return 0;
}
