/* response.c: status lines, headers, dates and ranges. */
#define _GNU_SOURCE
#include "lib/http/response.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util/decimal.h"

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

/* Appends len bytes, or marks the head overflowed (never truncates). */
static void
put(struct http_head *h, const char *p, size_t len)
{
    if (h->overflow)
        return;
    if (len > sizeof(h->buf) - h->len - 1) {    /* as vsnprintf: keep a NUL */
        h->overflow = 1;
        return;
    }
    memcpy(h->buf + h->len, p, len);
    h->len += len;
}

#define PUT_LIT(h, lit) put((h), (lit), sizeof(lit) - 1)

static void
put_name(struct http_head *h, const char *name)
{
    put(h, name, strlen(name));
    PUT_LIT(h, ": ");
}

static void
put_u64(struct http_head *h, uint64_t v)
{
    char d[DECIMAL_MAX_DIGITS];
    put(h, d, decimal_format(v, d));
}

void
http_head_start(struct http_head *h, int code)
{
    const char *text = http_status_text(code);

    h->len = 0;
    h->overflow = 0;
    PUT_LIT(h, "HTTP/1.1 ");
    put_u64(h, code < 0 ? 0 : (uint64_t)code);
    PUT_LIT(h, " ");
    put(h, text, strlen(text));
    PUT_LIT(h, "\r\n");
}

void
http_head_add(struct http_head *h, const char *name, const char *fmt, ...)
{
    va_list ap;
    put_name(h, name);
    va_start(ap, fmt);
    vappend(h, fmt, ap);
    va_end(ap);
    PUT_LIT(h, "\r\n");
}

void
http_head_put(struct http_head *h, const char *name, const char *value)
{
    put_name(h, name);
    put(h, value, strlen(value));
    PUT_LIT(h, "\r\n");
}

void
http_head_put_u64(struct http_head *h, const char *name, uint64_t v)
{
    put_name(h, name);
    put_u64(h, v);
    PUT_LIT(h, "\r\n");
}

void
http_head_raw(struct http_head *h, const char *lines, size_t len)
{
    put(h, lines, len);
}

void
http_head_put_range(struct http_head *h, uint64_t first, uint64_t last,
                    uint64_t size, int size_only)
{
    PUT_LIT(h, "Content-Range: bytes ");
    if (size_only) {
        PUT_LIT(h, "*");
    } else {
        put_u64(h, first);
        PUT_LIT(h, "-");
        put_u64(h, last);
    }
    PUT_LIT(h, "/");
    put_u64(h, size);
    PUT_LIT(h, "\r\n");
}

void
http_head_end(struct http_head *h)
{
    PUT_LIT(h, "\r\n");
}

static void
two_digits(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void
http_date(time_t t, char *out, size_t outlen)
{
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    /* Years 0..9999 fit the format; outside, the nearest second that does. */
    const time_t first = (time_t)-62167219200LL, last = (time_t)253402300799LL;
    struct tm tm;

    if (outlen < HTTP_DATE_LEN + 1) {
        if (outlen > 0)
            out[0] = '\0';
        return;
    }
    t = t < first ? first : t > last ? last : t;
    gmtime_r(&t, &tm);
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    memcpy(out, days + 3 * tm.tm_wday, 3);
    memcpy(out + 3, ", ", 2);
    two_digits(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, months + 3 * tm.tm_mon, 3);
    out[11] = ' ';
    two_digits(out + 12, (tm.tm_year + 1900) / 100);
    two_digits(out + 14, (tm.tm_year + 1900) % 100);
    out[16] = ' ';
    two_digits(out + 17, tm.tm_hour);
    out[19] = ':';
    two_digits(out + 20, tm.tm_min);
    out[22] = ':';
    two_digits(out + 23, tm.tm_sec);
    memcpy(out + 25, " GMT", 5);        /* with the NUL */
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
