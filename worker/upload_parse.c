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
