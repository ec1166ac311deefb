/* request: one HTTP/1.1 request at a time, parsed with Node's http_parser.
 *
 * The parser is fed whatever bytes arrived; it calls back into the owner
 * (the worker's connection) at three points: headers complete (decide and set
 * up a body sink), body bytes (already de-chunked), message complete (finish).
 * After a message completes the parser pauses, so pipelined bytes stay unread
 * until the owner has answered and calls http_in_next. Header bytes are copied
 * into a fixed buffer: a request whose head exceeds it gets 431.
 *
 * Stricter than http_parser where a proxy in front of us might read the
 * same bytes differently (request smuggling): a header continued on the
 * next line (obs-fold, RFC 9112 5.2) is refused with 400, never unfolded;
 * only HTTP/1.0 and HTTP/1.1 are served (505 otherwise); an HTTP/1.1
 * request without Host gets 400 (RFC 9112 3.2). */
#ifndef LIB_HTTP_REQUEST_H
#define LIB_HTTP_REQUEST_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX     16384   /* request line + headers */
#define HTTP_HEADERS_MAX  64

struct http_header { uint16_t name, name_len, value, value_len; };

struct http_request {
    int        method;           /* enum http_method */
    int        http_minor;
    const char *target;          /* NUL-terminated, points into head */
    size_t      target_len;
    struct http_header headers[HTTP_HEADERS_MAX];
    size_t      nheaders;
    int64_t     content_length;  /* -1: none given */
    bool        chunked;
    bool        keepalive;
    bool        expect_continue;
};

struct http_in;

struct http_in_callbacks {
    /* Return 0 to go on, -1 to stop parsing (the owner has answered). */
    int (*on_head)(void *owner, struct http_request *req);
    int (*on_body)(void *owner, const char *at, size_t len);
    int (*on_complete)(void *owner);
};

enum http_in_status {
    HTTP_IN_MORE,      /* consumed everything, want more bytes */
    HTTP_IN_PAUSED,    /* a message completed or a callback stopped us */
    HTTP_IN_ERROR,     /* malformed: answer with http_in_error_status */
};

struct http_in {
    http_parser parser;
    struct http_request req;
    const struct http_in_callbacks *cb;
    void       *owner;
    char        head[HTTP_HEAD_MAX];
    size_t      head_len;
    enum { IN_TARGET, IN_NAME, IN_VALUE } field_state;
    int         error_status;   /* 400, 413, 414, 431, 501, 505 */
    const char *error_reason;
    bool        in_message;
    /* The raw head as it arrives, before the parser sees it: where a line
     * begins, to find obs-fold (http_parser would unfold it). */
    enum { SCAN_START, SCAN_LINE, SCAN_LF, SCAN_LFCR, SCAN_DONE } scan;
    char        reason_buf[96];  /* error_reason naming a header */
};

/* Readies in (fresh from malloc, or used before by any owner) for a new
 * connection's first request. */
void http_in_init(struct http_in *in, const struct http_in_callbacks *cb,
                  void *owner);
/* Feed bytes; *used_r is how many were consumed (the rest must be kept). */
enum http_in_status http_in_feed(struct http_in *in, const char *buf,
                                 size_t len, size_t *used_r);
/* The peer closed: did that end a message legitimately? */
bool http_in_eof_ok(const struct http_in *in);
/* Ready the parser for the next request on this connection. */
void http_in_next(struct http_in *in);
/* True while between requests (no byte of the next one seen yet). */
bool http_in_idle(const struct http_in *in);

/* Case-insensitive lookup; NULL if absent. Value is NUL-terminated. */
const char *http_header_get(const struct http_request *req, const char *name);
const char *http_method_name(int method);

#endif
