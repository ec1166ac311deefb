/* request.c: glue between http_parser's callbacks and one request struct.
 *
 * http_parser may split a header name or value over several callbacks when
 * bytes arrive in pieces; appending every fragment to `head` makes them
 * contiguous again. Names and values are NUL-terminated in place so the owner
 * can use them as C strings. */
#include "lib/http/request.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util/decimal.h"

static int
fail(struct http_in *in, int status, const char *reason)
{
    in->error_status = status;
    in->error_reason = reason;
    return -1;
}

static int
append(struct http_in *in, const char *at, size_t len)
{
    /* Keep one byte for the NUL that ends the current field. */
    if (in->head_len + len + 1 >= sizeof(in->head))
        return fail(in, 431, "request header too large");
    memcpy(in->head + in->head_len, at, len);
    in->head_len += len;
    return 0;
}

static int
terminate(struct http_in *in)
{
    if (in->head_len + 1 >= sizeof(in->head))
        return fail(in, 431, "request header too large");
    in->head[in->head_len++] = '\0';
    return 0;
}

static struct http_in *
from(http_parser *p)
{
    return (struct http_in *)p->data;
}

static int
on_message_begin(http_parser *p)
{
    struct http_in *in = from(p);
    memset(&in->req, 0, sizeof(in->req));
    in->req.content_length = -1;
    in->head_len = 0;
    in->field_state = IN_TARGET;
    in->in_message = true;
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct http_in *in = from(p);
    if (in->req.target_len + len > 8192)
        return fail(in, 414, "request target too long");
    in->req.target_len += len;
    return append(in, at, len);
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_in *in = from(p);
    struct http_request *r = &in->req;

    /* Chunked trailers come through the same callbacks after the head was
     * handed over: they are discarded, never merged into the request. */
    if (r->target != NULL)
        return 0;

    if (in->field_state != IN_NAME) {
        if (terminate(in) < 0)   /* end of the target or previous value */
            return -1;
        if (r->nheaders == HTTP_HEADERS_MAX)
            return fail(in, 431, "too many request headers");
        r->headers[r->nheaders].name = (uint16_t)in->head_len;
        r->headers[r->nheaders].name_len = 0;
        r->nheaders++;
        in->field_state = IN_NAME;
    }
    r->headers[r->nheaders - 1].name_len += (uint16_t)len;
    return append(in, at, len);
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_in *in = from(p);

    if (in->req.target != NULL)      /* a trailer: see on_header_field */
        return 0;
    /* http_parser checks every byte of a value but the first; a NUL there
     * would cut the C string the owner reads (RFC 9110 5.5). */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return fail(in, 400, "control byte in a header value");
    }
    struct http_header *h = &in->req.headers[in->req.nheaders - 1];

    if (in->field_state != IN_VALUE) {
        if (terminate(in) < 0)   /* end of the name */
            return -1;
        h->value = (uint16_t)in->head_len;
        h->value_len = 0;
        in->field_state = IN_VALUE;
    }
    h->value_len += (uint16_t)len;
    return append(in, at, len);
}

/* Headers whose value decides what is stored or how it is authorised. A
 * second copy is ambiguous: we would act on the first while a proxy may
 * honour the last (a v2 MAC binds one Content-Type, a cache or browser sees
 * another), so a request carrying one twice is refused, whatever it is.
 * Host: RFC 9112 3.2 asks for 400 on a second one. */
#define ONCE(name) { name, sizeof(name) - 1, "duplicate " name " header" }
static const struct {
    const char *name;
    size_t      len;
    const char *reason;
} singletons[] = {
    ONCE("Host"), ONCE("Content-Type"), ONCE("Content-Range"),
    ONCE("X-Upload-Session-ID"), ONCE("X-Chunk-Number"),
    ONCE("X-Total-Chunks"), ONCE("X-Total-Size"), ONCE("Upload-Length"),
    ONCE("Upload-Offset")
};
#undef ONCE

/* The reason naming the first such header sent twice, or NULL. */
static const char *
duplicated(const struct http_request *r)
{
    for (size_t k = 0; k < sizeof(singletons) / sizeof(singletons[0]); k++) {
        size_t seen = 0;
        for (size_t i = 0; i < r->nheaders; i++)
            if (r->headers[i].name_len == singletons[k].len
                && strncasecmp(r->target + r->headers[i].name,
                               singletons[k].name, singletons[k].len) == 0
                && ++seen == 2)
                return singletons[k].reason;
    }
    return NULL;
}

static int
on_headers_complete(http_parser *p)
{
    struct http_in *in = from(p);
    struct http_request *r = &in->req;

    if (in->field_state == IN_NAME)
        return fail(in, 400, "header without value");
    if (terminate(in) < 0)          /* end of the target or last value */
        return -1;
    r->target = in->head;
    r->method = p->method;
    r->http_minor = p->http_minor;
    /* http_parser takes any digits (HTTP/0.9 as well as HTTP/7.3): what
     * an unknown version means is nobody's guess, so we do not guess. */
    if (p->http_major != 1 || p->http_minor > 1) {
        snprintf(in->reason_buf, sizeof(in->reason_buf), "HTTP/%u.%u is not "
                 "supported; use HTTP/1.1", p->http_major, p->http_minor);
        return fail(in, 505, in->reason_buf);
    }
    if (p->http_minor == 1 && http_header_get(r, "Host") == NULL)
        return fail(in, 400, "missing Host header (required in HTTP/1.1)");
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->keepalive = http_should_keep_alive(p) != 0;

    const char *dup = duplicated(r);
    if (dup != NULL)
        return fail(in, 400, dup);
    const char *cl = http_header_get(r, "Content-Length");
    uint64_t n;
    if (cl && decimal_parse(cl, INT64_MAX, &n) < 0)
        return fail(in, 400, "invalid Content-Length");
    if (cl)
        r->content_length = (int64_t)n;
    if (cl && r->chunked)   /* RFC 9112 6.3: a smuggling vector; refuse */
        return fail(in, 400, "both Content-Length and chunked");
    const char *te = http_header_get(r, "Transfer-Encoding");
    if (te && !r->chunked)
        return fail(in, 501, "unsupported Transfer-Encoding");
    const char *ex = http_header_get(r, "Expect");
    if (ex) {
        if (strcasecmp(ex, "100-continue") != 0)
            return fail(in, 417, "unsupported Expect");
        r->expect_continue = p->http_minor >= 1;
    }
    if (p->upgrade)
        r->keepalive = false;
    return in->cb->on_head(in->owner, r) < 0 ? -1 : 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    struct http_in *in = from(p);
    return in->cb->on_body(in->owner, at, len) < 0 ? -1 : 0;
}

static int
on_message_complete(http_parser *p)
{
    struct http_in *in = from(p);
    in->in_message = false;
    /* Stop here so pipelined requests wait until this one is answered. */
    http_parser_pause(p, 1);
    return in->cb->on_complete(in->owner) < 0 ? -1 : 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void
http_in_init(struct http_in *in, const struct http_in_callbacks *cb,
             void *owner)
{
    /* Everything but the 16 KiB head buffer: only bytes a request wrote
     * are read back (through head_len and the header offsets, all reset
     * here or at message begin), so a reused parser costs no memset. */
    memset(&in->req, 0, sizeof(in->req));
    in->req.content_length = -1;
    in->cb = cb;
    in->owner = owner;
    in->head_len = 0;
    in->field_state = IN_TARGET;
    in->reason_buf[0] = '\0';
    http_in_next(in);
}

/* Where in buf the head continues a line with SP or HTAB (obs-fold), or
 * len. Follows the head across feeds (in->scan) and stops at its end, so
 * body bytes are never looked at. Empty lines before the request line are
 * skipped as http_parser does (RFC 9112 2.2). */
static size_t
find_fold(struct http_in *in, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && in->scan != SCAN_DONE; i++) {
        char ch = buf[i];
        switch (in->scan) {
        case SCAN_START:
            if (ch != '\r' && ch != '\n')
                in->scan = SCAN_LINE;
            break;
        case SCAN_LINE:
            if (ch == '\n')
                in->scan = SCAN_LF;
            break;
        case SCAN_LF:
            if (ch == ' ' || ch == '\t')
                return i;
            in->scan = ch == '\r' ? SCAN_LFCR : ch == '\n' ? SCAN_DONE
                     : SCAN_LINE;
            break;
        case SCAN_LFCR:
            in->scan = ch == '\n' ? SCAN_DONE : SCAN_LINE;
            break;
        case SCAN_DONE:
            break;
        }
    }
    return len;
}

static enum http_in_status
fold_error(struct http_in *in)
{
    const struct http_request *r = &in->req;
    const struct http_header  *h = r->nheaders ? &r->headers[r->nheaders - 1]
                                               : NULL;
    if (h == NULL)
        snprintf(in->reason_buf, sizeof(in->reason_buf), "whitespace at the "
                 "start of a header line");
    else
        snprintf(in->reason_buf, sizeof(in->reason_buf), "obsolete line "
                 "folding in header %.*s", h->name_len > 40 ? 40
                 : (int)h->name_len, in->head + h->name);
    in->error_status = 400;
    in->error_reason = in->reason_buf;
    return HTTP_IN_ERROR;
}

enum http_in_status
http_in_feed(struct http_in *in, const char *buf, size_t len, size_t *used_r)
{
    *used_r = 0;
    if (len == 0)
        return HTTP_IN_MORE;
    /* A fold is refused before http_parser sees it (it would unfold it):
     * the parser gets the bytes up to it, to name the folded header. */
    size_t upto = find_fold(in, buf, len);
    size_t n = upto == 0 ? 0 : http_parser_execute(&in->parser, &settings,
                                                   buf, upto);
    enum http_errno e = HTTP_PARSER_ERRNO(&in->parser);
    *used_r = n;
    if (upto < len && e == HPE_OK && n == upto)
        return fold_error(in);
    if (e == HPE_OK)
        return HTTP_IN_MORE;
    if (e == HPE_PAUSED)
        return HTTP_IN_PAUSED;
    if (in->error_status != 0)
        return HTTP_IN_ERROR;
    /* A callback stopped us on purpose: the owner is answering. */
    if (e == HPE_CB_headers_complete || e == HPE_CB_body
        || e == HPE_CB_message_complete)
        return HTTP_IN_PAUSED;
    in->error_status = e == HPE_HEADER_OVERFLOW ? 431
                     : e == HPE_INVALID_METHOD ? 501 : 400;
    in->error_reason = http_errno_description(e);
    return HTTP_IN_ERROR;
}

bool
http_in_eof_ok(const struct http_in *in)
{
    return !in->in_message;
}

void
http_in_next(struct http_in *in)
{
    http_parser_init(&in->parser, HTTP_REQUEST);
    in->parser.data = in;
    in->error_status = 0;
    in->error_reason = NULL;
    in->in_message = false;
    in->scan = SCAN_START;
}

bool
http_in_idle(const struct http_in *in)
{
    return !in->in_message;
}

const char *
http_header_get(const struct http_request *req, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name_len == nlen
            && strncasecmp(req->target + h->name, name, nlen) == 0)
            return req->target + h->value;
    }
    return NULL;
}

const char *
http_method_name(int method)
{
    return http_method_str((enum http_method)method);
}
