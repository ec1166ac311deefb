/* conn.c: the connection state machine.
 *
 * Memory: an idle keep-alive connection holds only struct conn; the parser
 * (16 KiB head buffer) and the read buffer are allocated when bytes arrive
 * and returned when the connection goes idle again, as nginx does, so
 * thousands of idle mobile clients cost little.
 *
 * Reading stops (EPOLLIN dropped) whenever a response is pending, which is
 * what makes pipelining safe: the next request's bytes wait in the buffer or
 * the socket until this one is answered. */
#define _GNU_SOURCE
#include "worker/conn.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/err.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/accesslog.h"
#include "worker/cors.h"
#include "worker/handler.h"

#define SENDFILE_CHUNK   (2 * 1024 * 1024)   /* fairness between clients */
#define TLS_FILE_BUF     (16 * 1024)         /* one TLS record */
#define READS_PER_EVENT  8
#define LINGER_MS        2000
#define FRESH_GRACE_MS   3000      /* stopping: wait for a first request */
#define DISCARD_MAX      (64 * 1024)         /* body of a non-PUT request */

static void on_io(struct loop_io *io, uint32_t events);
static void process_input(struct conn *c);
static void read_input(struct conn *c);
static void flush_output(struct conn *c);

/* ---- life cycle ---------------------------------------------------------- */

static void
set_keepalive(int fd, const struct conf *cf)
{
    int on = 1, idle = cf->keepaliveinterval, cnt = cf->keepalivecount;
    /* Mobile links vanish without a FIN; keep-alive probes find them. */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void
format_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)ss;
        inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
        port = ntohs(s->sin_port);
        snprintf(out, len, "%s:%d", a, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
        port = ntohs(s->sin6_port);
        snprintf(out, len, "[%s]:%d", a, port);
    } else {
        snprintf(out, len, "unix");
    }
}

static void
set_deadline(struct conn *c, int seconds)
{
    c->deadline_ms = loop_now_ms(c->w->loop) + (int64_t)seconds * 1000;
}

void
conn_accept(struct worker *w, int lfd, bool tls)
{
    for (int i = 0; i < 64 && w->nconns < w->conf->max_connections; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        set_keepalive(fd, w->conf);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (tls) {
            if ((c->ssl = SSL_new(w->tls_ctx)) == NULL
                || SSL_set_fd(c->ssl, fd) != 1) {
                SSL_free(c->ssl);
                free(c);
                close(fd);
                continue;
            }
            SSL_set_accept_state(c->ssl);
        }
        c->io.fd = fd;
        c->io.fn = on_io;
        c->io.data = c;
        c->w = w;
        c->file_fd = -1;
        c->state = CONN_IDLE;
        format_peer(&ss, c->peer, sizeof(c->peer));
        c->accepted_ms = loop_now_ms(w->loop);
        c->method = -1;
        set_deadline(c, w->conf->readtimeout);
        if (loop_add(w->loop, &c->io, EPOLLIN | EPOLLRDHUP) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        w->nconns++;
        w->slot->connections++;
    }
}

static void
release_buffers(struct conn *c)
{
    free(c->in);
    c->in = NULL;
    free(c->rbuf);
    c->rbuf = NULL;
    c->rstart = c->rend = 0;
}

static void
end_response(struct conn *c)
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

void
conn_close(struct conn *c)
{
    if (c->closed)
        return;
    struct worker *w = c->w;
    c->closed = true;
    accesslog_request(c);        /* cut before its answer was all sent */
    if (c->handler && c->handler->abort)
        c->handler->abort(c);
    loop_del(w->loop, &c->io);
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->io.fd);
    end_response(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    w->slot->connections--;
    /* Freed at the end of the event batch: a later event may name it, and
     * we may be inside a parser callback that still uses c->in. */
    c->next = w->dead;
    w->dead = c;
}

bool
conn_alive(const struct conn *c)
{
    return !c->closed;
}

void
conn_set_handler(struct conn *c, const struct handler *h, void *ctx)
{
    c->handler = h;
    c->handler_ctx = ctx;
}

void
conn_clear_handler(struct conn *c, const void *ctx)
{
    if (c->handler_ctx == ctx) {
        c->handler = NULL;
        c->handler_ctx = NULL;
    }
}

void
conn_free_dead(struct worker *w)
{
    while (w->dead) {
        struct conn *c = w->dead;
        w->dead = c->next;
        release_buffers(c);
        free(c);
    }
}

/* ---- transport: plain socket or TLS ------------------------------------- */

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

static ssize_t
io_recv(struct conn *c, void *buf, size_t len)
{
    if (c->ssl == NULL)
        return recv(c->io.fd, buf, len, 0);
    ERR_clear_error();
    errno = 0;
    c->tls_want = 0;
    int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? n : tls_result(c, n);
}

static ssize_t
io_send(struct conn *c, const void *buf, size_t len, bool more)
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
static uint32_t
want(struct conn *c, uint32_t plain)
{
    uint32_t w = c->ssl && c->tls_want ? c->tls_want : plain;
    c->tls_want = 0;
    return w;
}

/* ---- timeouts ------------------------------------------------------------ */

static void
timeout(struct conn *c)
{
    switch (c->state) {
    case CONN_IDLE:
    case CONN_LINGER:
        conn_close(c);
        break;
    case CONN_HEAD:
        conn_reject(c, 408, "request header not received in time");
        break;
    case CONN_BODY:
        log_info("%s: request body stalled, closing", c->peer);
        c->status = 408;         /* for the access log: nothing is sent */
        conn_close(c);
        break;
    case CONN_WRITE:
        log_info("%s: client stopped reading, closing", c->peer);
        conn_close(c);
        break;
    case CONN_BUSY:
        break;
    }
}

void
conn_tick(struct worker *w)
{
    int64_t now = loop_now_ms(w->loop);
    if (w->paused)
        return;                 /* a network pause is nobody's idle time */
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_BUSY)
            continue;
        if (now >= c->deadline_ms
            || (c->state == CONN_BODY && now >= c->body_deadline_ms))
            timeout(c);
    }
}

void
conn_close_idle(struct worker *w)
{
    int64_t now = loop_now_ms(w->loop);
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->state != CONN_IDLE || c->rend != c->rstart)
            continue;
        /* A connection that has not sent its first request yet is a
         * request on its way (the client connected to send one): give it
         * a moment instead of resetting it during a reload. */
        if (c->served || now - c->accepted_ms > FRESH_GRACE_MS)
            conn_close(c);
    }
}

/* ---- responses ----------------------------------------------------------- */

static void
add_cors(struct conn *c, struct http_head *h)
{
    const struct conf *cf = c->w->conf;
    const char *origin = c->in ? http_header_get(&c->in->req, "Origin") : NULL;
    if (origin == NULL || cf->ncors_origins == 0)
        return;
    for (size_t i = 0; i < cf->ncors_origins; i++) {
        if (strcmp(cf->cors_origins[i], "*") == 0) {
            http_head_add(h, "Access-Control-Allow-Origin", "*");
            break;
        }
        if (strcasecmp(cf->cors_origins[i], origin) == 0) {
            http_head_add(h, "Access-Control-Allow-Origin", "%s", origin);
            http_head_add(h, "Vary", "Origin");
            break;
        }
    }
    /* On every answer, errors too: a page must be able to read why. */
    http_head_add(h, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
}

void
conn_head_begin(struct conn *c, struct http_head *h, int status)
{
    char date[40];
    http_head_start(h, status);
    http_date(time(NULL), date, sizeof(date));
    http_head_add(h, "Date", "%s", date);
    http_head_add(h, "Server", "hmac-file-server");
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
        http_head_add(h, "Connection", "close");
    http_head_end(h);
}

static void
start_write(struct conn *c, struct http_head *h, const char *body, size_t len)
{
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
    set_deadline(c, c->w->conf->writetimeout);
    stats_count_request(c->w->stats, c->method, c->status);
    if (c->w->paused) {
        /* No response bytes into a network that is switching; resume()
         * in pause.c sends them when the window has passed. */
        loop_set(c->w->loop, &c->io, 0);
        return;
    }
    flush_output(c);
}

void
conn_pause_body(struct conn *c)
{
    http_parser_pause(&c->in->parser, 1);
    c->state = CONN_BUSY;
}

void
conn_resume_body(struct conn *c)
{
    http_parser_pause(&c->in->parser, 0);
    c->state = CONN_BODY;
    set_deadline(c, c->w->conf->readtimeout);
    loop_set(c->w->loop, &c->io, EPOLLIN | EPOLLRDHUP);
    if (!c->in_parser)       /* else the parser on the stack goes on */
        process_input(c);
}

void
conn_flush(struct conn *c)
{
    flush_output(c);
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
    http_head_add(&h, "Content-Type", "text/plain; charset=utf-8");
    http_head_add(&h, "Content-Length", "%d", n);
    if (status == 503)
        http_head_add(&h, "Retry-After", "5");
    if (status == 405)
        http_head_add(&h, "Allow", "GET, HEAD, PUT, OPTIONS");
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
    ssize_t n = io_send(c, cont, sizeof(cont) - 1, false);
    return n == (ssize_t)(sizeof(cont) - 1) ? 0 : -1;
}

static void
response_done(struct conn *c)
{
    accesslog_request(c);
    end_response(c);
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
    set_deadline(c, c->w->conf->idletimeout);
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
        process_input(c);                /* a pipelined request */
    else if (c->ssl && SSL_pending(c->ssl) > 0)
        read_input(c);                   /* bytes epoll cannot see */
    else
        release_buffers(c);
}

/* Next piece of the file body: sendfile on plain sockets; through a
 * buffer for TLS, where the bytes must be encrypted in user space. */
static ssize_t
send_file_piece(struct conn *c)
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
    ssize_t n = io_send(c, c->tbuf + c->tbuf_pos, c->tbuf_len - c->tbuf_pos,
                        false);
    if (n > 0)
        c->tbuf_pos += (size_t)n;
    return n;
}

static void
flush_output(struct conn *c)
{
    while (c->wpos < c->wlen) {
        ssize_t n = io_send(c, c->wbuf + c->wpos, c->wlen - c->wpos,
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
        set_deadline(c, c->w->conf->writetimeout);
    }
    for (int turns = 0; c->file_left > 0; turns++) {
        if (turns == 32)
            goto wait;           /* let other connections have a turn */
        ssize_t n = send_file_piece(c);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                goto wait;
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
        set_deadline(c, c->w->conf->writetimeout);
        if (c->ssl == NULL && c->file_left > 0)
            goto wait;           /* one sendfile turn per wake-up */
    }
    response_done(c);
    return;
wait:
    loop_set(c->w->loop, &c->io, want(c, EPOLLOUT));
}

/* ---- requests ------------------------------------------------------------ */

static int
on_head(void *owner, struct http_request *req)
{
    struct conn *c = owner;

    c->method = req->method;
    c->req_live = true;
    c->keepalive = req->keepalive;
    c->state = CONN_BODY;
    c->body_bytes = 0;
    set_deadline(c, c->w->conf->readtimeout);
    c->body_deadline_ms = loop_now_ms(c->w->loop)
                        + (int64_t)c->w->conf->uploadtimeout * 1000;
    if (c->handler_ctx == NULL)
        c->handler = NULL;      /* the last request's, if it held nothing */
    return c->w->route(c, req);
}

static int
on_body(void *owner, const char *at, size_t len)
{
    struct conn *c = owner;
    c->body_bytes += len;
    c->w->stats->bytes_in += len;
    set_deadline(c, c->w->conf->readtimeout);
    if (c->handler && c->handler->body)
        return c->handler->body(c, at, len);
    if (c->body_bytes > DISCARD_MAX) {
        conn_reject(c, 413, "request body not expected here");
        return -1;
    }
    return 0;
}

static int
on_complete(void *owner)
{
    struct conn *c = owner;

    c->state = CONN_BUSY;     /* until an answer starts */
    if (c->handler == NULL) {
        /* The router gives every request it lets through a handler. */
        log_error("%s: request without a handler", c->peer);
        conn_respond_text(c, 500, "500 Internal Server Error: no handler");
        return 0;
    }
    return c->handler->complete(c) < 0 ? -1 : 0;
}

static const struct http_in_callbacks parser_callbacks = {
    .on_head = on_head,
    .on_body = on_body,
    .on_complete = on_complete,
};

static bool
reading(const struct conn *c)
{
    return !c->closed && (c->state == CONN_IDLE || c->state == CONN_HEAD
                          || c->state == CONN_BODY);
}

static void
process_input(struct conn *c)
{
    while (reading(c) && c->rend > c->rstart) {
        if (c->in == NULL) {
            c->in = malloc(sizeof(*c->in));
            if (c->in == NULL) {
                conn_close(c);
                return;
            }
            http_in_init(c->in, &parser_callbacks, c);
        }
        if (c->state == CONN_IDLE) {
            c->state = CONN_HEAD;
            set_deadline(c, c->w->conf->readtimeout);
            /* A request begins: the access log counts from here. */
            c->req_start_ms = loop_now_ms(c->w->loop);
            c->status = 0;
            c->sent = c->head_len = c->body_bytes = 0;
        }
        size_t used;
        c->in_parser = true;
        enum http_in_status st = http_in_feed(c->in, c->rbuf + c->rstart,
                                              c->rend - c->rstart, &used);
        c->in_parser = false;
        c->rstart += used;
        if (c->closed)
            return;
        if (c->reset_parser) {
            c->reset_parser = false;
            http_in_next(c->in);
            continue;            /* the next pipelined request, if any */
        }
        if (st == HTTP_IN_ERROR) {
            if (c->handler && c->handler->abort)
                c->handler->abort(c);
            c->method = c->in->req.target ? c->in->req.method : -1;
            conn_reject(c, c->in->error_status, c->in->error_reason);
            return;
        }
        if (st == HTTP_IN_MORE)
            break;
        /* Paused: a message completed or a callback answered. */
    }
    if (c->closed)
        return;
    if (c->rstart == c->rend) {
        c->rstart = c->rend = 0;
        if (c->state == CONN_IDLE && !(c->ssl && SSL_pending(c->ssl) > 0))
            release_buffers(c);
    }
    /* Not reading: no EPOLLIN/EPOLLRDHUP, which are level-triggered and
     * would fire on every turn for a client that half-closed. */
    if (c->state == CONN_BUSY)
        loop_set(c->w->loop, &c->io, 0);
}

static void
linger_read(struct conn *c)
{
    char buf[16384];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = recv(c->io.fd, buf, sizeof(buf), 0);   /* raw: discarded */
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0)
            return;
    }
}

static void
read_input(struct conn *c)
{
    for (int i = 0; i < READS_PER_EVENT && reading(c); i++) {
        if (c->rbuf == NULL) {
            c->rbuf = malloc(CONN_RBUF_SIZE);
            if (c->rbuf == NULL) {
                conn_close(c);
                return;
            }
        }
        if (c->rend == CONN_RBUF_SIZE) {
            if (c->rstart == 0)
                return;          /* parser holds everything; cannot be */
            memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
            c->rend -= c->rstart;
            c->rstart = 0;
        }
        ssize_t n = io_recv(c, c->rbuf + c->rend, CONN_RBUF_SIZE - c->rend);
        if (n == 0) {
            /* The peer closed. Mid-body this is the mobile case: the
             * upload keeps what arrived (upload_abort decides). */
            conn_close(c);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c);
                return;
            }
            if (c->ssl && c->tls_want == EPOLLOUT)
                loop_set(c->w->loop, &c->io,
                         want(c, 0) | EPOLLIN | EPOLLRDHUP);
            if (c->rend == c->rstart && c->state == CONN_IDLE)
                release_buffers(c);
            return;
        }
        c->rend += (size_t)n;
        process_input(c);
        /* TLS may hold decrypted bytes epoll cannot see: keep reading
         * past the per-event budget until OpenSSL says it needs more. */
        if (c->ssl && SSL_pending(c->ssl) > 0 && i == READS_PER_EVENT - 1)
            i--;
    }
}

static void
on_io(struct loop_io *io, uint32_t events)
{
    struct conn *c = io->data;

    if (c->closed)
        return;
    /* ERR, or HUP (both directions gone): nobody to answer. A job still
     * running for this connection finishes on its own (see upload.c). */
    if (events & (EPOLLERR | EPOLLHUP)) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGER) {
        linger_read(c);
        return;
    }
    if (c->state == CONN_WRITE) {
        if (c->w->paused) {
            loop_set(c->w->loop, &c->io, 0);
            return;
        }
        /* OpenSSL may need to read (EPOLLIN) before it can write. */
        if (events & (EPOLLOUT | EPOLLIN))
            flush_output(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLOUT)) && reading(c)) {
        if (c->ssl)
            loop_set(c->w->loop, &c->io, EPOLLIN | EPOLLRDHUP);
        read_input(c);
    }
}
