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

static void
make_etag(const struct stat *st, char *out, size_t len)
{
    snprintf(out, len, "\"%llx-%llx-%llx\"", (unsigned long long)st->st_ino,
             (unsigned long long)st->st_size,
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ULL
                 + (unsigned long long)st->st_mtim.tv_nsec);
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

static void
common_headers(struct conn *c, struct http_head *h, const char *rel,
               const char *etag, const struct stat *st)
{
    char date[40];
    http_date(st->st_mtim.tv_sec, date, sizeof(date));
    http_head_add(h, "Content-Type", "%s", store_mime_type(rel));
    http_head_add(h, "ETag", "%s", etag);
    http_head_add(h, "Last-Modified", "%s", date);
    http_head_add(h, "Accept-Ranges", "bytes");
    http_head_add(h, "Cache-Control", "public, max-age=31536000, immutable");
    /* Uploads are untrusted content served from a trusted origin. */
    http_head_add(h, "X-Content-Type-Options", "nosniff");
    http_head_add(h, "Content-Security-Policy",
                  "default-src 'none'; style-src 'unsafe-inline'; sandbox");
    (void)c;
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
    make_etag(&st, etag, sizeof(etag));

    struct http_head h;
    if (not_modified(req, etag, st.st_mtim.tv_sec)) {
        conn_head_begin(c, &h, 304);
        http_head_add(&h, "ETag", "%s", etag);
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
        http_head_add(&h, "Content-Range", "bytes */%llu",
                      (unsigned long long)size);
        http_head_add(&h, "Content-Length", "0");
        conn_respond_head(c, &h, NULL, 0);
        close(fd);
        return;
    }
    conn_head_begin(c, &h, r == HTTP_RANGE_OK ? 206 : 200);
    common_headers(c, &h, rel, etag, &st);
    if (r == HTTP_RANGE_OK)
        http_head_add(&h, "Content-Range", "bytes %llu-%llu/%llu",
                      (unsigned long long)first, (unsigned long long)last,
                      (unsigned long long)size);
    else
        first = 0, last = size - 1;
    uint64_t len = size == 0 ? 0 : last - first + 1;
    http_head_add(&h, "Content-Length", "%llu", (unsigned long long)len);
    if (req->method == HTTP_HEAD || len == 0) {
        conn_respond_head(c, &h, NULL, 0);
        close(fd);
        return;
    }
    conn_respond_file(c, &h, fd, first, len);
}
