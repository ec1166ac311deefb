/* fuzz_http_request: lib/http/request.c, the HTTP/1.1 request glue.
 *
 * fuzz-sources: lib/http/request.c lib/util/decimal.c
 * fuzz-libs:    -lhttp_parser
 * fuzz-args:    -max_len=24576
 *
 * The input is a byte stream from a client, pipelining allowed. It is fed
 * three ways: all at once, in pieces whose sizes are drawn from a hash of
 * the input, and (for short inputs) one byte at a time, the way a slow or
 * hostile client delivers it. Whatever the split, the owner must see the
 * same thing: the transcript of every callback (head fields, body bytes,
 * completions, whether it ended in an error) is hashed and the three hashes
 * must agree. A header name or value that http_parser hands over in
 * fragments is joined in the head buffer, which is exactly where a
 * split-dependent bug would live. On each head, and again at completion
 * (chunked trailers arrive in between), the callbacks check what the worker
 * relies on. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "lib/http/request.h"
#include "tests/fuzz/fuzz.h"

struct owner {
    struct http_in *in;
    const char     *buf, *buf_end;      /* the piece being fed */
    uint64_t        digest;             /* transcript */
    bool            in_head;            /* between on_head and complete */
    bool            completed;
    int64_t         body_left;          /* Content-Length bytes to come */
};

static void
mix(struct owner *o, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        o->digest = (o->digest ^ b[i]) * 0x100000001b3ULL;
}

static void
mix_int(struct owner *o, int64_t v)
{
    mix(o, &v, sizeof(v));
}

static void
check_field(const struct http_in *in, uint16_t off, uint16_t len)
{
    FUZZ_CHECK((size_t)off + len < in->head_len);
    FUZZ_CHECK(in->head[off + len] == '\0');
    FUZZ_CHECK(memchr(in->head + off, '\0', len) == NULL);
}

static void
check_head(const struct owner *o, const struct http_request *r)
{
    const struct http_in *in = o->in;
    size_t end = 0;

    FUZZ_CHECK(r == &in->req);
    FUZZ_CHECK(r->target == in->head);
    FUZZ_CHECK(in->head_len <= HTTP_HEAD_MAX);
    FUZZ_CHECK(r->target_len < in->head_len);
    FUZZ_CHECK(strlen(r->target) == r->target_len);
    FUZZ_CHECK(r->nheaders <= HTTP_HEADERS_MAX);
    FUZZ_CHECK(http_method_name(r->method) != NULL);
    end = r->target_len + 1;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http_header *h = &r->headers[i];
        FUZZ_CHECK(h->name_len > 0);
        check_field(in, h->name, h->name_len);
        check_field(in, h->value, h->value_len);
        /* In order, disjoint: name, NUL, value, NUL, next name... */
        FUZZ_CHECK(h->name == end);
        FUZZ_CHECK(h->value == h->name + h->name_len + 1);
        end = (size_t)h->value + h->value_len + 1;
    }
    FUZZ_CHECK(end == in->head_len);

    const char *cl = http_header_get(r, "Content-Length");
    FUZZ_CHECK(r->content_length >= -1);
    FUZZ_CHECK((r->content_length >= 0) == (cl != NULL));
    if (r->content_length >= 0) {
        /* The body length we believe must be the one http_parser frames
         * the body with, or a second request hides inside the first. */
        FUZZ_CHECK(!r->chunked);
        FUZZ_CHECK((uint64_t)r->content_length == in->parser.content_length);
    }
    if (http_header_get(r, "Transfer-Encoding") != NULL)
        FUZZ_CHECK(r->chunked);
    if (r->expect_continue)
        FUZZ_CHECK(strcasecmp(http_header_get(r, "Expect"),
                              "100-continue") == 0);
}

static int
on_head(void *arg, struct http_request *r)
{
    struct owner *o = arg;

    FUZZ_CHECK(!o->in_head);
    FUZZ_CHECK(o->in->in_message && !http_in_idle(o->in));
    check_head(o, r);
    o->in_head = true;
    /* http_parser never reads a CONNECT body: the message completes with
     * the head and the rest is tunnel bytes (the worker answers 405). */
    o->body_left = r->method == HTTP_CONNECT ? -1 : r->content_length;
    mix(o, "H", 1);
    mix_int(o, r->method);
    mix_int(o, r->http_minor);
    mix(o, r->target, r->target_len + 1);
    mix_int(o, (int64_t)r->nheaders);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http_header *h = &r->headers[i];
        mix(o, r->target + h->name, h->name_len + 1u);
        mix(o, r->target + h->value, h->value_len + 1u);
    }
    mix_int(o, r->content_length);
    mix_int(o, r->chunked << 2 | r->keepalive << 1 | r->expect_continue);
    /* The owner may answer at once (403, 405...) and stop the parser. */
    return http_header_get(r, "X-Fuzz-Stop") ? -1 : 0;
}

static int
on_body(void *arg, const char *at, size_t len)
{
    struct owner *o = arg;

    FUZZ_CHECK(o->in_head);
    FUZZ_CHECK(at >= o->buf && at + len <= o->buf_end);
    if (o->body_left >= 0) {
        FUZZ_CHECK((int64_t)len <= o->body_left);
        o->body_left -= (int64_t)len;
    }
    mix(o, at, len);        /* bytes, not piece boundaries */
    return 0;
}

static int
on_complete(void *arg)
{
    struct owner *o = arg;

    FUZZ_CHECK(o->in_head);
    FUZZ_CHECK(o->body_left <= 0);
    FUZZ_CHECK(http_in_eof_ok(o->in));
    /* The owner reads headers again when it answers (CORS, ...): they
     * must still be C strings, chunked trailers or not. */
    const struct http_request *r = &o->in->req;
    FUZZ_CHECK(r->nheaders <= HTTP_HEADERS_MAX);
    for (size_t i = 0; i < r->nheaders; i++) {
        check_field(o->in, r->headers[i].name, r->headers[i].name_len);
        check_field(o->in, r->headers[i].value, r->headers[i].value_len);
    }
    o->in_head = false;
    o->completed = true;
    mix(o, "C", 1);
    return 0;
}

static const struct http_in_callbacks callbacks = {
    on_head, on_body, on_complete
};

/* Feeds one piece the way worker/conn.c does: after a completed message
 * the owner answers and readies the parser for the next; after an error or
 * a stop it stops reading. Returns false once the connection is done. */
static bool
feed_piece(struct owner *o, const char *p, size_t len)
{
    size_t off = 0, used, rounds = 0;

    o->buf = p;
    o->buf_end = p + len;
    while (off < len) {
        FUZZ_CHECK(++rounds <= len + 2);
        enum http_in_status st = http_in_feed(o->in, p + off, len - off,
                                              &used);
        FUZZ_CHECK(used <= len - off);
        off += used;
        if (st == HTTP_IN_MORE) {
            FUZZ_CHECK(off == len);
            return true;
        }
        if (st == HTTP_IN_ERROR) {
            int s = o->in->error_status;
            FUZZ_CHECK(s == 400 || s == 413 || s == 414 || s == 417
                       || s == 431 || s == 501 || s == 505);
            FUZZ_CHECK(o->in->error_reason != NULL);
            /* Not the status: which of two faults http_parser reports
             * first depends on where its data callbacks were cut (a 65th
             * header name split off before a bad byte is a 431, whole it
             * is a 400). That an error happens must not depend on it. */
            mix(o, "E", 1);
            return false;
        }
        FUZZ_CHECK(st == HTTP_IN_PAUSED);
        if (!o->completed) {
            FUZZ_CHECK(o->in_head);     /* only on_head stops us */
            mix(o, "S", 1);
            return false;
        }
        o->completed = false;
        FUZZ_CHECK(used > 0);
        http_in_next(o->in);
        FUZZ_CHECK(http_in_idle(o->in));
    }
    return true;
}

/* mode 0: whole input; 1: hashed piece sizes; 2: one byte at a time. */
static uint64_t
run(const uint8_t *data, size_t size, int mode)
{
    struct owner o;
    uint64_t     rng = fuzz_hash(data, size);
    size_t       pos = 0, n;

    memset(&o, 0, sizeof(o));
    o.digest = 0xcbf29ce484222325ULL;
    if ((o.in = malloc(sizeof(*o.in))) == NULL)
        abort();
    http_in_init(o.in, &callbacks, &o);
    while (pos < size) {
        if (mode == 0) {
            n = size - pos;
        } else if (mode == 2) {
            n = 1;
        } else {
            /* Mostly small pieces, now and then a large one. */
            uint64_t r = fuzz_rand(&rng);
            n = (r & 7) == 0 ? 1 + (r >> 8) % 4096 : 1 + (r >> 8) % 16;
        }
        if (n > size - pos)
            n = size - pos;
        /* A copy of exactly the piece: reading past it is an ASan error,
         * as reading past a recv() would be. */
        char *piece = fuzz_dup(data + pos, n, 0);
        bool more = feed_piece(&o, piece, n);
        free(piece);
        pos += n;
        if (!more)
            break;
    }
    mix_int(&o, http_in_eof_ok(o.in));
    free(o.in);
    return o.digest;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t whole = run(data, size, 0);

    FUZZ_CHECK(run(data, size, 1) == whole);
    if (size <= 2048)
        FUZZ_CHECK(run(data, size, 2) == whole);
    return 0;
}
