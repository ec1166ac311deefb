/* download.c: serving a published file.
 *
 * Published files never change (no overwrite, no append), so validators are
 * stable and responses may be cached for good. A client that lost its link
 * resumes with Range, so ranges are a first-class path, not an extra. */
#include "worker/download.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/http/response.h"
#include "lib/store/mime.h"
#include "lib/store/path.h"
#include "lib/util/log.h"
#include "worker/conn.h"

/* Lower-case hex of v, no leading zeros; returns the digits written. */
static size_t
put_hex(char *out, unsigned long long v)
{
    char   rev[16];
    size_t n = 0;

    do {
        rev[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    return n;
}

/* "\"<inode>-<size>-<mtime ns>\"" in hex: by hand, as it is made for
 * every GET. out holds at least 3 * 16 + 5 bytes. */
static void
make_etag(const struct stat *st, char *out)
{
    size_t n = 0;

    out[n++] = '"';
    n += put_hex(out + n, (unsigned long long)st->st_ino);
    out[n++] = '-';
    n += put_hex(out + n, (unsigned long long)st->st_size);
    out[n++] = '-';
    n += put_hex(out + n, (unsigned long long)st->st_mtim.tv_sec
                              * 1000000000ULL
                          + (unsigned long long)st->st_mtim.tv_nsec);
    out[n++] = '"';
    out[n] = '\0';
}

/* If-None-Match: "*" or a comma list of entity tags (weak ones compare
 * weakly, RFC 9110 13.1.2). */
static int
etag_matches(const char *header, const char *etag)
{
    if (strcmp(header, "*") == 0)
        return 1;
    size_t elen = strlen(etag);
    for (const char *p = header; (p = strstr(p, etag)) != NULL; p += elen) {
        char after = p[elen];
        if (after == '\0' || after == ',' || after == ' ')
            return 1;
    }
    return 0;
}

/* What every answer with the file's bytes says, whatever the file. */
static const char constant_headers[] =
    "Accept-Ranges: bytes\r\n"
    "Cache-Control: public, max-age=31536000, immutable\r\n"
    /* Uploads are untrusted content served from a trusted origin. */
    "X-Content-Type-Options: nosniff\r\n"
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
    "sandbox\r\n";

static void
common_headers(struct http_head *h, const char *rel, const char *etag,
               const struct stat *st)
{
    char date[HTTP_DATE_LEN + 1];
    http_date(st->st_mtim.tv_sec, date, sizeof(date));
    http_head_put(h, "Content-Type", store_mime_type(rel));
    http_head_put(h, "ETag", etag);
    http_head_put(h, "Last-Modified", date);
    http_head_raw(h, constant_headers, sizeof(constant_headers) - 1);
}

static int
not_modified(struct http_request *req, const char *etag, time_t mtime)
{
    const char *inm = http_header_get(req, "If-None-Match");
    if (inm)
        return etag_matches(inm, etag);
    const char *ims = http_header_get(req, "If-Modified-Since");
    time_t t;
    return ims && http_date_parse(ims, &t) == 0 && mtime <= t;
}

static void
open_failed(struct conn *c, const char *rel, const char *err)
{
    switch (errno) {
    case ENOENT:
    case ENOTDIR:
    case EISDIR:
        conn_respond_text(c, 404, "404 Not Found");
        break;
    case ELOOP:
    case EPERM:
    case EACCES:
        /* Refuse without telling a prober what is there. */
        log_warn("%s: refused GET of %s: %s", c->peer, rel, err);
        conn_respond_text(c, 404, "404 Not Found");
        break;
    default:
        log_error("%s: open %s: %s", c->peer, rel, err);
        conn_respond_text(c, 500, "500 Internal Server Error: cannot open file");
    }
}

void
download_serve(struct conn *c, struct http_request *req)
{
    char rel[STORE_PATH_MAX + 1], err[256], etag[80];
    size_t rel_len;
    struct stat st;
    int fd;

    if (req->method == HTTP_OPTIONS)
        return;
    if (store_path_decode(c->rel, c->rel_len, rel, sizeof(rel), &rel_len,
                          err, sizeof(err)) < 0) {
        conn_respond_text(c, 400, "400 Bad Request: %s", err);
        return;
    }
    if (store_open_file(c->w->root_fd, rel, &fd, &st, err, sizeof(err)) < 0) {
        open_failed(c, rel, err);
        return;
    }
    make_etag(&st, etag);

    struct http_head h;
    if (not_modified(req, etag, st.st_mtim.tv_sec)) {
        conn_head_begin(c, &h, 304);
        http_head_put(&h, "ETag", etag);
        conn_respond_head(c, &h, NULL, 0);
        close(fd);
        return;
    }

    uint64_t size = (uint64_t)st.st_size, first = 0, last = size - 1;
    enum http_range r = HTTP_RANGE_NONE;
    const char *range = http_header_get(req, "Range");
    const char *if_range = http_header_get(req, "If-Range");
    if (range && (if_range == NULL || strcmp(if_range, etag) == 0))
        r = http_range_parse(range, size, &first, &last);

    if (r == HTTP_RANGE_UNSATISFIABLE) {
        conn_head_begin(c, &h, 416);
        http_head_put_range(&h, 0, 0, size, 1);
        http_head_put(&h, "Content-Length", "0");
        conn_respond_head(c, &h, NULL, 0);
        close(fd);
        return;
    }
    conn_head_begin(c, &h, r == HTTP_RANGE_OK ? 206 : 200);
    common_headers(&h, rel, etag, &st);
    if (r == HTTP_RANGE_OK)
        http_head_put_range(&h, first, last, size, 0);
    else
        first = 0, last = size - 1;
    uint64_t len = size == 0 ? 0 : last - first + 1;
    http_head_put_u64(&h, "Content-Length", len);
    if (req->method == HTTP_HEAD || len == 0) {
        conn_respond_head(c, &h, NULL, 0);
        close(fd);
        return;
    }
    conn_respond_file(c, &h, fd, first, len);
}
