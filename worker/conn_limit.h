/* conn_limit: what one client may hold, and memory given back after a
 * flood. For the parts of conn (conn.c, conn_respond.c) and worker.c only;
 * the router counts uploads through conn_count_upload (conn.h).
 *
 * Per client address, across all workers (shm/peers.h): at most
 * server.max_connections_per_address open connections (one more is
 * answered 503 with Retry-After and closed; on TLS listeners, closed) and
 * server.max_uploads_per_address uploads in progress (503 + Retry-After).
 * Read buffers come from a small per-worker cache; past it they are
 * returned to the kernel at once, and the heap is trimmed once a flood of
 * connections has drained. */
#ifndef WORKER_CONN_LIMIT_H
#define WORKER_CONN_LIMIT_H

#include <stdbool.h>
#include <sys/socket.h>

struct conn;
struct worker;

/* At accept: count c for its address; false if that is over the limit
 * (then call conn_limit_refuse once c is set up). */
bool  conn_limit_accept(struct conn *c, const struct sockaddr *sa);
void  conn_limit_refuse(struct conn *c);
/* At close: whatever c still counts. */
void  conn_limit_release(struct conn *c);
/* The answer to an upload was sent: it is no longer in progress. */
void  conn_upload_done(struct conn *c);

/* Read buffers (CONN_RBUF_SIZE). */
char *conn_rbuf_get(struct worker *w);
void  conn_rbuf_put(struct worker *w, char *buf);
/* Request parsers, uninitialised (http_in_init): a few kept for reuse. */
struct http_in *conn_in_get(struct worker *w);
void  conn_in_put(struct worker *w, struct http_in *in);

void  conn_memory_init(void);           /* worker start */
void  conn_memory_tick(struct worker *w);   /* every tick */
void  conn_memory_fini(struct worker *w);   /* worker exit */

#endif
