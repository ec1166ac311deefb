/* conn: one client connection and the worker context it belongs to.
 *
 * Private to worker/: conn.c owns the socket, TLS, the parser, the
 * timeouts and the connection's life cycle, and knows no protocol. The
 * router (w->route) picks a handler (handler.h) at each request head; the
 * handlers answer through the conn_respond* calls. */
#ifndef WORKER_CONN_H
#define WORKER_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "lib/http/request.h"
#include "lib/http/response.h"
#include "worker/loop.h"

struct auth_key;
struct conf;
struct netmon_shared;
struct stats;
struct sync_job;
struct stats_slot;
struct shm_table;
struct syncpool;
struct commit;
struct handler;
struct peers;
struct linesink;

enum conn_state {
    CONN_IDLE,      /* keep-alive, between requests */
    CONN_HEAD,      /* reading a request head */
    CONN_BODY,      /* reading a request body */
    CONN_BUSY,      /* waiting for a sync job (fsync, publish) */
    CONN_WRITE,     /* sending a response */
    CONN_LINGER,    /* answered early: draining input before close */
};

struct listener {
    struct loop_io      io;
    bool                tls;
};

/* A few freed blocks of one size kept for the next taker (conn_limit.c):
 * a keep-alive connection gives them back between requests. */
struct conn_cache {
    void *slot[16];
    int   n;
};

struct worker {
    const struct conf  *conf;
    SSL_CTX            *tls_ctx;
    struct loop        *loop;
    struct syncpool    *pool;
    struct commit      *commit;         /* storage.sync = "batch" */
    struct shm_table   *table;          /* resumable sessions */
    struct stats       *stats;
    struct stats_slot  *slot;
    struct peers       *peers;          /* per-address counts (conn_limit.c) */
    int                 row;            /* ours in peers: the stats slot */
    int64_t             limit_logged_ms;    /* last refusal logged */
    int                 conns_peak;     /* since memory was last trimmed */
    /* The Date header line of this second (conn_respond.c), made again
     * only when the loop's wall clock has moved on. */
    char                date_line[sizeof("Date: \r\n") + HTTP_DATE_LEN];
    time_t              date_sec;
    struct conn_cache   rbufs;          /* read buffers kept for reuse */
    struct conn_cache   parsers;        /* request parsers kept for reuse */
    int                 root_fd, staging_fd;
    /* security.secrets with their HMAC state derived once, at the start
     * of this generation of workers (a reload starts a new one), for
     * every signature check: a check copies the state (auth.h). */
    struct auth_key    *keys;
    size_t              nkeys;
    bool                storage_failing;    /* storage.c: logged once */
    uint64_t            storage_gate_turn;  /* storage.c: loop turn of the
                                               last check that passed */
    struct listener     listeners[16];
    size_t              nlisten;
    bool                accepting;
    struct loop_io      sig_io, parent_io;
    struct conn        *conns, *dead;
    int                 nconns;
    bool                stopping;
    int64_t             stop_deadline_ms;
    unsigned            generation;
    /* network changes (pause.c) */
    struct netmon_shared *netmon;
    struct loop_io      netmon_io, pause_timer;
    uint64_t            netmon_epoch;
    bool                paused;         /* conn.c holds answers while set */
    int64_t             pause_started_ms;
    int                 index;          /* worker number in its generation */
    int64_t             next_janitor_ms;
    bool                janitor_running;
    bool                forget_running;     /* sess_forget_dead's job */
    struct loop_io      reaped_io;      /* master: a worker was reaped */
    struct linesink   *alog;           /* NULL: logging.access_log off */
    struct sess_owners *owners;        /* cluster: the owner locks this
                                          worker holds (session_owner.c);
                                          NULL without a cluster section */
    /* Picks and starts the handler of a request whose head is parsed
     * (router.c, wired by worker.c): 0 = read the body, -1 = answered. */
    int               (*route)(struct conn *c, struct http_request *req);
    /* The access log's line for a request (accesslog.c, wired by
     * worker.c): called when the answer is sent or the connection ends. */
    void              (*log_request)(struct conn *c);
};

struct conn {
    struct loop_io   io;
    struct worker   *w;
    struct conn     *prev, *next;
    enum conn_state  state;
    char             peer[64];
    uint16_t         peer_key[2];   /* peers_key of the address */
    bool             peer_counted;  /* in the per-address connections */
    bool             upload_counted;    /* in its uploads in progress */
    SSL             *ssl;           /* NULL on plain listeners */
    uint32_t         tls_want;      /* EPOLLIN/EPOLLOUT OpenSSL waits for */
    char            *tbuf;          /* TLS: file bytes read, not yet sent */
    size_t           tbuf_len, tbuf_pos;

    struct http_in  *in;            /* allocated while a request is read */
    char            *rbuf;          /* allocated while bytes are pending */
    size_t           rstart, rend;

    char            *wbuf;          /* response head (+ small body) */
    size_t           wlen, wpos;
    int              file_fd;       /* body from a file (sendfile), or -1 */
    uint64_t         file_off, file_left;

    int              method, status;
    bool             keepalive;     /* the client allows another request */
    bool             close_after;   /* close once the response is sent */
    bool             closed;
    bool             served;        /* answered at least one request */
    int64_t          accepted_ms;
    bool             in_parser;     /* inside http_in_feed: see conn.c */
    bool             reset_parser;  /* answered from a parser callback */
    int64_t          deadline_ms, body_deadline_ms;
    uint64_t         body_bytes;

    const struct handler *handler;  /* serves the request (handler.h) */
    void            *handler_ctx;   /* the handler's state, or NULL */
    /* Path part of the target without the prefix, and the query; both
     * point into in->head and live until the response is sent. */
    const char      *rel, *query;
    size_t           rel_len;

    /* the access log's view of the request (accesslog.c) */
    bool             req_live;      /* begun, not yet logged */
    int64_t          req_start_ms;
    uint64_t         sent, head_len;    /* this response: bytes out, head */
    char             log_id[16];    /* tus upload created, shortened id */
};

#define CONN_RBUF_SIZE (256 * 1024)

void conn_accept(struct worker *w, int lfd, bool tls);
void conn_close(struct conn *c);
void conn_free_dead(struct worker *w);
void conn_tick(struct worker *w);
void conn_close_idle(struct worker *w);

/* Answers. Each builds the common headers (Date, Server, CORS, Connection).
 * conn_respond_text: small text/plain body naming the problem.
 * conn_respond_head: a finished head from conn_head_begin (+ optional body
 * bytes copied, or a file range sent with sendfile). */
void conn_respond_text(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conn_head_begin(struct conn *c, struct http_head *h, int status);
void conn_respond_head(struct conn *c, struct http_head *h,
                       const char *body, size_t len);
void conn_respond_file(struct conn *c, struct http_head *h, int fd,
                       uint64_t off, uint64_t len);
/* The request body will not be read: answer, then close. */
void conn_reject(struct conn *c, int status, const char *reason);
int  conn_send_continue(struct conn *c);
/* The request is an upload: counted for the client's address until its
 * answer is sent. -1: over server.max_uploads_per_address, answered 503. */
int  conn_count_upload(struct conn *c);
/* An interim (1xx) answer before the final one, sent at once while the
 * request is still being read: a head from http_head_start (not
 * conn_head_begin: it is not the request's status). 0, or -1 if it could
 * not be sent whole (close the connection). */
int  conn_send_informational(struct conn *c, struct http_head *h);
/* From the head callback: stop parsing until conn_resume_body (the body's
 * destination is being prepared off the loop). */
void conn_pause_body(struct conn *c);
void conn_resume_body(struct conn *c);
/* Send what is queued (after a network pause). */
void conn_flush(struct conn *c);
/* A job finished for a connection in CONN_BUSY (may have been closed). */
bool conn_alive(const struct conn *c);

/* Between the parts of conn (conn.c, conn_respond.c), not for handlers. */
void conn_set_deadline(struct conn *c, int seconds);
void conn_release_buffers(struct conn *c);
void conn_process_input(struct conn *c);
void conn_read_input(struct conn *c);

#endif
