/* conn_io: a connection's bytes in and out, plain socket or TLS. For the
 * parts of conn (conn.c, conn_respond.c) only; handlers answer through
 * conn.h.
 *
 * recv and send return bytes moved, 0 for EOF (recv only), or -1 with
 * errno: EAGAIN when the socket (or OpenSSL, see tls_want) must wait. */
#ifndef WORKER_CONN_IO_H
#define WORKER_CONN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conn;

ssize_t  conn_io_recv(struct conn *c, void *buf, size_t len);
ssize_t  conn_io_send(struct conn *c, const void *buf, size_t len, bool more);
/* The epoll interest to wait with: what OpenSSL asked for, else `plain`. */
uint32_t conn_io_want(struct conn *c, uint32_t plain);
/* The next piece of a file body (c->file_fd at c->file_off, at most
 * c->file_left): sendfile on plain sockets, pread + SSL_write on TLS. */
ssize_t  conn_io_send_file(struct conn *c);

#endif
