/* conn_respond.c: the response API of conn.h, and writing it out.
 *
 * Every answer gets the common headers (Date, Server, CORS, Connection),
 * is counted, and is held (no bytes into a switching network) while the
 * worker is paused. Once all is sent the connection either closes
 * (lingering, RFC 9112 9.6) or goes back to reading the next request. */
#define _GNU_SOURCE
#include "worker/conn_respond.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn.h"
#include "worker/conn_io.h"
#include "worker/cors.h"
#include "worker/conn_limit.h"

#define LINGER_MS        2000

void
conn_end_response(struct conn *c)
{
    free(c->wbuf);
    c->wbuf = NULL;
    c->wlen = c->wpos = 0;
    if (c->file_fd >= 0)
        close(c->file_fd);
    c->file_fd = -1;
    c->file_left = 0;
    free(c->tbuf);
    c->tbuf = NULL;
    c->tbuf_len = c->tbuf_pos = 0;
}


static void
add_cors(struct conn *c, struct http_head *h)
{
    const struct conf *cf = c->w->conf;
    const char *origin = c->in ? http_header_get(&c->in->req, "Origin") : NULL;
    if (origin == NULL || cf->ncors_origins == 0)
        return;
    for (size_t i = 0; i < cf->ncors_origins; i++) {
        if (strcmp(cf->cors_origins[i], "*") == 0) {
            http_head_put(h, "Access-Control-Allow-Origin", "*");
            break;
        }
        if (strcasecmp(cf->cors_origins[i], origin) == 0) {
            http_head_put(h, "Access-Control-Allow-Origin", origin);
            http_head_put(h, "Vary", "Origin");
            break;
        }
    }
    /* On every answer, errors too: a page must be able to read why. */
    static const char expose[] =
        "Access-Control-Expose-Headers: " CORS_EXPOSE_HEADERS "\r\n";
    http_head_raw(h, expose, sizeof(expose) - 1);
}

/* "Date: <IMF-fixdate>\r\n" of the loop's second: formatted at most once
 * a second per worker instead of once per answer (gmtime and formatting
 * were about 1 % of a 4 KiB GET). */
static const char *
date_line(struct worker *w, size_t *len_r)
{
    time_t now = loop_now_wall(w->loop);

    if (now != w->date_sec || w->date_line[0] == '\0') {
        memcpy(w->date_line, "Date: ", 6);
        http_date(now, w->date_line + 6, HTTP_DATE_LEN + 1);
        memcpy(w->date_line + 6 + HTTP_DATE_LEN, "\r\n", 3);
        w->date_sec = now;
    }
    *len_r = 6 + HTTP_DATE_LEN + 2;
    return w->date_line;
}

void
conn_head_begin(struct conn *c, struct http_head *h, int status)
{
    static const char server[] = "Server: hmac-file-server\r\n";
    size_t      dlen;
    const char *date = date_line(c->w, &dlen);

    http_head_start(h, status);
    http_head_raw(h, date, dlen);
    http_head_raw(h, server, sizeof(server) - 1);
    add_cors(c, h);
    c->status = status;
}

static void
finish_head(struct conn *c, struct http_head *h)
{
    if (c->w->stopping)
        c->close_after = true;    /* graceful stop: no further requests */
    if (!c->keepalive)
        c->close_after = true;
    if (c->close_after)
        http_head_put(h, "Connection", "close");
    http_head_end(h);
}

static void
start_write(struct conn *c, struct http_head *h, const char *body, size_t len)
{
    /* Answered: no longer an upload in progress, before the client can
     * read that and start its next upload on another worker. */
    conn_upload_done(c);
    finish_head(c, h);
    if (h->overflow) {
        log_error("%s: response head overflow", c->peer);
        conn_close(c);
        return;
    }
    free(c->wbuf);
    c->wbuf = malloc(h->len + len);
    if (c->wbuf == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->wbuf, h->buf, h->len);
    if (len)
        memcpy(c->wbuf + h->len, body, len);
    c->wlen = h->len + len;
    c->wpos = 0;
    c->req_live = true;
    c->sent = 0;
    c->head_len = h->len;
    c->state = CONN_WRITE;
    conn_set_deadline(c, c->w->conf->writetimeout);
    stats_count_request(c->w->stats, c->method, c->status);
    if (c->w->paused) {
        /* No response bytes into a network that is switching; resume()
         * in pause.c sends them when the window has passed. */
        loop_set(c->w->loop, &c->io, 0);
        return;
    }
    conn_flush(c);
}

void
conn_respond_head(struct conn *c, struct http_head *h, const char *body,
                  size_t len)
{
    start_write(c, h, body, len);
}

void
conn_respond_file(struct conn *c, struct http_head *h, int fd, uint64_t off,
                  uint64_t len)
{
    c->file_fd = fd;
    c->file_off = off;
    c->file_left = len;
    start_write(c, h, NULL, 0);
}

void
conn_respond_text(struct conn *c, int status, const char *fmt, ...)
{
    char body[512];
    struct http_head h;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(body) - 2)
        n = sizeof(body) - 2;
    body[n++] = '\n';
    conn_head_begin(c, &h, status);
    http_head_put(&h, "Content-Type", "text/plain; charset=utf-8");
    http_head_put_u64(&h, "Content-Length", (uint64_t)n);
    if (status == 503)
        http_head_put(&h, "Retry-After", "5");
    if (status == 405)
        http_head_put(&h, "Allow", "GET, HEAD, PUT, OPTIONS");
    start_write(c, &h, c->method == HTTP_HEAD ? NULL : body,
                c->method == HTTP_HEAD ? 0 : (size_t)n);
}

void
conn_reject(struct conn *c, int status, const char *reason)
{
    /* The body (if any) stays unread, so the connection cannot carry
     * another request: close after the answer, lingering so the client
     * reads it before our close turns its unread bytes into a reset. */
    c->close_after = true;
    conn_respond_text(c, status, "%d %s: %s", status,
                      http_status_text(status), reason);
}

int
conn_send_continue(struct conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    /* The socket's send buffer is empty while the client waits for this,
     * so a short write would mean a broken connection. */
    ssize_t n = conn_io_send(c, cont, sizeof(cont) - 1, false);
    return n == (ssize_t)(sizeof(cont) - 1) ? 0 : -1;
}

int
conn_send_informational(struct conn *c, struct http_head *h)
{
    http_head_end(h);
    if (h->overflow)
        return -1;
    /* As for 100: nothing else is queued while the body is being read. */
    ssize_t n = conn_io_send(c, h->buf, h->len, false);
    return n == (ssize_t)h->len ? 0 : -1;
}

static void
response_done(struct conn *c)
{
    c->w->log_request(c);
    conn_end_response(c);
    c->served = true;
    c->method = -1;      /* no request yet: a 408 next is not a HEAD's */
    if (c->close_after) {
        /* Half-close, then drain what the client still sends (RFC 9112
         * 9.6): closing with unread input would reset the connection and
         * could destroy the response before the client reads it. */
        if (c->ssl)
            SSL_shutdown(c->ssl);        /* close_notify, best effort */
        shutdown(c->io.fd, SHUT_WR);
        c->state = CONN_LINGER;
        c->deadline_ms = loop_now_ms(c->w->loop) + LINGER_MS;
        loop_set(c->w->loop, &c->io, EPOLLIN | EPOLLRDHUP);
        return;
    }
    c->state = CONN_IDLE;
    c->rel = c->query = NULL;
    conn_set_deadline(c, c->w->conf->idletimeout);
    loop_set(c->w->loop, &c->io, EPOLLIN | EPOLLRDHUP);
    if (c->in_parser) {
        /* Answered from inside a parser callback: the parser is still on
         * the stack, so resetting it and reading on happen in
         * process_input once http_in_feed has returned. */
        c->reset_parser = true;
        return;
    }
    http_in_next(c->in);
    if (c->rend > c->rstart)
        conn_process_input(c);                /* a pipelined request */
    else if (c->ssl && SSL_pending(c->ssl) > 0)
        conn_read_input(c);                   /* bytes epoll cannot see */
    else
        conn_release_buffers(c);
}

/* Next piece of the file body: sendfile on plain sockets; through a
 * buffer for TLS, where the bytes must be encrypted in user space. */
void
conn_flush(struct conn *c)
{
    while (c->wpos < c->wlen) {
        ssize_t n = conn_io_send(c, c->wbuf + c->wpos, c->wlen - c->wpos,
                            c->file_left > 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                goto wait;
            conn_close(c);
            return;
        }
        c->wpos += (size_t)n;
        c->sent += (uint64_t)n;
        c->w->stats->bytes_out += (uint64_t)n;
        conn_set_deadline(c, c->w->conf->writetimeout);
    }
    for (int turns = 0; c->file_left > 0; turns++) {
        if (turns == 32)
            goto wait;           /* let other connections have a turn */
        ssize_t n = conn_io_send_file(c);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                goto wait;
            /* A client that goes away mid-download is normal (a
             * cancelled transfer, and every load tool at its end): info.
             * Anything else is worth a warning. */
            if (errno == EPIPE || errno == ECONNRESET)
                log_info("%s: client closed the connection during the "
                         "download (%s)", c->peer, strerror(errno));
            else
                log_warn("%s: sending file: %s", c->peer, strerror(errno));
            conn_close(c);
            return;
        }
        if (n == 0) {            /* file shrank under us: cannot recover */
            conn_close(c);
            return;
        }
        c->file_off += (uint64_t)n;
        c->file_left -= (uint64_t)n;
        c->sent += (uint64_t)n;
        c->w->stats->bytes_out += (uint64_t)n;
        conn_set_deadline(c, c->w->conf->writetimeout);
        if (c->ssl == NULL && c->file_left > 0)
            goto wait;           /* one sendfile turn per wake-up */
    }
    response_done(c);
    return;
wait:
    loop_set(c->w->loop, &c->io, conn_io_want(c, EPOLLOUT));
}

