/* conn_io.c: a connection's bytes in and out, on a plain socket or TLS.
 *
 * The one place that knows whether a connection is encrypted: plain
 * sockets use recv/send and sendfile, TLS goes through OpenSSL, which may
 * need to read before it can write (tls_want). */
#define _GNU_SOURCE
#include "worker/conn_io.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/util/log.h"
#include "worker/conn.h"

#define SENDFILE_CHUNK   (2 * 1024 * 1024)   /* fairness between clients */
#define TLS_FILE_BUF     (16 * 1024)         /* one TLS record */

/* Both return bytes moved, 0 for EOF (recv only), or -1 with errno: EAGAIN
 * when the socket (or OpenSSL, see tls_want) must wait. */
static ssize_t
tls_result(struct conn *c, int n)
{
    int e = SSL_get_error(c->ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        c->tls_want = EPOLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->tls_want = EPOLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            return 0;    /* EOF without close_notify: a dropped client */
        return -1;
    default:
        log_debug("%s: TLS: %s", c->peer,
                  ERR_reason_error_string(ERR_peek_last_error()));
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

ssize_t
conn_io_recv(struct conn *c, void *buf, size_t len)
{
    if (c->ssl == NULL)
        return recv(c->io.fd, buf, len, 0);
    ERR_clear_error();
    errno = 0;
    c->tls_want = 0;
    int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? n : tls_result(c, n);
}

ssize_t
conn_io_send(struct conn *c, const void *buf, size_t len, bool more)
{
    if (c->ssl == NULL)
        return send(c->io.fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    ERR_clear_error();
    errno = 0;
    c->tls_want = 0;
    int n = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? n : tls_result(c, n);
}

/* The interest to wait with: what OpenSSL asked for, else the plain one. */
uint32_t
conn_io_want(struct conn *c, uint32_t plain)
{
    uint32_t w = c->ssl && c->tls_want ? c->tls_want : plain;
    c->tls_want = 0;
    return w;
}


ssize_t
conn_io_send_file(struct conn *c)
{
    size_t want_len = c->file_left > SENDFILE_CHUNK ? SENDFILE_CHUNK
                                                    : c->file_left;
    if (c->ssl == NULL) {
        off_t off = (off_t)c->file_off;
        return sendfile(c->io.fd, c->file_fd, &off, want_len);
    }
    if (c->tbuf_pos == c->tbuf_len) {
        if (c->tbuf == NULL && (c->tbuf = malloc(TLS_FILE_BUF)) == NULL)
            return -1;
        if (want_len > TLS_FILE_BUF)
            want_len = TLS_FILE_BUF;
        ssize_t r = pread(c->file_fd, c->tbuf, want_len, (off_t)c->file_off);
        if (r <= 0)
            return r;
        c->tbuf_len = (size_t)r;
        c->tbuf_pos = 0;
    }
    ssize_t n = conn_io_send(c, c->tbuf + c->tbuf_pos,
                             c->tbuf_len - c->tbuf_pos, false);
    if (n > 0)
        c->tbuf_pos += (size_t)n;
    return n;
}

