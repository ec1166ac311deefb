/* test_request.c: lib/http/request, where it is stricter than http_parser:
 * obs-fold, HTTP versions, Host. Each request is also fed one byte at a
 * time, since the fold scanner must follow the head across feeds. */
#include "tests/unit/unit.h"
#include "lib/http/request.h"

#include <stdio.h>
#include <string.h>

struct seen { int heads; char host[64]; };

static int
on_head(void *owner, struct http_request *req)
{
    struct seen *s = owner;
    const char *h = http_header_get(req, "Host");
    s->heads++;
    snprintf(s->host, sizeof(s->host), "%s", h ? h : "");
    return 0;
}

static int on_body(void *o, const char *at, size_t len)
{ (void)o; (void)at; (void)len; return 0; }
static int on_complete(void *o) { (void)o; return 0; }

static const struct http_in_callbacks cbs = { on_head, on_body, on_complete };
static struct http_in in;

/* Feeds text whole (bytewise: one byte per call); returns the status of
 * the feed that ended it, the head count in *heads. */
static int
feed(const char *text, int bytewise, struct seen *s)
{
    size_t len = strlen(text), off = 0;
    enum http_in_status st = HTTP_IN_MORE;

    memset(s, 0, sizeof(*s));
    http_in_init(&in, &cbs, s);
    while (off < len && st == HTTP_IN_MORE) {
        size_t used, n = bytewise ? 1 : len - off;
        st = http_in_feed(&in, text + off, n, &used);
        off += used;
        if (st == HTTP_IN_MORE && used != n)
            return -1;
    }
    return (int)st;
}

static void
refused(const char *text, int status, const char *needle)
{
    struct seen s;
    for (int bw = 0; bw < 2; bw++) {
        CU_ASSERT_EQUAL(feed(text, bw, &s), HTTP_IN_ERROR);
        CU_ASSERT_EQUAL(in.error_status, status);
        CU_ASSERT_EQUAL(s.heads, 0);
        CU_ASSERT_PTR_NOT_NULL(in.error_reason);
        if (in.error_reason == NULL || strstr(in.error_reason, needle) == NULL) {
            fprintf(stderr, "%s: reason %s lacks %s\n", text,
                    in.error_reason ? in.error_reason : "(none)", needle);
            CU_FAIL("reason");
        }
    }
}

static void
accepted(const char *text, const char *host)
{
    struct seen s;
    for (int bw = 0; bw < 2; bw++) {
        CU_ASSERT_NOT_EQUAL(feed(text, bw, &s), HTTP_IN_ERROR);
        CU_ASSERT_EQUAL(s.heads, 1);
        CU_ASSERT_STRING_EQUAL(s.host, host);
    }
}

static void
test_obs_fold(void)
{
    refused("PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
            " chunked\r\n\r\n", 400, "folding in header Transfer-Encoding");
    refused("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\t5\r\n\r\nhello",
            400, "folding in header Content-Length");
    refused("GET / HTTP/1.1\r\nHost: x\r\nX-A: b\n c\n\n", 400, "X-A");
    refused("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, "start of a header");
    /* Spaces and tabs inside a line, and blank lines before the request
     * line, are not folds. */
    accepted("\r\n\r\nGET / HTTP/1.1\r\nHost: a b\t c\r\nX:  y\r\n\r\n",
             "a b\t c");
    /* The body is not looked at: a line of it may start with a space. */
    accepted("PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n\n \n \n",
             "h");
}

static void
test_versions(void)
{
    refused("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0");
    refused("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, "HTTP/1.2");
    refused("GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505, "HTTP/0.9");
    refused("GET / HTTP/9.1\r\nHost: x\r\n\r\n", 505, "not supported");
    accepted("GET / HTTP/1.0\r\n\r\n", "");
    accepted("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "x");
}

static void
test_host(void)
{
    refused("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "missing Host");
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
            "duplicate Host");
    accepted("GET / HTTP/1.1\r\nhOsT: \r\n\r\n", "");    /* empty: allowed */
}

/* A parser handed to another connection (the worker's cache) keeps its
 * head buffer as it was: nothing of the last request may show through. */
struct heads { int n; int has_old, has_new; char target[64]; };

static int
on_head_reuse(void *owner, struct http_request *req)
{
    struct heads *h = owner;
    h->n++;
    h->has_old = http_header_get(req, "X-Old-Header") != NULL;
    h->has_new = http_header_get(req, "X-New") != NULL;
    snprintf(h->target, sizeof(h->target), "%s", req->target);
    return 0;
}

static const struct http_in_callbacks reuse_cbs = {
    on_head_reuse, on_body, on_complete
};

static enum http_in_status
feed_all(struct http_in *p, const char *text)
{
    size_t used;
    return http_in_feed(p, text, strlen(text), &used);
}

static void
test_reuse(void)
{
    static struct http_in p;
    struct heads a = { 0 }, b = { 0 };
    char big[4096];

    memset(&p, 0x5a, sizeof(p));      /* as malloc may hand it over */
    http_in_init(&p, &reuse_cbs, &a);
    snprintf(big, sizeof(big), "GET /first-and-much-longer-target HTTP/1.1"
             "\r\nHost: a\r\nX-Old-Header: %0200d\r\n\r\n", 7);
    CU_ASSERT_EQUAL(feed_all(&p, big), HTTP_IN_PAUSED);
    CU_ASSERT(a.n == 1 && a.has_old && !a.has_new);
    CU_ASSERT_STRING_EQUAL(a.target, "/first-and-much-longer-target");

    /* Another owner: a shorter request, none of the old headers. */
    http_in_init(&p, &reuse_cbs, &b);
    CU_ASSERT_EQUAL(feed_all(&p, "GET /x HTTP/1.1\r\nHost: b\r\n"
                             "X-New: 1\r\n\r\n"), HTTP_IN_PAUSED);
    CU_ASSERT(b.n == 1 && !b.has_old && b.has_new);
    CU_ASSERT_STRING_EQUAL(b.target, "/x");
    CU_ASSERT_EQUAL(a.n, 1);

    /* After a refused request, the next owner starts clean. */
    http_in_init(&p, &reuse_cbs, &b);
    CU_ASSERT_EQUAL(feed_all(&p, "GET / HTTP/1.1\r\nHost: x\r\n"
                             " folded\r\n\r\n"), HTTP_IN_ERROR);
    CU_ASSERT_EQUAL(p.error_status, 400);
    http_in_init(&p, &reuse_cbs, &b);
    CU_ASSERT_EQUAL(p.error_status, 0);
    CU_ASSERT_PTR_NULL(p.error_reason);
    CU_ASSERT_EQUAL(feed_all(&p, "GET /y HTTP/1.1\r\nHost: y\r\n\r\n"),
                    HTTP_IN_PAUSED);
    CU_ASSERT_STRING_EQUAL(b.target, "/y");
    CU_ASSERT(b.n == 2 && !b.has_old && !b.has_new);
}

static CU_TestInfo tests[] = {
    { "a parser reused by another owner starts clean", test_reuse },
    { "obs-fold is refused, not unfolded", test_obs_fold },
    { "only HTTP/1.0 and HTTP/1.1", test_versions },
    { "HTTP/1.1 needs one Host", test_host },
    CU_TEST_INFO_NULL
};
UNIT_SUITE("request", NULL, NULL, tests);
