/* accesslog.c: the request log.
 *
 * Cost: lines are assembled in the sink's own buffer (each worker has its
 * own copy of the struct after fork) and a file gets them with one write(2)
 * per turn of the event loop (accesslog_flush, from worker.c), not one per
 * line: on a busy worker a turn answers many requests, and a write costs
 * more than formatting a line (docs/performance.md). The buffer holds whole
 * lines only and O_APPEND places each write whole, so lines of several
 * workers never interleave; a worker killed mid-turn loses that turn's lines
 * only. The timestamps are formatted once a second. Syslog gets one
 * datagram per line, sent MSG_DONTWAIT and dropped if the socket is full:
 * nothing here waits for a slow syslog daemon.
 *
 * Secrets: the query string (where every signature lives) is never logged,
 * nor the Referer's. A tus upload URL is a capability (its id alone lets
 * anyone append to or delete the upload), so only the first ID_KEEP hex
 * digits of the id are logged: enough to match the lines of one upload, 80
 * bits short of being usable. Every byte a client chose is escaped (\xHH for
 * controls, quotes, backslashes and non-ASCII), so no client can end a line
 * or a field early. */
#define _GNU_SOURCE
#include "worker/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/conf/conf.h"
#include "worker/conn.h"

#define LINE_CAP     4096      /* one line, at most */
#define BUF_CAP      (16 * LINE_CAP)      /* lines of one loop turn */
#define PATH_CAP     1024      /* escaped output per field, at most */
#define AGENT_CAP    512
#define SID_CAP      160
#define ID_KEEP      12        /* hex digits of a tus id: 48 of 128 bits */
#define TUS_RESOURCE ".tus/"
#define SYSLOG_PRI   (23 * 8 + 6)          /* local7.info, as nginx */

struct accesslog {
    bool   syslog;
    int    fd;
    char   path[CONF_PATH_MAX];            /* file, or the socket's path */
    time_t sec;                            /* when the stamps were made */
    char   stamp[40];                      /* "05/Dec/2026:07:54:22 +0000" */
    char   syshdr[80];                     /* "<190>Dec  5 07:54:22 tag[pid]: " */
    size_t syshdr_len;
    size_t len;                            /* bytes in buf not yet written */
    char   buf[BUF_CAP];
};

/* ---- the sink ------------------------------------------------------------ */

static int
open_sink(const struct accesslog *al)
{
    if (!al->syslog)
        return open(al->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, al->path, strlen(al->path) + 1);  /* checked */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int
accesslog_open(const char *target, struct accesslog **out, char *err,
               size_t errlen)
{
    struct accesslog *al;

    *out = NULL;
    if (strcmp(target, "off") == 0)
        return 0;
    if ((al = calloc(1, sizeof(*al))) == NULL) {
        snprintf(err, errlen, "access log: out of memory");
        return -1;
    }
    al->syslog = strncmp(target, "syslog", 6) == 0;
    snprintf(al->path, sizeof(al->path), "%s", !al->syslog ? target
             : target[6] == ':' ? target + 7 : "/dev/log");
    if (al->syslog && strlen(al->path) >= sizeof(((struct sockaddr_un *)0)
                                                  ->sun_path)) {
        snprintf(err, errlen, "access log %s: socket path too long", target);
        free(al);
        return -1;
    }
    if ((al->fd = open_sink(al)) < 0) {
        snprintf(err, errlen, al->syslog ? "cannot connect to the syslog "
                 "socket %s: %s" : "cannot open %s: %s", al->path,
                 strerror(errno));
        free(al);
        return -1;
    }
    *out = al;
    return 0;
}

void
accesslog_flush(struct accesslog *al)
{
    if (al == NULL || al->len == 0)
        return;
    ssize_t w = write(al->fd, al->buf, al->len);
    (void)w;            /* a full disk must not stop the serving */
    al->len = 0;
}

int
accesslog_reopen(struct accesslog *al)
{
    if (al == NULL)
        return 0;
    accesslog_flush(al);        /* what came before goes to the old file */
    int fd = open_sink(al);
    if (fd < 0)
        return -1;
    /* dup2 keeps the number: a line being written goes to one file or the
     * other, never nowhere. */
    dup2(fd, al->fd);
    close(fd);
    return 0;
}

void
accesslog_close(struct accesslog *al)
{
    if (al == NULL)
        return;
    accesslog_flush(al);
    close(al->fd);
    free(al);
}

/* The line is at buf + len, n bytes. */
static void
emit(struct accesslog *al, size_t n)
{
    if (!al->syslog) {
        al->buf[al->len + n++] = '\n';
        al->len += n;
        return;
    }
    const char *line = al->buf + al->len;
    int flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    if (send(al->fd, line, n, flags) < 0
        && (errno == ECONNREFUSED || errno == ENOTCONN)
        && accesslog_reopen(al) == 0)          /* syslogd restarted */
        (void)send(al->fd, line, n, flags);
}

/* ---- the line ------------------------------------------------------------ */

struct out {
    char  *b;
    size_t n, cap;          /* cap leaves room for the final newline */
};

static void
put(struct out *o, const char *s, size_t len)
{
    if (len > o->cap - o->n)
        len = o->cap - o->n;
    memcpy(o->b + o->n, s, len);
    o->n += len;
}

static void
puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Numbers by hand: printf's machinery would be the costliest part of a
 * line. `width` pads with zeros (the milliseconds). */
static void
put_u64(struct out *o, uint64_t v, int width)
{
    char d[24];
    int  n = 0;

    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 || n < width);
    while (n > 0 && o->n < o->cap)
        o->b[o->n++] = d[--n];
}

/* Client bytes: at most `budget` output bytes, escapes never cut. */
static void
put_escaped(struct out *o, const char *s, size_t len, size_t budget)
{
    static const char hex[] = "0123456789abcdef";
    size_t end = o->n + budget < o->cap ? o->n + budget : o->cap;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            if (o->n + 1 > end)
                return;
            o->b[o->n++] = (char)ch;
            continue;
        }
        if (o->n + 4 > end)
            return;
        o->b[o->n++] = '\\';
        o->b[o->n++] = 'x';
        o->b[o->n++] = hex[ch >> 4];
        o->b[o->n++] = hex[ch & 15];
    }
}

static void
put_quoted(struct out *o, const char *s, size_t len, size_t budget)
{
    put(o, "\"", 1);
    if (s == NULL)
        put(o, "-", 1);
    else
        put_escaped(o, s, len, budget);
    put(o, "\"", 1);
}

static void
stamps(struct accesslog *al)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec == al->sec)
        return;
    al->sec = ts.tv_sec;
    gmtime_r(&al->sec, &tm);
    strftime(al->stamp, sizeof(al->stamp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    if (al->syslog) {
        /* RFC 3164, as syslog(3) sends it: local time, tag[pid]. The pid is
         * looked up here, once a second, in the worker writing. */
        char t[32];
        localtime_r(&al->sec, &tm);
        strftime(t, sizeof(t), "%b %e %H:%M:%S", &tm);
        int n = snprintf(al->syshdr, sizeof(al->syshdr),
                         "<%d>%s hmac-file-server[%d]: ", SYSLOG_PRI, t,
                         (int)getpid());
        al->syshdr_len = n > 0 && (size_t)n < sizeof(al->syshdr) ? (size_t)n
                                                                 : 0;
    }
}

/* "[v6]:port" / "v4:port" -> the address alone, as nginx logs it. */
static void
put_addr(struct out *o, const char *peer)
{
    const char *colon = strrchr(peer, ':');

    if (peer[0] == '[' && (colon = strchr(peer, ']')) != NULL)
        put(o, peer + 1, (size_t)(colon - peer - 1));
    else if (colon != NULL)
        put(o, peer, (size_t)(colon - peer));
    else
        puts_(o, peer);
}

/* The id of a tus upload resource in target, or NULL. */
static const char *
tus_id_in(const struct conn *c, const char *target, size_t len)
{
    const char *prefix = c->w->conf->url_prefix;
    size_t plen = strlen(prefix), rlen = strlen(TUS_RESOURCE);

    if (len > plen + rlen && strncmp(target, prefix, plen) == 0
        && strncmp(target + plen, TUS_RESOURCE, rlen) == 0)
        return target + plen + rlen;
    return NULL;
}

static void
put_request(struct out *o, const struct conn *c, const struct http_request *r,
            const char **tus_id)
{
    size_t len = strcspn(r->target, "?");        /* never the signature */
    const char *id = tus_id_in(c, r->target, len);

    put(o, "\"", 1);
    puts_(o, http_method_name(r->method));
    put(o, " ", 1);
    if (id != NULL && (size_t)(r->target + len - id) > ID_KEEP) {
        put_escaped(o, r->target, (size_t)(id - r->target) + ID_KEEP,
                    PATH_CAP);
        puts_(o, "...");
        *tus_id = id;
    } else {
        put_escaped(o, r->target, len, PATH_CAP);
    }
    puts_(o, r->http_minor == 0 ? " HTTP/1.0\"" : " HTTP/1.1\"");
}

static void
put_session(struct out *o, const struct conn *c, const struct http_request *r,
            const char *tus_id)
{
    const char *sid = r ? http_header_get(r, "X-Upload-Session-ID") : NULL;

    puts_(o, " sid=");
    if (sid != NULL)
        put_quoted(o, sid, strlen(sid), SID_CAP);
    else if (tus_id != NULL)
        put_quoted(o, tus_id, strnlen(tus_id, ID_KEEP), SID_CAP);
    else if (c->log_id[0] != '\0')
        put_quoted(o, c->log_id, strlen(c->log_id), SID_CAP);
    else
        put_quoted(o, NULL, 0, 0);
}

void
accesslog_note_id(struct conn *c, const char *id)
{
    snprintf(c->log_id, sizeof(c->log_id), "%.*s", ID_KEEP, id);
}

void
accesslog_request(struct conn *c)
{
    struct accesslog *al = c->w->alog;
    const struct http_request *r = NULL;
    const char *tus_id = NULL, *h;

    if (!c->req_live)
        return;
    c->req_live = false;
    if (al == NULL) {
        c->log_id[0] = '\0';
        return;
    }
    if (c->in != NULL && c->method >= 0 && c->in->req.target != NULL)
        r = &c->in->req;
    stamps(al);
    if (BUF_CAP - al->len < LINE_CAP)
        accesslog_flush(al);
    struct out o = { al->buf + al->len, 0, LINE_CAP - 1 };
    if (al->syslog)
        put(&o, al->syshdr, al->syshdr_len);
    put_addr(&o, c->peer);
    puts_(&o, " - - [");
    puts_(&o, al->stamp);
    puts_(&o, "] ");
    if (r != NULL)
        put_request(&o, c, r, &tus_id);
    else
        puts_(&o, "\"-\"");
    /* No answer started: the connection ended first (nginx's 499). */
    uint64_t body = c->sent > c->head_len ? c->sent - c->head_len : 0;
    int64_t ms = loop_now_ms(c->w->loop) - c->req_start_ms;
    put(&o, " ", 1);
    put_u64(&o, (uint64_t)(c->status ? c->status : 499), 0);
    put(&o, " ", 1);
    put_u64(&o, body, 0);
    put(&o, " ", 1);
    h = r ? http_header_get(r, "Referer") : NULL;
    put_quoted(&o, h, h ? strcspn(h, "?#") : 0, AGENT_CAP);
    put(&o, " ", 1);
    h = r ? http_header_get(r, "User-Agent") : NULL;
    put_quoted(&o, h, h ? strlen(h) : 0, AGENT_CAP);
    if (ms < 0)
        ms = 0;
    puts_(&o, " in=");
    put_u64(&o, c->body_bytes, 0);
    puts_(&o, " t=");
    put_u64(&o, (uint64_t)ms / 1000, 0);
    put(&o, ".", 1);
    put_u64(&o, (uint64_t)ms % 1000, 3);
    put_session(&o, c, r, tus_id);
    c->log_id[0] = '\0';
    emit(al, o.n);
}
