/* tus.c: placeholder until the tus protocol lands (answers 501). */
#include "worker/tus.h"

#include <string.h>

#include "lib/http/response.h"
#include "worker/conn.h"

bool
tus_wants(struct conn *c, struct http_request *req)
{
    return (c->rel && strncmp(c->rel, ".tus/", 5) == 0)
        || (req->method == HTTP_POST
            && http_header_get(req, "Tus-Resumable") != NULL);
}

int
tus_begin(struct conn *c, struct http_request *req)
{
    (void)req;
    conn_reject(c, 501, "tus is not available yet");
    return -1;
}

int
tus_body(struct conn *c, const char *at, size_t len)
{
    (void)c; (void)at; (void)len;
    return -1;
}

int
tus_complete(struct conn *c)
{
    (void)c;
    return -1;
}

void
tus_abort(struct conn *c)
{
    (void)c;
}

void
tus_options_headers(struct conn *c, struct http_head *h)
{
    (void)c; (void)h;
}
