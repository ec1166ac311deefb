/* response: building response heads, HTTP dates and byte ranges.
 *
 * A response head is formatted into a caller-owned fixed buffer; running out
 * of room is an error the caller turns into a 500, never a truncated head. */
#ifndef LIB_HTTP_RESPONSE_H
#define LIB_HTTP_RESPONSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct http_head {
    char   buf[4096];
    size_t len;
    int    overflow;
};

const char *http_status_text(int code);
void http_head_start(struct http_head *h, int code);
void http_head_add(struct http_head *h, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_head_end(struct http_head *h);     /* adds the blank line */

/* The same without printf, for what every small request's answer carries
 * (a formatted header cost ~5 % of a 4 KiB GET's CPU): a header whose
 * value is a string or a number, and whole pre-built "Name: value\r\n"
 * lines, such as a block of constant headers. */
void http_head_put(struct http_head *h, const char *name, const char *value);
void http_head_put_u64(struct http_head *h, const char *name, uint64_t v);
void http_head_raw(struct http_head *h, const char *lines, size_t len);
/* "Content-Range: bytes first-last/size", or with size_only
 * "Content-Range: bytes * /size" (without the space: a 416's). */
void http_head_put_range(struct http_head *h, uint64_t first, uint64_t last,
                         uint64_t size, int size_only);

#define HTTP_DATE_LEN 29    /* strlen of an IMF-fixdate */

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), NUL-terminated; out must
 * hold HTTP_DATE_LEN + 1 bytes (outlen smaller: out gets ""). Made by hand:
 * no locale, no strftime. */
void http_date(time_t t, char *out, size_t outlen);
int  http_date_parse(const char *s, time_t *t_r);

enum http_range { HTTP_RANGE_NONE, HTTP_RANGE_OK, HTTP_RANGE_UNSATISFIABLE };
/* "bytes=a-b" | "bytes=a-" | "bytes=-n" against a file of `size` bytes.
 * Several ranges or anything unparsable yields NONE (serve the whole file,
 * which RFC 9110 14.2 allows). */
enum http_range http_range_parse(const char *v, uint64_t size,
                                 uint64_t *first_r, uint64_t *last_r);

/* Request header "Content-Range: bytes a-b/total" (total may be "*").
 * total_r is -1 for "*". 0 on success, -1 if malformed or a > b. */
int http_content_range_parse(const char *v, uint64_t *first_r,
                             uint64_t *last_r, int64_t *total_r);

#endif
