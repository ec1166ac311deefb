/* response.c: status lines, headers, dates and ranges. */
#define _GNU_SOURCE
#include "lib/http/response.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
http_status_text(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 104: return "Upload Resumption Supported";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 460: return "Checksum Mismatch";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default:  return "Unknown";
    }
}

static void
vappend(struct http_head *h, const char *fmt, va_list ap)
{
    if (h->overflow)
        return;
    int n = vsnprintf(h->buf + h->len, sizeof(h->buf) - h->len, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof(h->buf) - h->len) {
        h->overflow = 1;
        return;
    }
    h->len += (size_t)n;
}

static void
append(struct http_head *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vappend(h, fmt, ap);
    va_end(ap);
}

void
http_head_start(struct http_head *h, int code)
{
    h->len = 0;
    h->overflow = 0;
    append(h, "HTTP/1.1 %d %s\r\n", code, http_status_text(code));
}

void
http_head_add(struct http_head *h, const char *name, const char *fmt, ...)
{
    va_list ap;
    append(h, "%s: ", name);
    va_start(ap, fmt);
    vappend(h, fmt, ap);
    va_end(ap);
    append(h, "\r\n");
}

void
http_head_end(struct http_head *h)
{
    append(h, "\r\n");
}

void
http_date(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

int
http_date_parse(const char *s, time_t *t_r)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0')
        return -1;
    *t_r = timegm(&tm);
    return 0;
}

/* Strict decimal: digits only, no sign, no overflow. */
static const char *
parse_u64(const char *p, uint64_t *out)
{
    if (!isdigit((unsigned char)*p))
        return NULL;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    *out = v;
    return p;
}

enum http_range
http_range_parse(const char *v, uint64_t size, uint64_t *first_r,
                 uint64_t *last_r)
{
    uint64_t a, b;
    const char *p;

    if (v == NULL || strncmp(v, "bytes=", 6) != 0)
        return HTTP_RANGE_NONE;
    v += 6;
    if (strchr(v, ','))
        return HTTP_RANGE_NONE;
    if (*v == '-') {                                /* suffix: last n bytes */
        if ((p = parse_u64(v + 1, &b)) == NULL || *p != '\0')
            return HTTP_RANGE_NONE;
        if (b == 0 || size == 0)
            return HTTP_RANGE_UNSATISFIABLE;
        *first_r = b >= size ? 0 : size - b;
        *last_r = size - 1;
        return HTTP_RANGE_OK;
    }
    if ((p = parse_u64(v, &a)) == NULL || *p != '-')
        return HTTP_RANGE_NONE;
    p++;
    if (*p == '\0') {
        b = UINT64_MAX;
    } else if ((p = parse_u64(p, &b)) == NULL || *p != '\0' || b < a) {
        return HTTP_RANGE_NONE;
    }
    if (a >= size)
        return HTTP_RANGE_UNSATISFIABLE;
    *first_r = a;
    *last_r = b >= size ? size - 1 : b;
    return HTTP_RANGE_OK;
}

int
http_content_range_parse(const char *v, uint64_t *first_r, uint64_t *last_r,
                         int64_t *total_r)
{
    uint64_t a, b, t;
    const char *p;

    if (v == NULL || strncmp(v, "bytes ", 6) != 0)
        return -1;
    if ((p = parse_u64(v + 6, &a)) == NULL || *p != '-')
        return -1;
    if ((p = parse_u64(p + 1, &b)) == NULL || *p != '/' || b < a)
        return -1;
    p++;
    if (strcmp(p, "*") == 0) {
        *total_r = -1;
    } else {
        if ((p = parse_u64(p, &t)) == NULL || *p != '\0' || b >= t
            || t > (uint64_t)INT64_MAX)
            return -1;
        *total_r = (int64_t)t;
    }
    *first_r = a;
    *last_r = b;
    return 0;
}
