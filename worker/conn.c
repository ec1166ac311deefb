/* conn.c: the connection state machine: life cycle, timeouts, and the
 * parser glue that turns bytes read into the handler's calls (handler.h).
 * Bytes in and out: conn_io.c; answers: conn_respond.c.
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
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "lib/util/log.h"
#include "shm/stats.h"
#include "worker/conn_io.h"
#include "worker/conn_limit.h"
#include "worker/conn_respond.h"
#include "worker/handler.h"

#define READS_PER_EVENT  8
#define FRESH_GRACE_MS   3000      /* stopping: wait for a first request */
#define DISCARD_MAX      (64 * 1024)         /* body of a non-PUT request */

static void on_io(struct loop_io *io, uint32_t events);

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

void
conn_set_deadline(struct conn *c, int seconds)
{
    c->deadline_ms = loop_now_ms(c->w->loop) + (int64_t)seconds * 1000;
}

/* A whole request head, from its first byte (or from accept for a new
 * connection) to its last: short, so a client sending a byte now and then
 * (slow loris) cannot hold a connection for the body's timeout. */
static int
head_timeout(const struct conf *cf)
{
    return cf->headertimeout < cf->readtimeout ? cf->headertimeout
                                               : cf->readtimeout;
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
        conn_set_deadline(c, head_timeout(w->conf));
        bool admitted = conn_limit_accept(c, (const struct sockaddr *)&ss);
        if (loop_add(w->loop, &c->io, EPOLLIN | EPOLLRDHUP) < 0) {
            conn_limit_release(c);
            SSL_free(c->ssl);
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
        if (w->nconns > w->conns_peak)
            w->conns_peak = w->nconns;
        if (!admitted)
            conn_limit_refuse(c);
    }
}

void
conn_release_buffers(struct conn *c)
{
    conn_in_put(c->w, c->in);
    c->in = NULL;
    conn_rbuf_put(c->w, c->rbuf);
    c->rbuf = NULL;
    c->rstart = c->rend = 0;
}

void
conn_close(struct conn *c)
{
    if (c->closed)
        return;
    struct worker *w = c->w;
    c->closed = true;
    c->w->log_request(c);        /* cut before its answer was all sent */
    if (c->handler && c->handler->abort)
        c->handler->abort(c);
    loop_del(w->loop, &c->io);
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->io.fd);
    conn_limit_release(c);
    conn_end_response(c);
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
        conn_release_buffers(c);
        free(c);
    }
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
    conn_set_deadline(c, c->w->conf->readtimeout);
    loop_set(c->w->loop, &c->io, EPOLLIN | EPOLLRDHUP);
    if (!c->in_parser)       /* else the parser on the stack goes on */
        conn_process_input(c);
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
    conn_set_deadline(c, c->w->conf->readtimeout);
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
    conn_set_deadline(c, c->w->conf->readtimeout);
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

void
conn_process_input(struct conn *c)
{
    while (reading(c) && c->rend > c->rstart) {
        if (c->in == NULL) {
            c->in = conn_in_get(c->w);
            if (c->in == NULL) {
                conn_close(c);
                return;
            }
            http_in_init(c->in, &parser_callbacks, c);
        }
        if (c->state == CONN_IDLE) {
            c->state = CONN_HEAD;
            conn_set_deadline(c, head_timeout(c->w->conf));
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
            conn_release_buffers(c);
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

void
conn_read_input(struct conn *c)
{
    for (int i = 0; i < READS_PER_EVENT && reading(c); i++) {
        if (c->rbuf == NULL) {
            c->rbuf = conn_rbuf_get(c->w);
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
        size_t room = CONN_RBUF_SIZE - c->rend;
        ssize_t n = conn_io_recv(c, c->rbuf + c->rend, room);
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
                         conn_io_want(c, 0) | EPOLLIN | EPOLLRDHUP);
            if (c->rend == c->rstart && c->state == CONN_IDLE)
                conn_release_buffers(c);
            return;
        }
        c->rend += (size_t)n;
        conn_process_input(c);
        /* A plain socket that gave less than asked for was empty: another
         * recv now would only say EAGAIN (after nearly every answered
         * request, with the client waiting for the answer). The epoll
         * interest is level-triggered: bytes arriving meanwhile wake us. */
        if (c->ssl == NULL && (size_t)n < room)
            return;
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
            conn_flush(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLOUT)) && reading(c)) {
        if (c->ssl)
            loop_set(c->w->loop, &c->io, EPOLLIN | EPOLLRDHUP);
        conn_read_input(c);
    }
}
