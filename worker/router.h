/* router: which handler serves a request, decided from its parsed head.
 *
 * worker.c sets w->route = router_route at start-up; conn.c calls it from
 * the parser's head callback. Nothing below the router includes this
 * header: the handlers do not know each other, conn.c knows none of them.
 * A new protocol is its own file(s) plus one line in router_route. */
#ifndef WORKER_ROUTER_H
#define WORKER_ROUTER_H

struct conn;
struct http_request;

/* Splits the target, applies the storage gate, then starts the request's
 * handler (conn_set_handler). 0 = read the body, -1 = answered. */
int router_route(struct conn *c, struct http_request *req);

#endif
