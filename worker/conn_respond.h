/* conn_respond: the response API declared in conn.h (conn_head_begin,
 * conn_respond_*, conn_reject, conn_send_continue, conn_flush), written
 * out through conn_io. What conn.c needs beyond that: */
#ifndef WORKER_CONN_RESPOND_H
#define WORKER_CONN_RESPOND_H

struct conn;

/* Drop what is left of the response (buffers, file, TLS copy). */
void conn_end_response(struct conn *c);

#endif
