/* handler: the one interface between a connection and what serves its
 * request.
 *
 * conn.c owns the socket, TLS, the parser, buffers, deadlines and the
 * response API; it knows no protocol. The router (router.c) picks a handler
 * at the request head and sets it with conn_set_handler; from then on
 * conn.c, pause.c and the access log reach the request only through these
 * calls. A member left NULL means "nothing to do here":
 *
 *   body        body bytes as they arrive; 0 = go on, -1 = answered (or
 *               the connection is closed). NULL: the body is not wanted,
 *               conn.c discards a small one and refuses a large one (413).
 *   complete    the whole message is in: answer now or later (off the
 *               loop); -1 when it answered with an error at once.
 *   abort       the connection is going away (or the parser failed) while
 *               the handler still holds the request: free or detach.
 *   checkpoint  a network change is under way: make what arrived durable;
 *               0 if something was checkpointed, -1 if nothing was.
 *
 * `ctx` is the handler's own per-request state (conn.c never looks into
 * it). A handler that finishes with the request before the connection does
 * lets go with conn_clear_handler. */
#ifndef WORKER_HANDLER_H
#define WORKER_HANDLER_H

#include <stddef.h>

struct conn;

struct handler {
    const char *name;
    int  (*body)(struct conn *c, const char *at, size_t len);
    int  (*complete)(struct conn *c);
    void (*abort)(struct conn *c);
    int  (*checkpoint)(struct conn *c);
};

/* The handler of c's current request, with its state. */
void conn_set_handler(struct conn *c, const struct handler *h, void *ctx);
/* Let go of c, if c still holds ctx (a later request may hold another). */
void conn_clear_handler(struct conn *c, const void *ctx);

#endif
